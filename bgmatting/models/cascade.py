"""The clean-plate → trimap cascade's two models in one layer (its run logic: ``bgmatting.engine.kinds.cascade``)."""
import paddle.nn as nn


class MattingCascade(nn.Layer):
    """BackgroundMattingV2 for a coarse alpha, then ViTMatte on a trimap made from it.

    Args:
        bgmv2: a :class:`~bgmatting.models.MattingBase` or :class:`~bgmatting.models.MattingRefine`.
        vitmatte: a :class:`~bgmatting.models.ViTMatte`.
        coarse_model_type: ``"mattingbase"`` or ``"mattingrefine"`` (how ``bgmv2``'s outputs are read).
        trimap_band: half-width in pixels of the unknown band around the coarse alpha's edges.
        trimap_low, trimap_high: coarse alpha <= low is sure background, >= high sure foreground.
    Input / Output:
        not called directly: ``Predictor(model_type="bgmv2+vitmatte")`` runs ``bgmv2(src, bgr)`` (B, 3, H, W) in
        [0, 1], builds the trimap, then ``vitmatte(pixel_values)`` (B, 4, H', W') → alpha (B, 1, H', W') in [0, 1].
    Example:
        >>> cascade = MattingCascade(MattingRefine("mobilenetv2"), ViTMatte("small"))
        >>> Predictor("bgmv2+vitmatte", model=cascade)(src=src, bgr=bgr)["pha"].shape == src.shape[:2]
        True
    """

    def __init__(self, bgmv2, vitmatte, coarse_model_type="mattingrefine", trimap_band=10, trimap_low=0.05,
                 trimap_high=0.95):
        super().__init__()
        self.bgmv2, self.vitmatte = bgmv2, vitmatte
        self.coarse_model_type = coarse_model_type
        self.trimap_band, self.trimap_low, self.trimap_high = trimap_band, trimap_low, trimap_high

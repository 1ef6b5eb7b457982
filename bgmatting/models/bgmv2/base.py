"""MattingBase: the coarse network (encoder + ASPP + decoder) of BackgroundMattingV2."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from bgmatting.errors import UserError
from bgmatting.models.backbones import build_encoder
from bgmatting.models.bgmv2.aspp import ASPP
from bgmatting.models.bgmv2.decoder import Decoder

HIDDEN_CHANNELS = 32


def check_src_bgr(src, bgr, multiple: int = 1):
    """Raise UserError unless ``src`` and ``bgr`` are (B, 3, H, W) of equal shape with H, W divisible by ``multiple``."""
    if not paddle.in_dynamic_mode():  # static-graph export: sides are symbolic, the Predictor checks its inputs
        return
    if src.ndim != 4 or src.shape[1] != 3:
        raise UserError(f"src must be (B, 3, H, W), got {list(src.shape)}")
    if list(src.shape) != list(bgr.shape):
        raise UserError(f"src and bgr must have the same shape, got {list(src.shape)} and {list(bgr.shape)}")
    if src.shape[2] % multiple or src.shape[3] % multiple:
        raise UserError(f"src and bgr height and width must be divisible by {multiple}, got "
                        f"{src.shape[2]}x{src.shape[3]} (pad the input, e.g. with the Predictor)")


def split_base_output(x):
    """Split the decoder's 37 channels into (pha, fgr_residual, err, hid): raw (B,1), (B,3), clamped err
    (B,1) in [0,1], ReLU'd hidden (B,32). pha is returned unclamped so callers choose when to clamp."""
    return x[:, 0:1], x[:, 1:4], x[:, 4:5].clip(0.0, 1.0), F.relu(x[:, 5:])


class MattingBase(nn.Layer):
    """Coarse matting network of BackgroundMattingV2, with the official module tree and parameter names.

    Args:
        backbone: ``"resnet50"``, ``"resnet101"`` or ``"mobilenetv2"`` (official), or PaddleSeg's
            ``"resnet50_vd"`` / ``"resnet101_vd"`` (extra; no official checkpoints exist for these).
        backbone_pretrained: PaddleSeg ImageNet weights for the ``*_vd`` backbones (optional).
    Input:
        src: (B, 3, H, W) RGB source in [0, 1]. H, W divisible by 4 is enough for any backbone here.
        bgr: (B, 3, H, W) RGB clean plate in [0, 1], same shape.
    Output:
        pha: (B, 1, H, W) alpha in [0, 1].
        fgr: (B, 3, H, W) foreground in [0, 1] (a predicted residual added to ``src``, then clamped).
        err: (B, 1, H, W) predicted error map in [0, 1].
        hid: (B, 32, H, W) hidden features (>= 0) for the refiner.
    Example:
        >>> model = MattingBase("mobilenetv2")
        >>> pha, fgr, err, hid = model(src, bgr)
    """

    def __init__(self, backbone: str, backbone_pretrained: str = None):
        super().__init__()
        self.backbone, channels = build_encoder(backbone, in_channels=6, pretrained=backbone_pretrained)
        self.aspp = ASPP(channels[0], (3, 6, 9))
        self.decoder = Decoder([256, 128, 64, 48, 1 + 3 + 1 + HIDDEN_CHANNELS], [*channels[1:], 6])

    def run_base(self, src, bgr):
        """The shared encoder-ASPP-decoder pass → the decoder's raw (B, 37, H, W) output."""
        x, *shortcuts = self.backbone(paddle.concat([src, bgr], axis=1))
        return self.decoder(self.aspp(x), *shortcuts)

    def forward(self, src, bgr):
        check_src_bgr(src, bgr)
        pha, fgr, err, hid = split_base_output(self.run_base(src, bgr))
        return pha.clip(0.0, 1.0), (fgr + src).clip(0.0, 1.0), err, hid

"""MattingRefine: the base network at reduced resolution followed by the patch refiner at full resolution."""
from bgmatting.models.bgmv2.base import MattingBase, check_src_bgr, split_base_output
from bgmatting.models.bgmv2.refiner import Refiner
from bgmatting.models.ops import resize_bilinear, scaled_size


class MattingRefine(MattingBase):
    """BackgroundMattingV2's full model, with the official options, defaults, parameter names and outputs.

    Args:
        backbone: ``"resnet50"``, ``"resnet101"`` or ``"mobilenetv2"``.
        backbone_scale: downsampling of the input for the base network, ≤ 1/2 (0.25 for HD, 0.125 for 4K).
        refine_mode: ``"full"``, ``"sampling"`` or ``"thresholding"``.
        refine_sample_pixels: pixels refined in sampling mode (80,000 for HD, 320,000 for 4K).
        refine_threshold: error threshold of thresholding mode.
        refine_kernel_size: 1 or 3.
        refine_prevent_oversampling: skip zero-error patches in sampling mode.
        refine_patch_crop_method: ``"unfold"`` | ``"roi_align"`` | ``"gather"`` (same results).
        refine_patch_replace_method: ``"scatter_nd"`` | ``"scatter_element"`` (same results).
        backbone_pretrained: PaddleSeg ImageNet weights for the extra ``*_vd`` backbones (see MattingBase).
    Input:
        src: (B, 3, H, W) RGB in [0, 1]; bgr: (B, 3, H, W) clean plate in [0, 1]; H and W divisible by 4.
    Output:
        pha: (B, 1, H, W) alpha in [0, 1]; fgr: (B, 3, H, W) foreground in [0, 1];
        pha_sm: (B, 1, Hc, Wc) coarse alpha in [0, 1]; fgr_sm: (B, 3, Hc, Wc) coarse foreground in [0, 1];
        err_sm: (B, 1, Hc, Wc) coarse error in [0, 1]; ref_sm: (B, 1, H/4, W/4), 1 = refined 4×4 patch.
        (Hc, Wc) = floor((H, W) · backbone_scale).
    Example:
        >>> model = MattingRefine("resnet50", backbone_scale=0.25, refine_mode="sampling", refine_sample_pixels=80_000)
        >>> pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = model(src, bgr)
    """

    def __init__(self, backbone: str, backbone_scale: float = 1 / 4, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1, refine_kernel_size: int = 3,
                 refine_prevent_oversampling: bool = True, refine_patch_crop_method: str = "unfold",
                 refine_patch_replace_method: str = "scatter_nd", backbone_pretrained: str = None):
        if not 0 < backbone_scale <= 0.5:
            raise ValueError(f"backbone_scale must be in (0, 1/2], got {backbone_scale}")
        super().__init__(backbone, backbone_pretrained)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size,
                               refine_prevent_oversampling, refine_patch_crop_method, refine_patch_replace_method)

    def forward(self, src, bgr):
        check_src_bgr(src, bgr, multiple=4)
        small = scaled_size(src.shape[2], src.shape[3], self.backbone_scale)
        src_sm, bgr_sm = resize_bilinear(src, small), resize_bilinear(bgr, small)
        pha_sm, fgr_sm, err_sm, hid_sm = split_base_output(self.run_base(src_sm, bgr_sm))
        pha_sm = pha_sm.clip(0.0, 1.0)
        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        return (pha.clip(0.0, 1.0), (fgr + src).clip(0.0, 1.0), pha_sm, (fgr_sm + src_sm).clip(0.0, 1.0),
                err_sm, ref_sm)

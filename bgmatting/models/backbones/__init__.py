"""Backbones of the base network: ``build_encoder(name, in_channels)`` → (encoder, its feature channels)."""
from bgmatting.errors import UserError

BGMV2_BACKBONES = ("resnet50", "resnet101", "mobilenetv2")
EXTRA_BACKBONES = ("resnet50_vd", "resnet101_vd")


def build_encoder(name: str, in_channels: int, pretrained: str = None):
    """Build a base-network encoder: the official three, or PaddleSeg's ResNet-vd (``pretrained`` = PaddleSeg
    ImageNet weights, only for those).

    Returns:
        (encoder, channels): ``channels`` = (x4, x3, x2, x1) feature channels, the ASPP input first.
    Raises:
        UserError: unknown backbone name.
    """
    if name in ("resnet50", "resnet101"):
        from bgmatting.models.backbones.resnet import ResNetEncoder

        return ResNetEncoder(in_channels, name), (2048, 512, 256, 64)
    if name == "mobilenetv2":
        from bgmatting.models.backbones.mobilenetv2 import MobileNetV2Encoder

        return MobileNetV2Encoder(in_channels), (320, 32, 24, 16)
    if name in EXTRA_BACKBONES:
        from bgmatting.models.backbones.paddleseg_resnet_vd import PaddleSegResNetVdEncoder

        return PaddleSegResNetVdEncoder(name, in_channels, pretrained), (2048, 512, 256, 64)
    raise UserError(f"unknown backbone '{name}' (choose from {', '.join(BGMV2_BACKBONES + EXTRA_BACKBONES)})")

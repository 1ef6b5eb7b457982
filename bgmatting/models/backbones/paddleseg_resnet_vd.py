"""PaddleSeg's ResNet-vd backbones (``ResNet50_vd``, ``ResNet101_vd``) as extra base-network encoders.

Not part of the official BackgroundMattingV2; useful because PaddleSeg publishes ImageNet-pretrained weights for
them. paddleseg is imported only when one of these backbones is built.
"""
import paddle.nn as nn

PADDLESEG_BACKBONES = {"resnet50_vd": "ResNet50_vd", "resnet101_vd": "ResNet101_vd"}


class PaddleSegResNetVdEncoder(nn.Layer):
    """A PaddleSeg ResNet-vd (output stride 16) adapted to the encoder interface of the base network.

    Args:
        name: ``"resnet50_vd"`` or ``"resnet101_vd"``.
        in_channels: input channels (6 for src+bgr).
        pretrained: optional path/URL of PaddleSeg ImageNet weights (layers whose shape differs, such as the
            6-channel first conv, are skipped by PaddleSeg's loader).
    Input:
        x: (B, in_channels, H, W).
    Output:
        (x4, x3, x2, x1, x0): 1/16 (2048 ch), 1/8 (512), 1/4 (256), 1/2 (64, the deep stem) and the input.
    Example:
        >>> enc = PaddleSegResNetVdEncoder("resnet50_vd", 6)
    """

    def __init__(self, name: str, in_channels: int, pretrained: str = None):
        super().__init__()
        from paddleseg.cvlibs import manager
        import paddleseg.models  # noqa: F401  (registers the backbones)

        self.body = manager.BACKBONES[PADDLESEG_BACKBONES[name]](
            output_stride=16, in_channels=in_channels, pretrained=pretrained)

    def forward(self, x):
        x2, x3, _, x4 = self.body(x)
        return x4, x3, x2, self.body.conv1_logit, x

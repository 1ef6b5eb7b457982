"""MobileNetV2 encoder with output stride 16, torchvision/BackgroundMattingV2 layout."""
import paddle.nn as nn
from paddle.vision.models.mobilenetv2 import MobileNetV2


def _depthwise_like(conv, stride, dilation):
    return nn.Conv2D(conv._in_channels, conv._out_channels, 3, stride=stride, padding=dilation,
                     dilation=dilation, groups=conv._groups, bias_attr=False)


class MobileNetV2Encoder(MobileNetV2):
    """MobileNetV2 encoder as BackgroundMattingV2's: last block removed, ``features[14]`` stride 1 and
    dilation 2 in ``features[15:]`` (output stride 16), no classifier. Parameter names equal torchvision's
    (``features.N.conv.M…``).

    Args:
        in_channels: input channels (6 for src+bgr).
    Input:
        x: (B, in_channels, H, W) float.
    Output:
        (x4, x3, x2, x1, x0): features at 1/16 (320 ch), 1/8 (32), 1/4 (24), 1/2 (16) and 1/1 (the input).
    Example:
        >>> enc = MobileNetV2Encoder(6)
        >>> x4 = enc(paddle.rand([1, 6, 64, 64]))[0]   # [1, 320, 4, 4]
    """

    def __init__(self, in_channels: int):
        super().__init__(num_classes=0, with_pool=False)
        if in_channels != 3:
            self.features[0][0] = nn.Conv2D(in_channels, 32, 3, stride=2, padding=1, bias_attr=False)
        self.features = self.features[:-1]
        block = self.features[14].conv[1]
        block[0] = _depthwise_like(block[0], stride=1, dilation=1)
        for feature in list(self.features)[15:]:
            feature.conv[1][0] = _depthwise_like(feature.conv[1][0], stride=1, dilation=2)

    def forward(self, x):
        x0 = x
        x = self.features[1](self.features[0](x))
        x1 = x
        x = self.features[3](self.features[2](x))
        x2 = x
        for i in range(4, 7):
            x = self.features[i](x)
        x3 = x
        for i in range(7, 18):
            x = self.features[i](x)
        return x, x3, x2, x1, x0

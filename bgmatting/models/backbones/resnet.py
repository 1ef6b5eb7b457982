"""ResNet-50/101 encoder with a dilated last stage (output stride 16), torchvision/BackgroundMattingV2 layout."""
import paddle.nn as nn
from paddle.vision.models.resnet import BottleneckBlock, ResNet

RESNET_DEPTHS = {"resnet50": 50, "resnet101": 101}


class ResNetEncoder(ResNet):
    """ResNet encoder returning features at every stride, as BackgroundMattingV2's ``ResNetEncoder``.

    Paddle's ResNet cannot dilate its last stage from the constructor, so the stride-2 convs of ``layer4`` are
    replaced by stride-1 ones (dilation 2 in the later blocks), reproducing torchvision's
    ``replace_stride_with_dilation=[False, False, True]``. Parameter names equal torchvision's
    (``conv1.weight``, ``layer4.2.conv3.weight`` …); ``avgpool``/``fc`` do not exist.

    Args:
        in_channels: input channels (6 for src+bgr).
        variant: ``"resnet50"`` or ``"resnet101"``.
    Input:
        x: (B, in_channels, H, W) float.
    Output:
        (x4, x3, x2, x1, x0): features at 1/16 (2048 ch), 1/8 (512), 1/4 (256), 1/2 (64) and 1/1 (the input).
    Example:
        >>> enc = ResNetEncoder(6, "resnet50")
        >>> x4, x3, x2, x1, x0 = enc(paddle.rand([1, 6, 64, 64]))   # x4: [1, 2048, 4, 4]
    """

    def __init__(self, in_channels: int, variant: str = "resnet101"):
        super().__init__(BottleneckBlock, depth=RESNET_DEPTHS[variant], num_classes=0, with_pool=False)
        if in_channels != 3:
            self.conv1 = nn.Conv2D(in_channels, 64, 7, stride=2, padding=3, bias_attr=False)
        first = self.layer4[0]
        first.conv2 = nn.Conv2D(512, 512, 3, stride=1, padding=1, bias_attr=False)
        first.downsample[0] = nn.Conv2D(1024, 2048, 1, stride=1, bias_attr=False)
        for block in list(self.layer4)[1:]:
            block.conv2 = nn.Conv2D(512, 512, 3, stride=1, padding=2, dilation=2, bias_attr=False)

    def forward(self, x):
        x0 = x
        x = self.relu(self.bn1(self.conv1(x)))
        x1 = x
        x = self.layer1(self.maxpool(x))
        x2 = x
        x = self.layer2(x)
        x3 = x
        x = self.layer4(self.layer3(x))
        return x, x3, x2, x1, x0

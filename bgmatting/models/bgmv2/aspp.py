"""Atrous Spatial Pyramid Pooling as torchvision's DeepLabV3 ``ASPP`` (same module tree and names)."""
import paddle
import paddle.nn as nn

from bgmatting.models.ops import resize_bilinear


def _conv_bn_relu(in_channels, out_channels, kernel_size, dilation=1):
    return nn.Sequential(
        nn.Conv2D(in_channels, out_channels, kernel_size, padding=dilation if kernel_size == 3 else 0,
                  dilation=dilation, bias_attr=False),
        nn.BatchNorm2D(out_channels),
        nn.ReLU(),
    )


class ASPPPooling(nn.Sequential):
    """Image-level branch: global average pool → 1×1 conv → BN → ReLU → bilinear back to the input size.

    Input: (B, C, H, W). Output: (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.AdaptiveAvgPool2D(1),
            nn.Conv2D(in_channels, out_channels, 1, bias_attr=False),
            nn.BatchNorm2D(out_channels),
            nn.ReLU(),
        )

    def forward(self, x):
        size = x.shape[-2:]
        return resize_bilinear(super().forward(x), size)


class ASPP(nn.Layer):
    """ASPP with a 1×1 branch, one 3×3 branch per atrous rate and an image-pooling branch, then a 1×1 projection
    (dropout 0.5, active only in training).

    Args:
        in_channels: encoder channels (2048 for ResNet, 320 for MobileNetV2).
        atrous_rates: dilation rates of the 3×3 branches; BackgroundMattingV2 uses (3, 6, 9).
        out_channels: 256.
    Input:
        x: (B, in_channels, h, w).
    Output:
        (B, out_channels, h, w).
    Example:
        >>> ASPP(320, (3, 6, 9))(paddle.rand([1, 320, 8, 8])).shape   # [1, 256, 8, 8]
    """

    def __init__(self, in_channels: int, atrous_rates=(3, 6, 9), out_channels: int = 256):
        super().__init__()
        branches = [_conv_bn_relu(in_channels, out_channels, 1)]
        branches += [_conv_bn_relu(in_channels, out_channels, 3, rate) for rate in atrous_rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.LayerList(branches)
        self.project = nn.Sequential(
            nn.Conv2D(len(branches) * out_channels, out_channels, 1, bias_attr=False),
            nn.BatchNorm2D(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x):
        return self.project(paddle.concat([conv(x) for conv in self.convs], axis=1))

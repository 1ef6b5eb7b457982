"""ViTMatte's fusion blocks (upsample + concat detail + conv) and matting head."""
import paddle
import paddle.nn as nn

from bgmatting.models.ops import resize_bilinear
from bgmatting.models.vitmatte.convstream import BasicConv3x3


class FusionBlock(nn.Layer):
    """Upsample features x2 (bilinear, half-pixel), concatenate ``[detail, features]``, 3x3 conv + BN + ReLU.

    Args:
        in_chans: detail channels + feature channels.
        out_chans: output channels.
    Input:
        x: (B, C, h, w) float features; detail: (B, Cd, 2h, 2w) float.
    Output:
        (B, out_chans, 2h, 2w) float, >= 0.
    Example:
        >>> FusionBlock(64 + 8, 32)(paddle.randn([1, 64, 4, 4]), paddle.randn([1, 8, 8, 8])).shape
        [1, 32, 8, 8]
    """

    def __init__(self, in_chans, out_chans):
        super().__init__()
        self.conv = BasicConv3x3(in_chans, out_chans, stride=1)

    def forward(self, x, detail):
        up = resize_bilinear(x, (2 * x.shape[2], 2 * x.shape[3]))
        return self.conv(paddle.concat([detail, up], axis=1))


class MattingHead(nn.Layer):
    """3x3 conv (bias) + BN + ReLU + 1x1 conv to one channel; the logits of alpha.

    Args:
        in_chans: input channels (32).
        mid_chans: hidden channels (16).
    Input:
        x: (B, in_chans, H, W) float.
    Output:
        (B, 1, H, W) float logits (apply sigmoid for alpha).
    Example:
        >>> MattingHead(32)(paddle.randn([1, 32, 8, 8])).shape
        [1, 1, 8, 8]
    """

    def __init__(self, in_chans=32, mid_chans=16):
        super().__init__()
        self.matting_convs = nn.Sequential(
            nn.Conv2D(in_chans, mid_chans, 3, stride=1, padding=1),
            nn.BatchNorm2D(mid_chans),
            nn.ReLU(),
            nn.Conv2D(mid_chans, 1, 1),
        )

    def forward(self, x):
        return self.matting_convs(x)

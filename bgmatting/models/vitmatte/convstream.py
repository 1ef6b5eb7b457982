"""ViTMatte's ConvStream: a few stride-2 3x3 conv layers that keep the image's fine detail for the decoder."""
import paddle.nn as nn


class BasicConv3x3(nn.Layer):
    """3x3 conv (no bias) + BatchNorm + ReLU (official ``Basic_Conv3x3``).

    Args:
        in_chans: input channels.
        out_chans: output channels.
        stride: 2 in the ConvStream, 1 in the fusion blocks.
    Input:
        x: (B, in_chans, H, W) float.
    Output:
        (B, out_chans, ceil(H / stride), ceil(W / stride)) float, >= 0.
    Example:
        >>> BasicConv3x3(4, 48)(paddle.randn([1, 4, 32, 32])).shape
        [1, 48, 16, 16]
    """

    def __init__(self, in_chans, out_chans, stride=2):
        super().__init__()
        self.conv = nn.Conv2D(in_chans, out_chans, 3, stride=stride, padding=1, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_chans)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class ConvStream(nn.Layer):
    """Detail features D0 (the input itself), D1 (1/2), D2 (1/4), ... from stride-2 :class:`BasicConv3x3` layers.

    Args:
        in_chans: input channels (4: normalised RGB + trimap).
        out_chans: channels of D1, D2, ... ((48, 96, 192) in ViTMatte).
    Input:
        x: (B, in_chans, H, W) float, H and W multiples of 2 ** len(out_chans).
    Output:
        list [D0, D1, ...]; D_i is (B, channels_i, H / 2^i, W / 2^i) float.
    Example:
        >>> [d.shape[1] for d in ConvStream(4, (48, 96, 192))(paddle.randn([1, 4, 32, 32]))]
        [4, 48, 96, 192]
    """

    def __init__(self, in_chans=4, out_chans=(48, 96, 192)):
        super().__init__()
        self.conv_chans = [in_chans] + list(out_chans)
        self.convs = nn.LayerList(
            [BasicConv3x3(self.conv_chans[i], self.conv_chans[i + 1]) for i in range(len(out_chans))]
        )

    def forward(self, x):
        details = [x]
        for conv in self.convs:
            details.append(conv(details[-1]))
        return details

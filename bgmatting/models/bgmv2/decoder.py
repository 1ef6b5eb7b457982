"""The base network's decoder: four (upsample → concat skip → conv) steps back to full resolution."""
import paddle
import paddle.nn as nn

from bgmatting.models.ops import resize_bilinear


class Decoder(nn.Layer):
    """BackgroundMattingV2 decoder.

    Args:
        channels: [c_in, c1, c2, c3, c_out], e.g. [256, 128, 64, 48, 37].
        feature_channels: channels of the skips [x3, x2, x1, x0], e.g. [512, 256, 64, 6].
    Input:
        x4: (B, c_in, H/16, W/16); x3: (B, ., H/8, W/8); x2: (B, ., H/4, W/4); x1: (B, ., H/2, W/2); x0: (B, ., H, W).
    Output:
        (B, c_out, H, W), unbounded (the last conv has a bias and no activation).
    Example:
        >>> Decoder([256, 128, 64, 48, 37], [32, 24, 16, 6])(x4, x3, x2, x1, x0)
    """

    def __init__(self, channels, feature_channels):
        super().__init__()
        self.conv1 = nn.Conv2D(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(channels[1])
        self.conv2 = nn.Conv2D(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(channels[2])
        self.conv3 = nn.Conv2D(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(channels[3])
        self.conv4 = nn.Conv2D(feature_channels[3] + channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x4, x3, x2, x1, x0):
        x = x4
        for conv, bn, skip in ((self.conv1, self.bn1, x3), (self.conv2, self.bn2, x2), (self.conv3, self.bn3, x1)):
            x = resize_bilinear(x, skip.shape[2:])
            x = self.relu(bn(conv(paddle.concat([x, skip], axis=1))))
        x = resize_bilinear(x, x0.shape[2:])
        return self.conv4(paddle.concat([x, x0], axis=1))

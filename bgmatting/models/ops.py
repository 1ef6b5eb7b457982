"""Resizing ops shared by the models, with PyTorch's ``align_corners=False`` / ``recompute_scale_factor`` semantics."""
import math

import paddle.nn.functional as F


def resize_bilinear(x, size):
    """Bilinear resize with half-pixel centres (torch ``align_corners=False``).

    Args:
        x: (B, C, H, W) float tensor.
        size: (h, w) output size.
    Returns:
        (B, C, h, w) tensor.
    """
    return F.interpolate(x, size=list(size), mode="bilinear", align_corners=False)


def resize_nearest(x, size):
    """Nearest-neighbour resize, torch's legacy ``nearest`` rule (source index = floor(dst * in / out)).

    Args:
        x: (B, C, H, W) tensor.
        size: (h, w) output size.
    Returns:
        (B, C, h, w) tensor.
    """
    return F.interpolate(x, size=list(size), mode="nearest")


def scaled_size(height, width, scale):
    """Output size of scaling by ``scale`` as torch's ``recompute_scale_factor=True`` computes it (floor)."""
    return int(math.floor(height * scale)), int(math.floor(width * scale))

"""Trimaps from alpha mattes: erode the sure-foreground and sure-background regions, mark the rest unknown.

Values follow the Composition-1k convention: 0 = background, 128 = unknown, 255 = foreground.
"""
import cv2
import numpy as np

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255


def _erode(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    if kernel_size <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    return cv2.erode(mask, kernel)


def trimap_from_alpha(alpha: np.ndarray, fg_kernel: int = 10, bg_kernel: int = 10, eps: float = 1e-4) -> np.ndarray:
    """Trimap whose unknown band covers every fractional alpha plus an eroded margin on both sides.

    Foreground is ``alpha >= 1 - eps`` eroded by an elliptical kernel of ``fg_kernel`` pixels; background is
    ``alpha <= eps`` eroded by ``bg_kernel`` pixels; everything else is unknown (ViTMatte's ``GenMask``).

    Args:
        alpha: float array (H, W) in [0, 1].
        fg_kernel, bg_kernel: erosion kernel diameters in pixels (0 = no erosion).
    Returns:
        uint8 array (H, W) with values in {0, 128, 255}.
    """
    fg = _erode((alpha >= 1.0 - eps).astype(np.uint8), fg_kernel)
    bg = _erode((alpha <= eps).astype(np.uint8), bg_kernel)
    trimap = np.full(alpha.shape, UNKNOWN, np.uint8)
    trimap[fg == 1] = FOREGROUND
    trimap[bg == 1] = BACKGROUND
    return trimap


def random_trimap(alpha: np.ndarray, rng: np.random.Generator, max_kernel: int = 30) -> np.ndarray:
    """:func:`trimap_from_alpha` with independent random kernel sizes in [1, max_kernel) (training augmentation).

    Args:
        alpha: float array (H, W) in [0, 1].
        rng: numpy random generator (the only source of randomness, for reproducibility).
    Returns:
        uint8 array (H, W) with values in {0, 128, 255}.
    """
    return trimap_from_alpha(alpha, int(rng.integers(1, max_kernel)), int(rng.integers(1, max_kernel)))


def trimap_from_coarse_alpha(alpha: np.ndarray, low: float = 0.05, high: float = 0.95, band: int = 10) -> np.ndarray:
    """Trimap from a coarse or predicted alpha (e.g. a segmentation or a BackgroundMattingV2 output).

    Pixels with ``low < alpha < high`` are unknown, and so is everything within ``band`` pixels of the
    boundary between ``alpha >= high`` and ``alpha <= low`` (the band is grown by dilating the unknown
    region and the foreground/background edge with an elliptical kernel of diameter ``2·band + 1``).

    Args:
        alpha: float array (H, W) in [0, 1].
        low, high: thresholds for sure background / sure foreground.
        band: half-width in pixels of the unknown band around edges.
    Returns:
        uint8 array (H, W) with values in {0, 128, 255}.
    """
    foreground = (alpha >= high).astype(np.uint8)
    background = (alpha <= low).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    unknown = 1 - foreground - background
    edge = cv2.dilate(foreground, kernel) & cv2.dilate(background, kernel)
    unknown = cv2.dilate(unknown, kernel) | edge if band > 0 else unknown
    trimap = np.where(foreground == 1, FOREGROUND, BACKGROUND).astype(np.uint8)
    trimap[unknown == 1] = UNKNOWN
    return trimap

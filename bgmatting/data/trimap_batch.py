"""ViTMatte training batches from (pha, fgr, bgr) samples: online trimaps, crops centred on unknown pixels, composite.

Per sample, as the official ``GenMask`` + ``RandomCrop`` + ``Composite`` (hustvl/ViTMatte ``data/dim_dataset.py``):
the trimap is made from the ground-truth alpha by eroding its sure foreground and sure background with independent
random elliptical kernels (:func:`bgmatting.data.trimap.random_trimap`, sizes 1 … ``max_kernel`` − 1); a
``crop``×``crop`` window is centred on a random unknown pixel (shifted to stay inside the image; a random window
when there is no unknown pixel); the photo is ``fgr·pha + bgr·(1 − pha)``.

Example:
    >>> image, trimap, pha = trimap_training_batch(pha, fgr, bgr, rng, crop=512, max_kernel=30)
    >>> pixel_values = normalize_and_pad(image, trimap / 255.0)   # bgmatting.models.vitmatte_processing
"""
import numpy as np

from bgmatting.data.synthetic import composite
from bgmatting.data.trimap import UNKNOWN, random_trimap


def unknown_centred_window(trimap: np.ndarray, rng: np.random.Generator, crop: int):
    """Top-left corner (y, x) of a ``crop``×``crop`` window centred on a random unknown pixel of ``trimap``.

    The window is shifted to lie inside the image; with no unknown pixel the centre is random.

    Args:
        trimap: uint8 (H, W) in {0, 128, 255}, H and W >= crop.
    Returns:
        (y, x) ints with 0 <= y <= H − crop and 0 <= x <= W − crop.
    """
    height, width = trimap.shape
    rows, cols = np.nonzero(trimap == UNKNOWN)
    if rows.size:
        pick = int(rng.integers(rows.size))
        cy, cx = int(rows[pick]), int(cols[pick])
    else:
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y = min(max(cy - crop // 2, 0), height - crop)
    x = min(max(cx - crop // 2, 0), width - crop)
    return y, x


def trimap_training_batch(pha, fgr, bgr, rng: np.random.Generator, crop: int, max_kernel: int = 30):
    """One ViTMatte training batch.

    Args:
        pha: (B, H, W, 1), fgr and bgr: (B, H, W, 3), float32 in [0, 1], H and W >= crop.
        rng: the batch's generator (its only source of randomness).
        crop: side of the square crop.
        max_kernel: erosion kernels are drawn from 1 … max_kernel − 1 (official: 30 → 1–29).
    Returns:
        image (B, crop, crop, 3) float32 in [0, 1]; trimap (B, crop, crop) float32 in {0, 128, 255};
        pha (B, crop, crop, 1) float32 in [0, 1].
    """
    images, trimaps, alphas = [], [], []
    for alpha, foreground, background in zip(pha, fgr, bgr):
        trimap = random_trimap(alpha[:, :, 0], rng, max_kernel)
        y, x = unknown_centred_window(trimap, rng, crop)
        window = (slice(y, y + crop), slice(x, x + crop))
        alpha = alpha[window]
        images.append(composite(foreground[window], alpha[:, :, 0], background[window]))
        trimaps.append(trimap[window].astype(np.float32))
        alphas.append(alpha)
    return np.stack(images), np.stack(trimaps), np.stack(alphas).astype(np.float32)

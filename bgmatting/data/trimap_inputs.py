"""Trimap model inputs from user files: a trimap as given, or one built from a binary/soft mask.

predict.py pairs ``--trimap`` (or ``--mask``) frames with ``--src`` frames like clean plates (an image for all, or a
folder/video paired by sorted path / frame index); :class:`TrimapInput` turns each paired frame into the model's
uint8 trimap and rejects what cannot be one: a size that differs from the photo's, or trimap values other than
0/128/255.

Example:
    >>> to_trimap = TrimapInput(mask_width=15)          # --mask: unknown band of ±15 px around the mask's edges
    >>> trimap = to_trimap("0001", photo, mask_frame)    # uint8 (H, W) in {0, 128, 255}
"""
import numpy as np

from bgmatting.data.layouts import TRIMAP_VALUES
from bgmatting.data.trimap import trimap_from_coarse_alpha
from bgmatting.errors import UserError


def trimap_from_mask(mask: np.ndarray, width: int) -> np.ndarray:
    """A trimap from a binary or soft mask: soft pixels and everything within ``width`` px of the mask's edge are
    unknown (dilation of the edge band by an elliptical kernel), the rest of the mask foreground, the rest
    background (:func:`bgmatting.data.trimap.trimap_from_coarse_alpha` with thresholds 0.05 / 0.95).

    Args:
        mask: uint8 (H, W) in 0..255 (255 = foreground).
        width: half-width in pixels of the unknown band (>= 0).
    Returns:
        uint8 (H, W) in {0, 128, 255}.
    """
    return trimap_from_coarse_alpha(mask.astype(np.float32) / 255.0, band=width)


def check_trimap_values(trimap: np.ndarray, name: str) -> None:
    """UserError when ``trimap`` (uint8 (H, W)) holds values other than 0/128/255, naming a few of them."""
    bad = ~np.isin(trimap, TRIMAP_VALUES)
    if bad.any():
        values = np.unique(trimap[bad])
        raise UserError(f"trimap {name} has values other than 0/128/255 ({len(values)} others, e.g. "
                        f"{', '.join(str(v) for v in values[:3])}); for a mask or a soft matte use --mask instead")


class TrimapInput:
    """Turns the frame paired with each photo into a trimap.

    Args:
        mask_width: None → the frames are trimaps (0/128/255, checked); an int → the frames are masks and the
            trimap's unknown band is ``mask_width`` px wide on each side of the mask's edges.
        what: the flag named in messages (``--trimap`` / ``--mask``).
    Input:
        ``(name, photo, frame)``: the photo's name, the photo (H, W, 3) uint8 and the paired frame (H, W, 3) or
        (H, W) uint8 (for RGB frames, the first channel is used, as :func:`bgmatting.data.io.read_trimap`).
    Output:
        uint8 (H, W) trimap in {0, 128, 255}.
    Example:
        >>> TrimapInput()("img", photo, read_trimap("trimap.png"))
    """

    def __init__(self, mask_width=None, what="--trimap"):
        if mask_width is not None and mask_width < 0:
            raise UserError(f"--mask-width must be >= 0 pixels, got {mask_width}")
        self.mask_width, self.what = mask_width, what

    def __call__(self, name, photo, frame):
        grey = frame[:, :, 0] if frame.ndim == 3 else frame
        if grey.shape != photo.shape[:2]:
            raise UserError(f"size mismatch for {name}: --src is {photo.shape[1]}x{photo.shape[0]} but {self.what} is "
                            f"{grey.shape[1]}x{grey.shape[0]}")
        if self.mask_width is not None:
            return trimap_from_mask(grey, self.mask_width)
        check_trimap_values(grey, f"{self.what} for {name}")
        return np.ascontiguousarray(grey)

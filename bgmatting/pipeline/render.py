"""Output types → images, one implementation for predict.py and the web app.

A model's result is a dict of float32 arrays in [0, 1]: ``pha`` (H, W), ``fgr`` (H, W, 3), and for
BackgroundMattingV2 ``err`` and ``ref`` (H, W) (see :class:`bgmatting.engine.predictor.Predictor`). Each output type
becomes one uint8 image of the input's size:

- ``com``: the official RGBA cut-out (:func:`bgmatting.data.compositing.cutout_rgba`), (H, W, 4); or, given a
  background, ``fgr·pha + background·(1 − pha)``, (H, W, 3) RGB.
- ``pha``, ``err``, ``ref``: grey (H, W). ``fgr``: RGB (H, W, 3).
- ``trimap``: grey (H, W), 0/128/255 — the trimap the model used; ``bgr``: RGB (H, W, 3) — the plate as the model
  received it (aligned, resized or estimated). Only results that carry them have them
  (:mod:`bgmatting.pipeline.extras`).

Images are rendered :data:`BAND_ROWS` rows at a time straight into the uint8 result, so a full-resolution photo
needs no full-size float temporaries (an 8000×6000 ``com`` would otherwise take several GB of them).

Example:
    >>> images = {kind: render(kind, predictor(src=photo, bgr=plate)) for kind in ("com", "pha")}
"""
import numpy as np

from bgmatting.data.compositing import cutout_rgba
from bgmatting.data.io import to_uint8
from bgmatting.data.synthetic import composite

OUTPUT_TYPES = ("com", "pha", "fgr", "err", "ref", "trimap", "bgr")
BAND_ROWS = 256


def render(kind: str, result: dict, background: np.ndarray = None) -> np.ndarray:
    """One output type of a result as a uint8 image.

    Args:
        kind: one of :data:`OUTPUT_TYPES`.
        result: the model's outputs (see the module docstring); only those ``kind`` needs must be present.
        background: for ``com``: None (RGBA cut-out) or uint8 (H, W, 3) RGB to composite onto (may be a broadcast
            view of one colour).
    Returns:
        uint8 (H, W, 4) for the cut-out, (H, W, 3) for a composite, ``fgr`` or ``bgr``, (H, W) for
        ``pha``/``err``/``ref``/``trimap``.
    """
    if kind not in OUTPUT_TYPES:
        raise ValueError(f"unknown output type {kind!r}; choose from {', '.join(OUTPUT_TYPES)}")
    if kind != "com" and kind not in result:
        raise ValueError(f"this result has no {kind!r} (see bgmatting.pipeline.extras)")
    height, width = result["pha"].shape
    channels = {"com": 4 if background is None else 3, "fgr": 3, "bgr": 3}.get(kind)
    image = np.empty((height, width) + ((channels,) if channels else ()), np.uint8)
    for top in range(0, height, BAND_ROWS):
        rows = slice(top, top + BAND_ROWS)
        image[rows] = to_uint8(_band(kind, result, background, rows))
    return image


def _band(kind, result, background, rows):
    """Rows ``rows`` of output ``kind`` as float in [0, 1]."""
    if kind != "com":
        return result[kind][rows]
    fgr, pha = result["fgr"][rows], result["pha"][rows]
    if background is None:
        return cutout_rgba(fgr, pha)
    return composite(fgr, pha, background[rows].astype(np.float32) / 255.0)

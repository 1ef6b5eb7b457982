"""Pairing each source frame with its guide (a clean plate or a trimap/mask frame) and making the model's guide.

A guide given as one image serves every frame; a folder or a video is paired with ``--src`` by sorted path /
frame index and must match it in number. Undecodable video frames arrive as None (see
:mod:`bgmatting.data.video`) and keep both sides in step.

Example:
    >>> check_pairing(src, plate_source)
    >>> to_plate = PlateInput(aligner=PlateAligner("full"))
    >>> for name, frame, plate in frame_pairs(src, plate_source):
    ...     bgr = to_plate(name, frame, plate)            # uint8 (H, W, 3), the frame's size
"""
import sys

import cv2
import numpy as np
from tqdm import tqdm

from bgmatting.data.plate_estimation import PlateEstimate, estimate_plate
from bgmatting.data.video import ThreadedReader
from bgmatting.errors import UserError


def check_pairing(src, guide, what="--bgr"):
    """Raise UserError for src/guide combinations that cannot be paired.

    Args:
        src: a :class:`bgmatting.data.video.FrameSource`.
        guide: a FrameSource, or None for a plate still to be estimated from ``src`` (``--bgr auto``).
        what: the guide's flag, for messages.
    """
    if guide is None:
        if src.kind == "image":
            raise UserError("--bgr auto needs a video or a folder of frames as --src, not a single image")
        return
    if guide.kind == "image":
        return
    if src.kind == "image":
        raise UserError(f"--src is one image but {what} is a {guide.kind}; pass one image")
    if len(src) and len(guide) and len(src) != len(guide):
        raise UserError(f"--src has {len(src)} {'images' if src.kind == 'folder' else 'frames'} but {what} has "
                        f"{len(guide)}; they are paired by sorted path / frame index and must match in number "
                        "(or pass a single plate image)")


def check_sizes(src_size, plate_size, resizable: bool, name="the first image"):
    """Raise UserError when the plate's (H, W) differs from the source's and ``resizable`` is False (neither
    ``--bgr-resize`` nor ``--preprocess-alignment``)."""
    if tuple(src_size[:2]) != tuple(plate_size[:2]) and not resizable:
        raise UserError(f"size mismatch for {name}: --src is {src_size[1]}x{src_size[0]} but --bgr is "
                        f"{plate_size[1]}x{plate_size[0]} (pass --bgr-resize to resize the plate, or "
                        "--preprocess-alignment to warp it)")


def frame_pairs(src, guide, what="--bgr"):
    """Yield ``(name, frame, guide_frame)`` in ``src`` order; either frame is None where a video frame is undecodable.

    Args:
        src: a FrameSource; guide: a FrameSource or one uint8 array (an estimated plate) used for every frame.
    Raises:
        UserError: ``guide`` runs out of frames before ``src``.
    """
    if isinstance(guide, np.ndarray) or guide.kind == "image":
        single = guide if isinstance(guide, np.ndarray) else guide.frame
        for name, frame in src:
            yield name, frame, single
        return
    guides = iter(guide)
    for name, frame in src:
        item = next(guides, None)
        if item is None:
            raise UserError(f"{what} ran out of frames before --src at {name}")
        yield name, frame, item[1]


def estimate_source_plate(src, aligner=None) -> PlateEstimate:
    """The clean plate of a video or folder shot without one (``--bgr auto``): the temporal median of its decodable
    frames (:func:`bgmatting.data.plate_estimation.estimate_plate`), with a progress bar on stderr. The frames come
    through the same reader as the run's (:class:`bgmatting.data.video.VideoSource`: rotated upright, same colour
    conversion), so the plate matches them pixel for pixel."""
    frames = tqdm(src, total=len(src) or None, desc="estimating plate", unit="frame", file=sys.stderr)
    return estimate_plate(ThreadedReader(frame for _, frame in frames if frame is not None), count=len(src) or 1,
                          aligner=aligner)


class PlateInput:
    """Turns the plate paired with a frame into the model's plate: aligned, resized, or checked for size.

    Args:
        aligner: a :class:`bgmatting.data.alignment.PlateAligner` (``--preprocess-alignment``) or None.
        resize: resize a plate of another size (``--bgr-resize``); without it (and without ``aligner``) a size
            mismatch is a UserError.
    Input:
        ``(name, frame, plate)``: frame uint8 (H, W, 3), plate uint8 (h, w, 3) RGB.
    Output:
        uint8 (H, W, 3) RGB plate.
    Attributes:
        warnings: frame name → alignment warning, for frames where alignment fell back (the identity, the previous
            homography, or — for images OpenCV cannot align, such as 1×1 or 5000×1 — a plain resize).
    """

    def __init__(self, aligner=None, resize: bool = False):
        self.aligner, self.resize = aligner, resize
        self.warnings = {}

    def __call__(self, name, frame, plate):
        if self.aligner is not None:
            try:
                alignment = self.aligner(frame, plate)
            except cv2.error:
                self.warnings[name] = (f"cannot align a {plate.shape[1]}x{plate.shape[0]} plate to a "
                                       f"{frame.shape[1]}x{frame.shape[0]} image (too small for features); "
                                       "the plate is only resized")
                return _resized(plate, frame.shape)
            if alignment.warning:
                self.warnings[name] = alignment.warning
            return alignment.plate
        check_sizes(frame.shape, plate.shape, self.resize, name)
        return _resized(plate, frame.shape)


def _resized(plate, shape):
    """``plate`` at (H, W) of ``shape`` (area interpolation; unchanged when it already is)."""
    if plate.shape[:2] == tuple(shape[:2]):
        return plate
    return cv2.resize(plate, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)

"""``--bgr auto``: estimate a clean plate from a video (or image sequence) shot without one.

The plate is the per-pixel temporal median of up to ``max_frames`` frames spread evenly over the clip: wherever
the subject uncovers a pixel in more than half of the frames, the median is the background there. Where no
colour holds a majority of the frames (the subject covers the pixel most of the time while moving) the estimate is
flagged unreliable and a warning says how much of the frame that is. A subject that stays *still* over a pixel
for most of the clip is indistinguishable from background and ends up in the plate — a warning is given when the
clip shows almost no motion at all. With an aligner (hand-held clips) every sampled frame is first warped onto
the middle sampled frame, so the plate is in that frame's geometry.

Example:
    >>> estimate = estimate_plate(frames, count=len(frames))
    >>> if estimate.warning: print(estimate.warning)
    >>> plate = estimate.plate                      # uint8 (H, W, 3)
"""
from dataclasses import dataclass

import numpy as np

_TOLERANCE = 12  # grey levels within which a frame "agrees" with the median (noise, compression)
_UNRELIABLE_WARN = 0.005  # warn when more than 0.5 % of the frame is unreliable
_MIN_FRAMES = 5


@dataclass
class PlateEstimate:
    """A clean plate estimated from frames.

    Attributes:
        plate: uint8 (H, W, 3) RGB.
        support: float32 (H, W) in [0, 1], share of the sampled frames that agree with the plate at each pixel.
        unreliable: bool (H, W), no majority (support < 0.5).
        frames: number of frames used.
        warning: empty, or one line saying why the estimate should not be trusted.
    """

    plate: np.ndarray
    support: np.ndarray
    unreliable: np.ndarray
    frames: int
    warning: str


def sample_indices(count: int, max_frames: int) -> np.ndarray:
    """Up to ``max_frames`` distinct frame indices spread evenly over ``count`` frames."""
    return np.unique(np.linspace(0, count - 1, min(count, max_frames)).round().astype(int))


def _median(stack, rows=64):
    """Per-pixel median of a (T, H, W, 3) uint8 stack, a band of rows at a time (np.median works in float64)."""
    plate = np.empty(stack.shape[1:], np.uint8)
    for top in range(0, stack.shape[1], rows):
        plate[top:top + rows] = np.round(np.median(stack[:, top:top + rows], axis=0)).astype(np.uint8)
    return plate


def estimate_plate(frames, count: int, max_frames: int = 48, aligner=None) -> PlateEstimate:
    """Temporal-median clean plate with a reliability check.

    Args:
        frames: iterable of uint8 (H, W, 3) RGB frames (e.g. the frames of a video), ``count`` of them.
        count: number of frames the iterable yields (used to spread the sample).
        max_frames: at most this many frames are kept in memory and used.
        aligner: optional :class:`bgmatting.data.alignment.PlateAligner`; each sampled frame is aligned to the
            middle sampled frame first (hand-held clips).
    Returns:
        :class:`PlateEstimate`.
    """
    wanted = set(sample_indices(max(count, 1), max_frames).tolist())
    sampled = [frame for index, frame in enumerate(frames) if index in wanted]
    if not sampled:
        raise ValueError("no frames to estimate a plate from")
    if aligner is not None:
        reference = sampled[len(sampled) // 2]
        sampled = [aligner(reference, frame).plate for frame in sampled]
    stack = np.stack(sampled)
    plate = _median(stack)
    agree = np.zeros(plate.shape[:2], np.float32)
    moving = np.zeros(plate.shape[:2], bool)
    for frame in stack:
        close = np.abs(frame.astype(np.int16) - plate).max(axis=2) <= _TOLERANCE
        agree += close
        moving |= ~close
    support = agree / len(stack)
    unreliable = support < 0.5
    warning = ""
    if len(stack) < _MIN_FRAMES:
        warning = (f"--bgr auto: only {len(stack)} frame(s); a plate estimate needs the subject to move out of "
                   "every pixel's way over many frames — shoot a clean plate")
    elif moving.mean() < 0.001:
        warning = ("--bgr auto: the frames show no motion, so a still subject is part of the estimated plate and "
                   "will not be matted — shoot a clean plate")
    elif unreliable.mean() > _UNRELIABLE_WARN:
        warning = (f"--bgr auto: the plate is unreliable for {100 * unreliable.mean():.1f}% of the frame (pixels "
                   "the subject covers in most frames); the matte there will be wrong — shoot a clean plate")
    return PlateEstimate(plate=plate, support=support, unreliable=unreliable, frames=len(stack), warning=warning)

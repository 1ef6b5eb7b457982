"""Where a run's outputs go: the background ``com`` is composited onto, and the sink writing each frame's images.

Layout of an output folder (names as :mod:`bgmatting.data.video` gives them):
``TYPE/NAME.png|jpg`` per output type for image output (``com`` cut-outs are RGBA PNGs whatever the format), or
``TYPE.mp4`` for video output, plus ``plate.png`` when the plate was estimated (``--bgr auto``).

Example:
    >>> sink = OutputSink(("com", "pha"), "png", fps=None, target=TargetBackground("0,255,0"))
    >>> sink.open(folder); sink.write("0001", sink.render(result)); sink.close()
"""
import re

import cv2
import numpy as np

from bgmatting.data.io import write_image
from bgmatting.data.video import VideoWriter, open_source
from bgmatting.errors import UserError
from bgmatting.pipeline.render import OUTPUT_TYPES, render

DEFAULT_VIDEO_BGR = "120,255,155"  # the official inference_video.py's flat green
PLATE_FILE = "plate.png"
#: every name a run writes at the top of its folder (only folders holding nothing else may be replaced)
OUTPUT_NAMES = frozenset(OUTPUT_TYPES) | {f"{kind}.mp4" for kind in OUTPUT_TYPES} | {PLATE_FILE}


class TargetBackground:
    """What ``com`` is composited onto: a colour ``R,G,B``, an image (resized to the frame) or a video/folder
    (looped; undecodable frames skipped).

    Output (``next(size)``): uint8 (H, W, 3) RGB for the next frame (a read-only broadcast view for a colour).
    Raises:
        UserError: a colour component above 255, or an unreadable image/video/folder (at construction).
    """

    def __init__(self, value: str):
        self.colour, self.source, self.frames = None, None, None
        if re.fullmatch(r"\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*", value):
            colour = [int(c) for c in value.split(",")]
            if max(colour) > 255:
                raise UserError(f"--target-bgr colour components must be 0..255, got {value}")
            self.colour = np.array(colour, np.uint8)
        else:
            self.source = open_source(value, "--target-bgr")

    def next(self, size) -> np.ndarray:
        """The background for the next frame of (H, W) ``size``."""
        if self.colour is not None:
            return np.broadcast_to(self.colour, (*size, 3))
        frame = self._next_frame()
        if frame.shape[:2] != tuple(size):
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return frame

    def _next_frame(self):
        for _ in range(2):  # the rest of this pass, then (a shorter video) one more from the start
            if self.frames is None:
                self.frames = iter(self.source)
            for _, frame in self.frames:
                if frame is not None:
                    return frame
            self.frames = None
        raise UserError(f"--target-bgr: no decodable frame in {self.source.path}")


class OutputSink:
    """Renders and writes the requested outputs of each frame, as images or as one video per output type.

    Args:
        types: output types (see :mod:`bgmatting.pipeline.render`); output_format: ``png``, ``jpg`` or ``video``;
        fps: frames per second of video output; target: a :class:`TargetBackground` for ``com``, or None for the
        RGBA cut-out.
    Attributes:
        written: frames written so far.
    """

    def __init__(self, types, output_format: str, fps=None, target: TargetBackground = None):
        self.types, self.format, self.fps, self.target = tuple(types), output_format, fps, target
        self.root, self.videos, self.written = None, {}, 0

    def open(self, root):
        """Write into folder ``root`` from now on."""
        self.root = root

    def render(self, result: dict) -> dict:
        """Output type → uint8 image for one frame's result (call in frame order: a target video advances)."""
        background = None
        if "com" in self.types and self.target is not None:
            background = self.target.next(result["pha"].shape)
        return {kind: render(kind, result, background) for kind in self.types}

    def write(self, name: str, images: dict):
        """Write one frame's images (on the writer thread, in frame order)."""
        for kind, image in images.items():
            if self.format == "video":
                if kind not in self.videos:
                    self.videos[kind] = VideoWriter(self.root / f"{kind}.mp4", self.fps, image.shape[:2])
                self.videos[kind].write(image)
            else:
                rgba = image.ndim == 3 and image.shape[2] == 4
                write_image(self.root / kind / f"{name}.{'png' if rgba else self.format}", image)
        self.written += 1

    def close(self, ok: bool = True):
        """Finish the videos (``ok=False``: discard them)."""
        for video in self.videos.values():
            video.close(ok)

"""Where a run's outputs go: the background ``com`` is composited onto, and the sink writing each frame's images.

Layout of an output folder (names as :mod:`bgmatting.data.video` gives them):
``TYPE/NAME.png|jpg`` per output type for image output (``com`` cut-outs are RGBA PNGs whatever the format;
``--pha-depth 16``: ``pha`` as 16-bit PNGs), or ``TYPE.mp4|mov|webm`` for video output
(:data:`~bgmatting.data.video.VIDEO_FORMATS`: timestamps, colour tags and audio of the source kept), plus
``plate.png`` when the plate was estimated (``--bgr auto``).

Example:
    >>> sink = OutputSink(("com", "pha"), "png", target=TargetBackground("0,255,0"))
    >>> sink.open(folder); sink.write("0001", sink.render(result)); sink.close()
    >>> sink = OutputSink(("com",), "mov-prores4444", timing=source)   # RGBA ProRes 4444 with the source's audio
"""
import re

import cv2
import numpy as np

from bgmatting.data.io import atomic_path, write_image
from bgmatting.data.video import ALPHA_FORMATS, DEFAULT_CRF, DEFAULT_PRESET, VIDEO_FORMATS, VideoEncoder, open_source
from bgmatting.errors import UserError
from bgmatting.pipeline.render import OUTPUT_TYPES, render

DEFAULT_VIDEO_BGR = "120,255,155"  # the official inference_video.py's flat green
PLATE_FILE = "plate.png"
IMAGE_FORMATS = ("png", "jpg")
#: every ``--output-format``; ``video`` is the earlier name of ``mp4``
OUTPUT_FORMATS = (*VIDEO_FORMATS, *IMAGE_FORMATS)
FORMAT_ALIASES = {"video": "mp4"}
#: every name a run writes at the top of its folder (only folders holding nothing else may be replaced)
OUTPUT_NAMES = frozenset(OUTPUT_TYPES) | {f"{kind}{ext}" for kind in OUTPUT_TYPES for ext in VIDEO_FORMATS.values()} \
    | {PLATE_FILE}


def needs_background(output_format: str) -> bool:
    """True for video formats whose ``com`` cannot carry transparency (composited onto a background instead)."""
    return output_format in VIDEO_FORMATS and output_format not in ALPHA_FORMATS


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
        types: output types (see :mod:`bgmatting.pipeline.render`); output_format: one of :data:`OUTPUT_FORMATS`
        (or ``video`` = ``mp4``); fps: frame rate of video output without ``timing``; target: a
        :class:`TargetBackground` for ``com``, or None for the RGBA cut-out (image and alpha video formats).
        timing: the video source (:class:`bgmatting.data.video.VideoSource`) whose timestamps, colour tags and audio
        the videos keep. crf: video quality (0 = lossless). preset: H.264/HEVC speed preset. pha_depth: 8, or 16 for
        16-bit PNG ``pha``.
    Attributes:
        names: the frames written so far, in order; written: how many. videos: output type → its
        :class:`~bgmatting.data.video.VideoEncoder`.
    """

    def __init__(self, types, output_format: str, fps=None, target: TargetBackground = None, timing=None,
                 crf: int = DEFAULT_CRF, pha_depth: int = 8, preset: str = DEFAULT_PRESET):
        output_format = FORMAT_ALIASES.get(output_format, output_format)
        if output_format not in OUTPUT_FORMATS:
            raise UserError(f"unknown output format {output_format}; choose from {', '.join(OUTPUT_FORMATS)}")
        if pha_depth not in (8, 16):
            raise UserError(f"--pha-depth must be 8 or 16, got {pha_depth}")
        if pha_depth == 16 and output_format != "png":
            raise UserError(f"--pha-depth 16 writes 16-bit PNGs: use it with --output-format png, not {output_format}")
        self.types, self.format, self.fps, self.target = tuple(types), output_format, fps, target
        self.timing, self.crf, self.pha_depth, self.preset = timing, crf, pha_depth, preset
        self.root, self.videos, self.names = None, {}, []

    @property
    def written(self) -> int:
        """Frames written so far."""
        return len(self.names)

    def open(self, root):
        """Write into folder ``root`` from now on."""
        self.root = root

    def render(self, result: dict) -> dict:
        """Output type → image for one frame's result (call in frame order: a target video advances): uint8, except
        ``pha`` at ``pha_depth`` 16 (uint16)."""
        background = None
        if "com" in self.types and self.target is not None:
            background = self.target.next(result["pha"].shape)
        images = {kind: render(kind, result, background) for kind in self.types if
                  not (kind == "pha" and self.pha_depth == 16)}
        if "pha" in self.types and self.pha_depth == 16:
            images["pha"] = (np.clip(result["pha"], 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        return {kind: images[kind] for kind in self.types}

    def write(self, name: str, images: dict):
        """Write one frame's images (on the writer thread, in frame order)."""
        for kind, image in images.items():
            if self.format in VIDEO_FORMATS:
                if kind not in self.videos:
                    self.videos[kind] = VideoEncoder(self.root / f"{kind}{VIDEO_FORMATS[self.format]}", self.format,
                                                     image.shape[:2], timing=self.timing, fps=self.fps or 25.0,
                                                     crf=self.crf, preset=self.preset)
                timestamps = getattr(self.timing, "timestamps", None) or {}
                self.videos[kind].write(image, timestamps.get(name))
            elif image.dtype == np.uint16:
                _write_png16(self.root / kind / f"{name}.png", image)
            else:
                rgba = image.ndim == 3 and image.shape[2] == 4
                write_image(self.root / kind / f"{name}.{'png' if rgba else self.format}", image)
        self.names.append(name)

    def close(self, ok: bool = True):
        """Finish the videos (``ok=False``: discard them)."""
        error = None
        for video in self.videos.values():
            try:
                video.close(ok)
            except BaseException as failure:  # close the others all the same
                error = error or failure
                ok = False
        if error is not None:
            raise error


def _write_png16(path, image: np.ndarray):
    """Atomically write a uint16 grey image as a 16-bit PNG."""
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise UserError(f"cannot encode a 16-bit PNG for {path}")
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(buffer.tobytes())

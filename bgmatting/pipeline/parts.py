"""predict.py over several ranks (:mod:`bgmatting.pipeline.ranks`): each rank's share as a part folder, and rank 0
joining the parts into the one output.

A rank other than 0 writes its frames' outputs into ``STAGING/.rank-R/TYPE/NAME.EXT`` — for image output exactly the
files the single-process run writes, for video output lossless PNGs of the frames the encoder would have received —
and ``part.json`` (the frame names in order, their timestamps, skipped frames, warnings, decoded count). Rank 0 does
the first share straight into the output, then per part in rank order moves the image files into place, or feeds the
PNG frames with their source timestamps to the same open encoders. Video is encoded once, by rank 0, from the very
frames and timestamps the single-process run encodes, so the outputs are identical (a lossy encoder's packets
depend on every frame before them: parts encoded separately and concatenated could not be).

Example:
    >>> report = run(predictor, pairs, "bgr", to_plate, sink, allow_empty=True)       # a rank > 0
    >>> write_part(part_folder(staging, ranks.rank), sink, report, source, tally.decoded)
    >>> report = run(…, keep_open=True); join_parts(ranks, staging, sink, report, source, tally.decoded)
"""
import json
import os
from dataclasses import dataclass

import cv2
import numpy as np

from bgmatting.data.io import atomic_path
from bgmatting.data.video import VIDEO_FORMATS
from bgmatting.errors import UserError

PART_FILE = "part.json"


def part_format(output_format: str) -> str:
    """The format a rank > 0 writes its share in: the output's for image formats, lossless PNG for video."""
    return "png" if output_format in VIDEO_FORMATS else output_format


@dataclass
class Tally:
    """Counts frames of ``--src`` that decoded, while ``pairs`` are iterated (``decoded`` for the report)."""

    decoded: int = 0

    def count(self, pairs):
        """Yield ``pairs`` (``(name, frame, guide_frame)``), counting those whose frame decoded."""
        for item in pairs:
            self.decoded += item[1] is not None
            yield item


def write_part(folder, sink, report, source, decoded: int):
    """Write ``part.json`` of a rank's finished share into ``folder`` (atomically: it marks the part complete).

    Args:
        sink: the rank's closed :class:`~bgmatting.pipeline.outputs.OutputSink`; report: its
            :class:`~bgmatting.pipeline.run.RunReport`; source: ``--src``; decoded: its frames that decoded.
    """
    timestamps = getattr(source, "timestamps", None) or {}
    part = {"names": sink.names, "timestamps": {name: timestamps[name] for name in sink.names if name in timestamps},
            "unreadable": report.unreadable, "warnings": report.warnings, "decoded": decoded,
            "frames_seen": getattr(source, "frames_seen", None)}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / PART_FILE) as tmp:
        tmp.write_text(json.dumps(part))


def join_parts(ranks, staging, sink, report, source, decoded: int):
    """Rank 0: append every other rank's part to the output in ``staging`` (rank order), then close ``sink``.

    Updates ``report`` (written, unreadable, warnings) and, for a video ``source``, its ``decoded`` and
    ``frames_seen`` to the whole run's. ``sink`` is rank 0's, still open (``run(…, keep_open=True)``); it is
    closed here, and discarded if a part cannot be joined.
    Raises:
        UserError: a rank failed or made no progress for ``ranks.timeout`` s, or a part is incomplete.
    """
    ok, frames_seen = False, None
    try:
        for rank, folder in ranks.parts(staging):
            part = _read_part(folder, rank)
            if sink.format in VIDEO_FORMATS:
                source.timestamps.update(part["timestamps"])
                for name in part["names"]:
                    sink.write(name, {kind: _read_frame(folder / kind / f"{name}.png") for kind in sink.types})
            else:
                _move_files(folder, staging)
                sink.names += part["names"]
            report.unreadable += part["unreadable"]
            report.warnings.update(part["warnings"])
            decoded += part["decoded"]
            frames_seen = part["frames_seen"]
        ok = True
    finally:
        sink.close(ok)
    report.written = sink.written
    if source.kind == "video":
        source.decoded, source.frames_seen = decoded, frames_seen  # the last rank read to the end
    if not report.written:
        raise UserError(f"no frame could be decoded ({len(report.unreadable)} undecodable); nothing written")


def _read_part(folder, rank: int) -> dict:
    try:
        return json.loads((folder / PART_FILE).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"rank {rank} said it was done but its part {folder / PART_FILE} cannot be read ({error}); "
                        "is --output-dir on a filesystem every machine shares?") from None


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB (or grey / RGBA) → PNG bytes (lossless; :func:`decode_png` gives the array back)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise UserError(f"cannot encode a {image.shape} image as PNG")
    return buffer.tobytes()


def decode_png(data: bytes, what: str = "a shared image") -> np.ndarray:
    """PNG bytes → the array :func:`encode_png` (or :func:`bgmatting.data.io.write_image`) was given."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"cannot decode {what}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def _read_frame(path) -> np.ndarray:
    """A frame of a part (a PNG written by :func:`bgmatting.data.io.write_image`) as the array it was."""
    try:
        return decode_png(path.read_bytes(), f"the frame {path} of a rank's part")
    except OSError as error:
        raise UserError(f"cannot read the frame {path} of a rank's part ({error.strerror or error})") from None


def _move_files(folder, staging):
    """Move the output files under ``folder`` to the same relative paths under ``staging``."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != PART_FILE:
            target = staging / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


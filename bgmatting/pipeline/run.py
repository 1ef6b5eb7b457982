"""The frame loop: frames decoded ahead on one thread, the model on this one, outputs written behind on another.

Example:
    >>> sink = OutputSink(("pha",), "png")
    >>> with OutputFolder("out") as staging:
    ...     sink.open(staging)
    ...     report = run(predictor, frame_pairs(src, plates), "bgr", PlateInput(), sink, total=len(src))
"""
import sys
from dataclasses import dataclass, field

from tqdm import tqdm

from bgmatting.data.video import ThreadedReader, ThreadedWriter
from bgmatting.errors import UserError


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        written: frames whose outputs were written.
        unreadable: names of frames skipped because the frame or its guide could not be decoded.
        warnings: frame name → guide warning (e.g. a plate alignment that fell back).
    """

    written: int = 0
    unreadable: list = field(default_factory=list)
    warnings: dict = field(default_factory=dict)


def run(predictor, pairs, guide: str, to_guide, sink, total: int = None, progress: bool = True) -> RunReport:
    """Matte every pair and write its outputs.

    Args:
        predictor: ``predictor(src=uint8 (H, W, 3), bgr=… | trimap=…) -> result dict`` (see
            :mod:`bgmatting.pipeline.render`), e.g. a :class:`bgmatting.engine.predictor.Predictor`.
        pairs: ``(name, frame, guide_frame)`` items (:func:`bgmatting.pipeline.pairing.frame_pairs`).
        guide: the model's guide argument, ``"bgr"`` or ``"trimap"``.
        to_guide: ``to_guide(name, frame, guide_frame) -> model guide``, e.g. a
            :class:`~bgmatting.pipeline.pairing.PlateInput` or :class:`bgmatting.data.trimap_inputs.TrimapInput`;
            the first of its ``warnings`` (if it keeps any) is printed when it happens.
        sink: an opened :class:`~bgmatting.pipeline.outputs.OutputSink` (closed here; its videos are kept only on
            success).
        total: the expected number of frames (progress bar), progress: show it.
    Returns:
        :class:`RunReport`.
    Raises:
        UserError: no frame at all could be decoded, or any error of the inputs, the model or the writes.
    """
    report = RunReport(warnings=getattr(to_guide, "warnings", {}))
    ok = False
    try:
        with ThreadedWriter() as writer:
            for name, frame, guide_frame in tqdm(ThreadedReader(pairs), total=total or None, unit="frame",
                                                 disable=not progress, file=sys.stderr):
                if frame is None or guide_frame is None:
                    report.unreadable.append(name)
                    continue
                warned = len(report.warnings)
                result = predictor(src=frame, **{guide: to_guide(name, frame, guide_frame)})
                if warned == 0 and report.warnings:
                    tqdm.write(f"warning: {name}: {report.warnings[name]}", file=sys.stderr)
                writer.submit(sink.write, name, sink.render(result))
        ok = True
    finally:
        sink.close(ok)
    report.written = sink.written
    if not report.written:
        raise UserError(f"no frame could be decoded ({len(report.unreadable)} undecodable); nothing written")
    return report

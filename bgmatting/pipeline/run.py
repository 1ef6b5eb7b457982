"""The frame loop: frames decoded ahead on one thread, the model on this one, outputs written behind on another.

Example:
    >>> sink = OutputSink(("pha",), "png")
    >>> with OutputFolder("out") as staging:
    ...     sink.open(staging)
    ...     report = run(predictor, frame_pairs(src, plates), "bgr", PlateInput(), sink, total=len(src))
"""
import sys
import time
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
    seconds: float = 0.0
    model_seconds: float = 0.0
    read_wait_seconds: float = 0.0
    write_wait_seconds: float = 0.0

    @property
    def model_busy(self) -> float:
        """The share of the run's time the model was computing (1.0: never waited on decoding or encoding)."""
        return self.model_seconds / self.seconds if self.seconds > 0 else 0.0

    def timing_line(self) -> str:
        """One line: the model's share of the time, and what it waited on."""
        share = (lambda part: f"{100 * part / self.seconds:.0f}%") if self.seconds > 0 else (lambda part: "0%")
        return (f"model busy {share(self.model_seconds)} of {self.seconds:.1f} s; waited "
                f"{share(self.read_wait_seconds)} for decoding, {share(self.write_wait_seconds)} for encoding/writing")


def run(predictor, pairs, guide: str, to_guide, sink, total: int = None, progress: bool = True,
        keep_open: bool = False, allow_empty: bool = False) -> RunReport:
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
        keep_open: leave the sink open after a successful loop (the caller writes more frames, then closes it).
        allow_empty: no error when no frame was written (a rank whose share was empty or undecodable).
    Returns:
        :class:`RunReport`, with the time the model computed and the time this thread waited for frames (decoding
        ahead) and for the writer (encoding behind).
    Raises:
        UserError: no frame at all could be decoded, or any error of the inputs, the model or the writes.
    """
    report = RunReport(warnings=getattr(to_guide, "warnings", {}))
    ok = False
    start = time.perf_counter()
    bar = tqdm(ThreadedReader(pairs), total=total or None, unit="frame", disable=not progress, file=sys.stderr)
    try:
        with ThreadedWriter() as writer:
            frames = iter(bar)
            while True:
                waited = time.perf_counter()
                item = next(frames, None)
                report.read_wait_seconds += time.perf_counter() - waited
                if item is None:
                    break
                name, frame, guide_frame = item
                if frame is None or guide_frame is None:
                    report.unreadable.append(name)
                    continue
                warned = len(report.warnings)
                model_input = to_guide(name, frame, guide_frame)
                computing = time.perf_counter()
                result = predictor(src=frame, **{guide: model_input})
                report.model_seconds += time.perf_counter() - computing
                if warned == 0 and report.warnings:
                    tqdm.write(f"warning: {name}: {report.warnings[name]}", file=sys.stderr)
                images = sink.render(result)
                waited = time.perf_counter()
                writer.submit(sink.write, name, images)
                report.write_wait_seconds += time.perf_counter() - waited
            waited = time.perf_counter()
        report.write_wait_seconds += time.perf_counter() - waited  # the writer finishing the queue
        ok = True
    finally:
        bar.close()  # ends the bar's line, so an error message starts on a line of its own
        closing = time.perf_counter()
        if not (ok and keep_open):
            sink.close(ok)  # the encoders' last frames
        report.write_wait_seconds += time.perf_counter() - closing
        report.seconds = time.perf_counter() - start
    report.written = sink.written
    if not report.written and not allow_empty:
        raise UserError(f"no frame could be decoded ({len(report.unreadable)} undecodable); nothing written")
    return report

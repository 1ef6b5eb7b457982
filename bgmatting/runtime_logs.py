"""Quiet runtimes: the internals Paddle, Paddle Inference (oneDNN) and paddle2onnx print from C++ are dropped unless
a tool runs with ``--verbose``.

Those lines (``W… eager_utils.cc:…] Paddle static graph(PIR) not support input out tensor for now!!!!!``,
``[Paddle2ONNX] Start parsing…``, oneDNN's ``ReduceMeanCheckIfOneDNNSupport``, paddle2onnx's ``[INFO] ONNX model
saved…``, Paddle's ``No ccache found`` warning from an export subprocess) are written straight to file descriptors 1
and 2, past Python. :func:`quiet_runtime_logs` points both descriptors at pipes for the duration of a block and
forwards every line except those patterns — glog errors (``E…``/``F…``) and anything unknown still get through —
while Python's own ``sys.stdout`` / ``sys.stderr`` keep writing to the terminal directly, so progress bars, warnings
and results are unaffected.

Example:
    >>> with quiet_runtime_logs(enabled=not args.verbose):
    ...     predictor = Predictor(..., backend="onnx")     # exports on the fly, silently
    ...     run(...)
"""
import contextlib
import io
import os
import re
import sys
import threading

#: lines dropped while quiet (matched at the start of the line, after leading spaces)
NOISE = [
    re.compile(r"[IW]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]"),  # glog INFO / WARNING
    re.compile(r"\[Paddle2ONNX\]"),
    re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(INFO|DEBUG)\]"),  # paddle2onnx's Python logger
    re.compile(r".*ReduceMeanCheckIfOneDNNSupport"),
    re.compile(r"-+ *Running PIR pass"),
    re.compile(r"\.*(?:.*/)?extension_utils\.py:\d+: UserWarning: No ccache found"),
    re.compile(r"warnings\.warn\(warning_message\)"),
    re.compile(r"I\d{4} .*onednn", re.IGNORECASE),
]


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of the runtime internals :data:`NOISE` describes."""
    text = line.lstrip()
    return any(pattern.match(text) for pattern in NOISE)


class _FilteredText(io.TextIOBase):
    """A text stream passing whole lines to ``target`` except noise (paddle2onnx prints its log with ``print``)."""

    def __init__(self, target):
        self.target, self.pending = target, ""

    def writable(self):
        return True

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if not is_noise(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self):
        if self.pending and not is_noise(self.pending):
            self.target.write(self.pending)
            self.pending = ""
        self.target.flush()

    def fileno(self):
        return self.target.fileno()

    @property
    def encoding(self):
        return self.target.encoding


class _Filter:
    """Descriptor ``fd`` redirected into a pipe whose lines are forwarded to a duplicate of the original, minus
    noise; Python's stream for ``fd`` is replaced by one writing to the duplicate directly."""

    def __init__(self, fd: int, stream_name: str):
        self.fd, self.stream_name = fd, stream_name
        self.original = getattr(sys, stream_name)
        with contextlib.suppress(Exception):
            self.original.flush()
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.reader = os.fdopen(read_end, "rb", buffering=0)
        self.direct = io.TextIOWrapper(os.fdopen(os.dup(self.saved), "wb", buffering=0),
                                       encoding=getattr(self.original, "encoding", None) or "utf-8",
                                       errors="backslashreplace", line_buffering=True, write_through=True)
        setattr(sys, stream_name, _FilteredText(self.direct) if stream_name == "stdout" else self.direct)
        self.thread = threading.Thread(target=self._forward, daemon=True)
        self.thread.start()

    def _forward(self):
        pending = b""
        while True:
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not is_noise(line.decode("utf-8", "replace")):
                    os.write(self.saved, line + b"\n")
        if pending and not is_noise(pending.decode("utf-8", "replace")):
            os.write(self.saved, pending)

    def close(self):
        with contextlib.suppress(Exception):
            self.direct.flush()
        with contextlib.suppress(Exception):  # Python writers that still hold the old object write to fd too
            self.original.flush()
        os.dup2(self.saved, self.fd)  # closes the pipe's last write end: the reader sees EOF
        self.thread.join(timeout=5)
        self.reader.close()
        with contextlib.suppress(Exception):
            getattr(sys, self.stream_name).flush()
        setattr(sys, self.stream_name, self.original)
        with contextlib.suppress(Exception):
            self.direct.close()
        os.close(self.saved)


@contextlib.contextmanager
def quiet_runtime_logs(enabled: bool = True):
    """Drop the runtimes' internal log lines from file descriptors 1 and 2 inside the block (see the module
    docstring); ``enabled=False`` (``--verbose``) changes nothing."""
    if not enabled:
        yield
        return
    filters = []
    try:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            try:
                getattr(sys, name).fileno()
            except (AttributeError, OSError, ValueError):
                continue  # a stream without a descriptor (captured in-process): nothing native to filter
            filters.append(_Filter(fd, name))
        yield
    finally:
        for active in reversed(filters):
            active.close()

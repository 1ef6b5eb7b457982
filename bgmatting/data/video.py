"""Frame sources (an image, a folder of images, a video) and writers, with decoding/encoding in background threads.

The official inference scripts decode and encode on the model's thread and are I/O-bound (users measured
2 it/s against 40 it/s in the speed test); here :class:`ThreadedReader` decodes ahead and :class:`ThreadedWriter`
encodes behind, so the model is never idle waiting for a frame.

Frame names are what outputs are named after. A folder's frames are named by relative path without the extension;
files that share one (``a.png``, ``a.jpg``, ``a.bmp``) keep their extension in the name (``a_png``, ``a_jpg``,
``a_bmp``) so no output overwrites another, while a unique stem stays as it is (``b.png`` → ``b``). A video's frames
are named by index (``00042``). A video frame that cannot be decoded is yielded as ``(name, None)`` so that sources
paired frame by frame stay in step; decoding goes on past it while the container has frames
(:class:`VideoSource`).

Example:
    >>> source = open_source("clip.mp4", "--src")
    >>> for name, frame in ThreadedReader(source):     # name "00000", frame uint8 (H, W, 3) RGB
    ...     pass
"""
import queue
import threading
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from bgmatting.data.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, atomic_path, is_image_path, is_video_path, \
    list_images, read_image
from bgmatting.errors import UserError

#: consecutive undecodable frames after which a video of unknown length is taken to have ended
MAX_UNDECODABLE_RUN = 32


class FrameSource:
    """Base class: a sequence of named RGB frames.

    Attributes:
        path: the file or folder; kind: ``"image"``, ``"folder"`` or ``"video"``.
        size: (H, W) of the first frame. fps: frames per second (videos) or None.
    Iteration yields ``(name, frame)``: ``name`` a relative path without extension (``"00042"`` for videos; see the
    module docstring for names that would collide), ``frame`` uint8 (H, W, 3) RGB, or None for a video frame that
    cannot be decoded.
    """

    kind = ""
    fps = None

    def __init__(self, path):
        self.path = Path(path)

    def __len__(self):
        raise NotImplementedError

    def __iter__(self):
        raise NotImplementedError


class ImageSource(FrameSource):
    """One image file (read at construction, so a bad file is reported before any output is written)."""

    kind = "image"

    def __init__(self, path):
        super().__init__(path)
        self.frame = read_image(path)
        self.size = self.frame.shape[:2]

    def __len__(self):
        return 1

    def __iter__(self):
        yield self.path.stem, self.frame


class FolderSource(FrameSource):
    """Images under a folder (recursive), sorted by relative path; the first is read at construction.

    Attributes:
        names: one distinct name per file (see the module docstring).
    """

    kind = "folder"

    def __init__(self, path):
        super().__init__(path)
        self.files = list_images(path)
        self.names = frame_names(self.files, self.path)
        self.size = read_image(self.files[0]).shape[:2]

    def __len__(self):
        return len(self.files)

    def __iter__(self):
        for name, file in zip(self.names, self.files):
            yield name, read_image(file)


def frame_names(files, root) -> list:
    """Distinct names for ``files`` under ``root``: the relative path without extension, with ``_EXT`` appended
    where several files share it (``a.png``, ``a.jpg`` → ``a_png``, ``a_jpg``).

    Raises:
        UserError: two files still map to one name (``a.png``, ``a.jpg`` and a file named ``a_png.bmp``).
    """
    stems = [str(file.relative_to(root).with_suffix("")) for file in files]
    shared = Counter(stems)
    names = [stem if shared[stem] == 1 else f"{stem}_{file.suffix[1:]}" for stem, file in zip(stems, files)]
    taken = {}
    for name, file in zip(names, files):
        if name in taken:
            raise UserError(f"{taken[name]} and {file} would both be written as {name}; rename one of them")
        taken[name] = file
    return names


class VideoSource(FrameSource):
    """A video file decoded with OpenCV; the first frame is decoded at construction to validate the file.

    A frame that fails to decode is yielded as ``(name, None)`` and decoding goes on: up to the frame count the
    container announces, or (count unknown) until :data:`MAX_UNDECODABLE_RUN` frames in a row fail. Failures after
    the last decodable frame are not yielded; :attr:`frames_seen` then tells how far the video went.

    Attributes:
        count: frames the container announces (0 = unknown), also ``len(source)``.
        frames_seen: after an iteration, the index after the last decodable frame (== ``count`` for a sound video).
    """

    kind = "video"

    def __init__(self, path):
        super().__init__(path)
        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise UserError(f"cannot read video (unreadable or corrupt): {path}")
        self.size = frame.shape[:2]
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))  # 0 = unknown
        self.frames_seen = None
        capture.release()

    def __len__(self):
        return self.count

    def __iter__(self):
        capture = cv2.VideoCapture(str(self.path))
        try:
            index, failed = 0, 0  # failed: undecodable frames since the last good one
            while True:
                ok, frame = capture.read()  # a failed read consumes the frame's packet: index stays in step
                if ok:
                    for gap in range(index - failed, index):
                        yield f"{gap:05d}", None
                    failed = 0
                    yield f"{index:05d}", np.ascontiguousarray(frame[:, :, ::-1])
                else:
                    failed += 1
                    if index + 1 >= self.count and (self.count or failed >= MAX_UNDECODABLE_RUN):
                        break
                index += 1
            self.frames_seen = index + 1 - failed
        finally:
            capture.release()


def open_source(path, what: str) -> FrameSource:
    """Open an image, a folder of images or a video, validating it (``what`` names the flag in messages).

    Raises:
        UserError: missing path, empty file, unreadable/corrupt image or video, folder without images,
            a file that is neither an image nor a video.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what}: not found: {path}")
    if path.is_dir():
        return FolderSource(path)
    if path.stat().st_size == 0:
        raise UserError(f"{what}: empty file (0 bytes): {path}")
    if is_image_path(path):
        return ImageSource(path)
    if is_video_path(path):
        return VideoSource(path)
    raise UserError(f"{what}: not an image, a video or a folder: {path} (images: {' '.join(IMAGE_EXTENSIONS)}; "
                    f"videos: {' '.join(VIDEO_EXTENSIONS)})")


class ThreadedReader:
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead of the consumer.

    An exception raised while producing is re-raised in the consuming thread at the item where it happened.
    Breaking out of the loop stops the producer.
    """

    _END = object()

    def __init__(self, iterable, depth: int = 4):
        self.iterable = iterable
        self.depth = depth

    def __iter__(self):
        items = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def produce():
            try:
                for item in self.iterable:
                    while not stop.is_set():
                        try:
                            items.put((item, None), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                items.put((self._END, None))
            except BaseException as error:  # handed to the consumer
                items.put((self._END, error))

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while True:
                item, error = items.get()
                if error is not None:
                    raise error
                if item is self._END:
                    return
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)


class ThreadedWriter:
    """Run write jobs in one background thread, at most ``depth`` queued; call :meth:`close` at the end.

    A job's exception stops the writer and is re-raised by the next :meth:`submit` or by :meth:`close`.
    Example:
        >>> with ThreadedWriter() as writer:
        ...     writer.submit(write_image, "out.png", image)
    """

    def __init__(self, depth: int = 8):
        self.jobs = queue.Queue(maxsize=depth)
        self.error = None
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is None:
                try:
                    job[0](*job[1])
                except BaseException as error:  # re-raised on the caller's thread
                    self.error = error

    def submit(self, function, *args):
        """Queue ``function(*args)``; raises the error of an earlier failed job."""
        if self.error is not None:
            raise self.error
        self.jobs.put((function, args))

    def close(self):
        """Wait for all jobs; raise the first job error, if any."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:  # the caller failed: skip the remaining jobs, keep the caller's exception
            self.error = self.error or exc
            self.jobs.put(None)
            self.thread.join()


class VideoWriter:
    """Write RGB or grey frames to an ``.mp4`` (mp4v) atomically: a temporary file renamed on :meth:`close`.

    Args:
        path: output file; fps: frames per second; size: (H, W).
    Input (``write``): uint8 (H, W, 3) RGB, or (H, W) grey (stored as 3 equal channels).
    """

    def __init__(self, path, fps: float, size):
        self.path = Path(path)
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self.size = tuple(size)
        self.writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                      (self.size[1], self.size[0]))
        if not self.writer.isOpened():
            self._atomic.__exit__(RuntimeError, RuntimeError("cannot open"), None)
            raise UserError(f"cannot open a video writer for {self.path} (OpenCV without an mp4v encoder?)")

    def write(self, frame: np.ndarray):
        """Append one frame (see the class docstring)."""
        if frame.shape[:2] != self.size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the video's {self.size}")
        frame = np.repeat(frame[:, :, None], 3, axis=2) if frame.ndim == 2 else frame[:, :, ::-1]
        self.writer.write(np.ascontiguousarray(frame))

    def close(self, ok: bool = True):
        """Finish the file and rename it into place (``ok=False``: delete it instead)."""
        self.writer.release()
        if ok:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(RuntimeError, RuntimeError("abandoned"), None)

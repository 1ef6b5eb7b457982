"""Frame sources (an image, a folder of images, a video) and writers, with decoding/encoding in background threads.

The official inference scripts decode and encode on the model's thread and are I/O-bound (users measured
2 it/s against 40 it/s in the speed test); here :class:`ThreadedReader` decodes ahead and :class:`ThreadedWriter`
encodes behind, so the model is never idle waiting for a frame.

Videos are read and written with PyAV (FFmpeg, codecs inside the wheel):

- :class:`VideoSource` reads every frame with its exact presentation timestamp (constant or variable frame rate),
  applies the rotation of phone videos (display matrix), converts to RGB with the matrix and range the stream is
  tagged with, counts the frames it actually decoded, and keeps the colour tags and the audio stream's presence for
  the writer. A file FFmpeg cannot open at all is read with OpenCV instead (:class:`OpenCVVideoSource`, and
  :func:`open_source` says so); a file it opens but cannot decode is a :class:`UserError`.
- :class:`VideoEncoder` writes one output as H.264/HEVC ``.mp4``, ProRes 4444 ``.mov`` (with alpha) or VP9 ``.webm``
  (with alpha) (:data:`VIDEO_FORMATS`), frame timestamps copied from the source, its colour tags kept and its audio
  copied (:class:`AudioTrack`: stream copy, or re-encoded when the container cannot hold the codec).
- :class:`VideoWriter` is the earlier OpenCV ``mp4v`` writer, kept as the speed/size baseline and for quick test clips.

Frame names are what outputs are named after. A folder's frames are named by relative path without the extension;
files that share one (``a.png``, ``a.jpg``, ``a.bmp``) keep their extension in the name (``a_png``, ``a_jpg``,
``a_bmp``) so no output overwrites another, while a unique stem stays as it is (``b.png`` → ``b``). A video's frames
are named by index in presentation order (``00042``). A video frame that cannot be decoded is yielded as
``(name, None)`` so that sources paired frame by frame stay in step; decoding goes on past it.

Example:
    >>> source = open_source("clip.mp4", "--src")
    >>> with VideoEncoder("pha.mov", "mov-prores4444", source.size, timing=source) as video:
    ...     for name, frame in ThreadedReader(source):     # name "00000", frame uint8 (H, W, 3) RGB
    ...         video.write(frame, source.timestamps.get(name))
"""
import heapq
import queue
import sys
import threading
from collections import Counter
from fractions import Fraction
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
    """A video file decoded with PyAV; the first frame is decoded at construction to validate the file.

    Frames come in presentation order with their exact timestamps (:attr:`timestamps`), rotated upright when the
    stream carries a rotation (phone videos), converted to RGB with the stream's colour matrix and range. A frame
    whose packet fails to decode is yielded as ``(name, None)`` at its place in the timeline (found by the packets'
    timestamps) and decoding goes on; failures after the last decodable frame are not yielded, :attr:`frames_seen`
    then tells how far the video went.

    Args:
        path: the video file. what: the flag it came from, for messages.
    Attributes:
        size: (H, W) after rotation. fps: average frame rate (float). rate: the same as a Fraction.
        count: frames in the stream (the container's count, or its packets counted when it gives none); ``len()``.
        time_base: Fraction, the unit of :attr:`timestamps`. rotation: degrees counter-clockwise applied (0, ±90, 180).
        colour: the stream's tags ``{"colorspace", "color_range", "color_primaries", "color_trc"}`` (FFmpeg enums).
        has_audio: the file holds an audio stream. codec: the video codec's name. alpha: the stream carries alpha.
        timestamps: frame name → presentation timestamp in :attr:`time_base`, filled while iterating.
        decoded: frames decoded by the last iteration. frames_seen: index after its last decodable frame.
    Raises:
        UserError: no video stream, or no frame of it can be decoded. (:class:`CannotOpen` when FFmpeg cannot open
        the file at all; :func:`open_source` then tries OpenCV.)
    """

    kind = "video"
    backend = "pyav"

    def __init__(self, path, what: str = "video"):
        super().__init__(path)
        av = _av()
        try:
            container = av.open(str(path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise CannotOpen(_ffmpeg_message(error)) from None
        try:
            if not container.streams.video:
                raise UserError(f"{what}: no video stream in {path} (streams: "
                                f"{', '.join(s.type for s in container.streams) or 'none'})")
            stream = container.streams.video[0]
            self.codec = stream.codec_context.name
            self.alpha = stream.metadata.get("alpha_mode") == "1" or (stream.codec_context.pix_fmt or "").startswith(
                ("yuva", "gbrap", "ya8", "ya16", "rgba", "bgra", "argb", "abgr"))
            self.time_base = stream.time_base or Fraction(1, 90000)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.rate = Fraction(rate) if rate else Fraction(25)
            self.fps = float(self.rate)
            self.has_audio = bool(container.streams.audio)
            tagged = {key: int(getattr(stream.codec_context, key) or 0) for key in COLOUR_TAGS}
            self.count = stream.frames or _count_packets(path)
            first, problem = None, ""
            for frame in self._frames(container, stream):
                if frame is not None:
                    first = frame
                    break
                problem = problem or self._problem
            if first is None:
                raise UserError(f"{what}: no frame of the {self.codec} video stream in {path} can be decoded"
                                f"{f' ({problem})' if problem else ''}: unreadable or corrupt")
        finally:
            container.close()
        self.rotation = _rotation(first)
        unset = {"colorspace": (2,), "color_range": (0,), "color_primaries": (0, 2), "color_trc": (0, 2)}
        self.colour = {key: tagged[key] if tagged[key] not in unset[key] else int(getattr(first, key) or 0)
                       for key in COLOUR_TAGS}  # the container's tags, else the first frame's
        height, width = first.height, first.width
        self.size = (width, height) if self.rotation % 180 else (height, width)
        self.timestamps, self.decoded, self.frames_seen = {}, 0, None

    def __len__(self):
        return self.count

    def __iter__(self):
        av = _av()
        container = av.open(str(self.path))
        try:
            stream = container.streams.video[0]
            step = max(1, round(1 / (self.rate * self.time_base)))  # one frame's duration, for missing timestamps
            reformatter = av.video.reformatter.VideoReformatter()
            index, missing, self.decoded, last = 0, 0, 0, None
            for frame in self._frames(container, stream):
                if frame is None:  # an undecodable frame: yielded only once a decodable one follows
                    missing += 1
                    index += 1
                    continue
                for gap in range(index - missing, index):
                    yield f"{gap:05d}", None
                missing = 0
                pts = frame.pts if frame.pts is not None else (0 if last is None else last + step)
                last = pts
                name = f"{index:05d}"
                self.timestamps[name] = pts
                self.decoded += 1
                yield name, self._rgb(frame, reformatter)
                index += 1
            self.frames_seen = index - missing
        finally:
            container.close()

    def _frames(self, container, stream):
        """Decoded frames in presentation order, None in place of each frame that failed to decode (found by the
        timestamps of packets no frame came out for); sets :attr:`_problem` to the first decoding error."""
        av = _av()
        self._problem = ""
        stream.thread_type = "AUTO"
        decoder = stream.codec_context
        if self.alpha and decoder.name == "vp9":  # FFmpeg's own VP9 decoder drops the alpha layer
            decoder = av.CodecContext.create("libvpx-vp9", "r")
        pending = []  # timestamps of demuxed packets not yet matched by a decoded frame (a heap)

        def emit(frames):
            for frame in frames:
                if frame.pts is not None:
                    while pending and pending[0] < frame.pts:
                        heapq.heappop(pending)
                        yield None
                    if pending and pending[0] == frame.pts:
                        heapq.heappop(pending)
                yield frame

        for packet in container.demux(stream):
            if packet.size == 0 and packet.dts is None:  # the demuxer's end marker
                continue
            if packet.pts is not None:
                heapq.heappush(pending, packet.pts)
            try:
                frames = decoder.decode(packet)
            except (av.FFmpegError, ValueError) as error:
                self._problem = self._problem or _ffmpeg_message(error)
                continue
            yield from emit(frames)
        try:
            yield from emit(decoder.decode(None))
        except (av.FFmpegError, ValueError) as error:
            self._problem = self._problem or _ffmpeg_message(error)
        while pending:  # trailing packets that never decoded
            heapq.heappop(pending)
            yield None

    def _rgb(self, frame, reformatter) -> np.ndarray:
        """uint8 (H, W, 3) RGB, rotated upright (``reformatter``: a VideoReformatter reused frame after frame)."""
        if frame.format.name.startswith(("yuv", "nv", "p0", "p2")) and not frame.format.name.startswith("yuvj"):
            space = _swscale_space(self.colour["colorspace"], frame.height)
            limited = self.colour["color_range"] != RANGE_FULL
            rgb = reformatter.reformat(frame, format="rgb24", src_colorspace=space,
                                       src_color_range="MPEG" if limited else "JPEG").to_ndarray()
        else:
            rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
        if self.rotation:
            rgb = np.rot90(rgb, self.rotation // 90)
        return np.ascontiguousarray(rgb)


class CannotOpen(Exception):
    """FFmpeg (PyAV) cannot open a file as a media container (its message is the exception's)."""


class OpenCVVideoSource(FrameSource):
    """A video FFmpeg (PyAV) cannot open, decoded with OpenCV instead: no timestamps (written at :attr:`fps`), no
    rotation, no audio. The first frame is decoded at construction to validate the file.

    A frame that fails to decode is yielded as ``(name, None)`` and decoding goes on: up to the frame count the
    container announces, or (count unknown) until :data:`MAX_UNDECODABLE_RUN` frames in a row fail. Failures after
    the last decodable frame are not yielded; :attr:`frames_seen` then tells how far the video went.

    Attributes:
        count: frames the container announces (0 = unknown), also ``len(source)``.
        frames_seen: after an iteration, the index after the last decodable frame (== ``count`` for a sound video).
        reason: why PyAV could not open it.
    """

    kind = "video"
    backend = "opencv"
    rotation, has_audio, alpha, codec, colour, time_base = 0, False, False, "", None, None

    def __init__(self, path, reason: str = ""):
        super().__init__(path)
        self.reason = reason
        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise UserError(f"cannot read video (unreadable or corrupt): {path}")
        self.size = frame.shape[:2]
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.rate = Fraction(self.fps).limit_denominator(1001)
        self.count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))  # 0 = unknown
        self.timestamps, self.decoded, self.frames_seen = {}, 0, None
        capture.release()

    def __len__(self):
        return self.count

    def __iter__(self):
        capture = cv2.VideoCapture(str(self.path))
        self.decoded = 0
        try:
            index, failed = 0, 0  # failed: undecodable frames since the last good one
            while True:
                ok, frame = capture.read()  # a failed read consumes the frame's packet: index stays in step
                if ok:
                    for gap in range(index - failed, index):
                        yield f"{gap:05d}", None
                    failed = 0
                    self.decoded += 1
                    yield f"{index:05d}", np.ascontiguousarray(frame[:, :, ::-1])
                else:
                    failed += 1
                    if index + 1 >= self.count and (self.count or failed >= MAX_UNDECODABLE_RUN):
                        break
                index += 1
            self.frames_seen = index + 1 - failed
        finally:
            capture.release()


#: the colour tags a stream carries and an output keeps (attributes of FFmpeg frames and codec contexts)
COLOUR_TAGS = ("colorspace", "color_range", "color_primaries", "color_trc")
RANGE_LIMITED, RANGE_FULL = 1, 2  # AVColorRange
_SPACE_BT709, _SPACE_UNSPECIFIED = 1, 2  # AVColorSpace


def _av():
    """The ``av`` module (imported on first use: importing it loads FFmpeg)."""
    import av  # FFmpeg's own log lines stay off (PyAV's default): errors come back as exceptions and counts
    import av.video.reformatter  # noqa: F401
    return av


def _ffmpeg_message(error) -> str:
    """An FFmpeg error without PyAV's errno prefix and the file name."""
    message = getattr(error, "strerror", None) or str(error)
    return str(message).strip().rstrip(".")


def _count_packets(path) -> int:
    """Video packets in the file (a demux pass without decoding), for containers that do not say (WebM, MKV)."""
    with _av().open(str(path)) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def _rotation(frame) -> int:
    """The frame's display rotation in degrees counter-clockwise, rounded to a multiple of 90 (0 without one)."""
    try:
        rotation = int(round(frame.rotation / 90.0)) * 90 % 360
    except (AttributeError, TypeError, ValueError):
        return 0
    return {270: -90}.get(rotation, rotation)


def _swscale_space(colorspace: int, height: int) -> str:
    """swscale's matrix for an FFmpeg colour space tag (untagged: BT.709 from 720 lines up, BT.601 below, as
    players assume)."""
    names = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
    if colorspace in names:
        return names[colorspace]
    return "ITU709" if height >= 720 else "ITU601"


def open_source(path, what: str, warn=None) -> FrameSource:
    """Open an image, a folder of images or a video, validating it (``what`` names the flag in messages).

    A video FFmpeg cannot open is tried with OpenCV, and ``warn(message)`` (default: a ``warning:`` line on stderr)
    says so.

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
        try:
            return VideoSource(path, what)
        except CannotOpen as error:
            reason = str(error)
        try:
            source = OpenCVVideoSource(path, reason)
        except UserError:
            raise UserError(f"{what}: cannot read video (unreadable or corrupt; FFmpeg: {reason}): {path}") from None
        (warn or _warn)(f"{what}: FFmpeg (PyAV) cannot open {path} ({reason}); reading it with OpenCV instead: "
                        f"timestamps rebuilt from {source.fps:g} fps, no rotation, no audio")
        return source
    raise UserError(f"{what}: not an image, a video or a folder: {path} (images: {' '.join(IMAGE_EXTENSIONS)}; "
                    f"videos: {' '.join(VIDEO_EXTENSIONS)})")


def _warn(message):
    print(f"warning: {message}", file=sys.stderr)


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


#: ``--output-format`` values written as video → file extension
VIDEO_FORMATS = {
    "mp4": ".mp4",  # H.264 (libx264, yuv420p; --crf 0: lossless RGB with libx264rgb)
    "mp4-hevc": ".mp4",  # HEVC (libx265, yuv420p, tagged hvc1 for Apple software)
    "mov-prores4444": ".mov",  # ProRes 4444 (prores_ks): yuva444p10le with an alpha channel, yuv444p10le without
    "webm-alpha": ".webm",  # VP9 (libvpx-vp9): yuva420p with an alpha channel, yuv420p without
}
#: the formats whose ``com`` can carry transparency (an RGBA cut-out)
ALPHA_FORMATS = ("mov-prores4444", "webm-alpha")
DEFAULT_CRF = 18
# x264/x265 speed presets, fastest first. The default is ultrafast, not x264's own medium: the encoders share the CPU
# with the model, and at 1080p medium took 0.30 CPU-seconds per frame and stream, veryfast 0.09, ultrafast 0.02
# (files about twice veryfast's at the same --crf, which sets the quality); with com, pha and fgr the slower presets
# took a core from the model. --preset veryfast or slower for smaller files.
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DEFAULT_PRESET = "ultrafast"
_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".webm": "webm"}


class VideoEncoder:
    """Write frames to one video file with PyAV, atomically: a temporary file renamed into place on :meth:`close`.

    The stream is set up at the first frame (its channels decide whether the output has alpha). Timestamps are the
    source's, frame by frame (variable frame rate kept); the source's colour tags are written and its audio copied.

    Args:
        path: the output file (extension as :data:`VIDEO_FORMATS` says). output_format: a key of VIDEO_FORMATS
            (the container follows it, whatever the extension).
        size: (H, W).
        timing: the :class:`VideoSource` the frames come from (time base, frame rate, colour tags, audio), or None.
        fps: frame rate without ``timing``. crf: quality of H.264/HEVC/VP9 (0 = lossless; lower = better; ProRes
            ignores it). preset: x264/x265 speed preset (:data:`ENCODER_PRESETS`; H.264/HEVC only). audio: copy ``timing``'s audio stream (re-encoded when the container cannot hold it).
    Input (``write``): uint8 (H, W, 4) RGBA (alpha formats only), (H, W, 3) RGB or (H, W) grey; ``pts`` in
    ``timing.time_base`` (None: one frame after the previous).
    Example:
        >>> with VideoEncoder("com.mov", "mov-prores4444", (1080, 1920), timing=source) as video:
        ...     video.write(rgba, source.timestamps["00000"])
    """

    def __init__(self, path, output_format: str, size, timing=None, fps: float = 25.0, crf: int = DEFAULT_CRF,
                 audio: bool = True, preset: str = DEFAULT_PRESET):
        if output_format not in VIDEO_FORMATS:
            raise ValueError(f"unknown video format {output_format!r}; choose from {', '.join(VIDEO_FORMATS)}")
        if preset not in ENCODER_PRESETS:
            raise UserError(f"unknown encoder preset {preset!r}; choose from {', '.join(ENCODER_PRESETS)}")
        self.preset = preset
        self.av = _av()
        self.path, self.format, self.size, self.crf = Path(path), output_format, tuple(size), int(crf)
        self.timing = timing
        self.rate = timing.rate if timing is not None else Fraction(fps).limit_denominator(1001)
        has_timestamps = timing is not None and bool(timing.time_base)
        self.time_base = Fraction(timing.time_base) if has_timestamps else 1 / Fraction(self.rate)
        self.step = max(1, round(1 / (self.rate * self.time_base)))
        self.audio_source = timing.path if audio and timing is not None and timing.has_audio else None
        self.stream, self.audio, self.last_pts, self.written = None, None, None, 0
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            container = _CONTAINERS[VIDEO_FORMATS[output_format]]
            options = {"movflags": "+faststart"} if container == "mp4" else {}  # index first: plays while loading
            self.container = self.av.open(str(self._tmp), "w", format=container, options=options)
        except BaseException as error:
            self._atomic.__exit__(type(error), error, None)
            raise UserError(f"cannot write video {self.path}: {_ffmpeg_message(error)}") from None

    def _start(self, image):
        """Add the video (and audio) stream for frames like ``image``."""
        alpha = image.ndim == 3 and image.shape[2] == 4
        if alpha and self.format not in ALPHA_FORMATS:
            raise ValueError(f"{self.format} cannot hold an alpha channel; composite the frame first")
        height, width = self.size
        odd = height % 2 or width % 2
        if odd and self.format == "mp4-hevc":  # libx265 corrupts its memory on odd sizes, even in 4:4:4
            raise UserError(f"mp4-hevc needs an even width and height; {self.path.name} would be {width}x{height}: "
                            "use --output-format mp4 or mov-prores4444")
        codec, pix_fmt, options = {
            "mp4": ("libx264", "yuv444p" if odd else "yuv420p", {"crf": str(self.crf), "preset": self.preset}),
            "mp4-hevc": ("libx265", "yuv444p" if odd else "yuv420p",
                         {"crf": str(self.crf), "preset": self.preset, "x265-params": "log-level=error"}),
            "mov-prores4444": ("prores_ks", "yuva444p10le" if alpha else "yuv444p10le",
                               {"profile": "4444", "vendor": "apl0"}),
            "webm-alpha": ("libvpx-vp9", "yuva420p" if alpha else "yuv420p",
                           {"crf": str(self.crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}),
        }[self.format]
        if self.format == "mp4" and self.crf == 0:  # lossless against the RGB the model wrote
            codec, pix_fmt, options = "libx264rgb", "rgb24", {"crf": "0", "preset": self.preset}
        if self.format == "webm-alpha" and self.crf == 0:
            options = {"lossless": "1", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
        stream = self.container.add_stream(codec, rate=self.rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = self.time_base
        context = stream.codec_context
        context.time_base = self.time_base
        if self.format == "mp4-hevc":
            context.codec_tag = "hvc1"
        tags = dict((self.timing.colour if self.timing is not None and self.timing.colour else None) or
                    {"colorspace": _SPACE_UNSPECIFIED, "color_range": RANGE_LIMITED, "color_primaries": 2,
                     "color_trc": 2})
        if pix_fmt == "rgb24":
            tags.update(colorspace=0, color_range=RANGE_FULL)  # AVCOL_SPC_RGB
        elif self.format == "mov-prores4444" or tags["color_range"] != RANGE_FULL:
            tags["color_range"] = RANGE_LIMITED  # ProRes is always video range
        for key, value in tags.items():
            setattr(context, key, value)
        self.pix_fmt = pix_fmt
        self.space = _swscale_space(tags["colorspace"], height)
        self.range = "JPEG" if tags["color_range"] == RANGE_FULL else "MPEG"
        self.stream = stream
        self.reformatter = self.av.video.reformatter.VideoReformatter()
        if self.audio_source is not None:
            try:
                self.audio = AudioTrack(self.audio_source, self.container, _CONTAINERS[VIDEO_FORMATS[self.format]])
            except (self.av.FFmpegError, ValueError, KeyError) as error:
                _warn(f"{self.path.name}: written without the source's audio ({_ffmpeg_message(error)})")

    def write(self, image: np.ndarray, pts: int = None):
        """Encode one frame (see the class docstring)."""
        if image.shape[:2] != self.size:
            raise ValueError(f"frame size {image.shape[:2]} differs from the video's {self.size}")
        if self.stream is None:
            self._start(image)
        layout = {2: "gray", 3: "rgb24", 4: "rgba"}[image.ndim if image.ndim == 2 else image.shape[2]]
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=layout)
        if self.pix_fmt != layout:
            frame = self.reformatter.reformat(frame, format=self.pix_fmt, src_colorspace=self.space,
                                              dst_colorspace=self.space, src_color_range="JPEG",
                                              dst_color_range=self.range)
        if pts is None:
            pts = 0 if self.last_pts is None else self.last_pts + self.step
        if self.last_pts is not None and pts <= self.last_pts:  # encoders need increasing timestamps
            pts = self.last_pts + 1
        frame.pts, frame.time_base, self.last_pts = pts, self.time_base, pts
        self._mux(self.stream.encode(frame))
        if self.audio is not None:
            self.audio.advance(float((pts + self.step) * self.time_base))
        self.written += 1

    def _mux(self, packets):
        for packet in packets:
            self.container.mux(packet)

    def close(self, ok: bool = True):
        """Finish the file and rename it into place (``ok=False``: delete it instead)."""
        try:
            if ok and self.stream is not None:
                self._mux(self.stream.encode(None))
                if self.audio is not None:
                    self.audio.advance(None)
            if self.audio is not None:
                self.audio.close()
            self.container.close()
        except BaseException as error:
            self._atomic.__exit__(type(error), error, None)
            if isinstance(error, self.av.FFmpegError):
                raise UserError(f"cannot write video {self.path}: {_ffmpeg_message(error)}") from None
            raise
        if ok:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(RuntimeError, RuntimeError("abandoned"), None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.close(exc_type is None)


class AudioTrack:
    """The first audio stream of ``source`` carried into ``output``: packets copied when the container takes the
    codec, otherwise decoded and re-encoded (AAC for MP4/MOV, Opus for WebM). Timestamps are kept, so the audio
    stays where it was against the video; :meth:`advance` muxes it in step with the video (interleaved).

    Args:
        source: the source file. output: an open PyAV output container (no packet written yet). container:
            ``"mp4"``, ``"mov"`` or ``"webm"``.
    Attributes:
        copied: True for a stream copy, False when re-encoded; codec: the output's audio codec.
    """

    COPYABLE = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
                "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
                        "pcm_f32le"},
                "webm": {"opus", "vorbis"}}

    def __init__(self, source, output, container: str):
        av = self.av = _av()
        self.output = output
        self.input = av.open(str(source))
        self.in_stream = self.input.streams.audio[0]
        name = self.in_stream.codec_context.name
        self.copied = name in self.COPYABLE[container]
        if self.copied:
            self.stream = output.add_stream_from_template(self.in_stream)
        else:
            encoder = "libopus" if container == "webm" else "aac"
            rate = self.in_stream.codec_context.sample_rate
            if encoder == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48000
            self.stream = output.add_stream(encoder, rate=rate)
            self.stream.layout = self.in_stream.codec_context.layout.name if \
                self.in_stream.codec_context.layout.nb_channels <= 2 else "stereo"
        self.codec = self.stream.codec_context.name
        self.packets = self.input.demux(self.in_stream)
        self.pending, self.done = None, False  # a demuxed packet not muxed yet; all muxed

    def advance(self, seconds):
        """Mux the audio up to ``seconds`` (None: all of it)."""
        while not self.done:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                if not self.copied:  # flush the decoder, then the encoder
                    self._encode(self.in_stream.decode(None))
                    self._mux(self.stream.encode(None))
                self.done = True
                return
            if packet.dts is None and packet.size == 0:
                continue
            if seconds is not None and packet.pts is not None and packet.pts * packet.time_base > seconds:
                self.pending = packet
                return
            if self.copied:
                packet.stream = self.stream
                self.output.mux(packet)
            else:
                try:
                    self._encode(self.in_stream.decode(packet))
                except self.av.FFmpegError:
                    continue  # a damaged audio packet: the encoder closes the gap

    def _encode(self, frames):
        for frame in frames:
            self._mux(self.stream.encode(frame))

    def _mux(self, packets):
        for packet in packets:
            self.output.mux(packet)

    def close(self):
        self.input.close()


class VideoWriter:
    """Write RGB or grey frames to an ``.mp4`` with OpenCV (``mp4v``, no quality control, no audio, constant frame
    rate) atomically: a temporary file renamed on :meth:`close`. predict.py wrote video this way before
    :class:`VideoEncoder`; kept as the speed/size baseline and for quick test clips.

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

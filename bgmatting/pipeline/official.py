"""The official BackgroundMattingV2 command lines on this library: ``inference_images.py``, ``inference_video.py``
and ``inference_webcam.py`` (repository root), also ``bgmatting inference-images|inference-video|webcam``.

An official command line runs unchanged apart from the script path: the same flag names, the same defaults
(``--model-backbone-scale 0.25 --model-refine-mode sampling --model-refine-sample-pixels 80000
--model-refine-threshold 0.7``, applied where the model has the option and the flag is not given) and the same
output layout:

- images: ``OUTPUT_DIR/<type>/<relative path of the source image>.<ext>`` — ``com`` an RGBA PNG, the others JPEG
  (``--output-format png`` for lossless ones);
- video: ``OUTPUT_DIR/<type>.mp4`` (``com`` composited onto ``--video-target-bgr``, default the official flat green
  120,255,155), or with ``--output-format image_sequences`` ``OUTPUT_DIR/<type>/00000.<ext>`` …;
- webcam: a window showing the composite on white with its frame rate (keys: B = capture the plate again, Q = quit).

Differences, all additions: ``--device`` also takes ``gpu`` and defaults to the GPU only when Paddle has CUDA (the
official default ``cuda`` fails on CPU-only machines); ``--model-checkpoint`` takes every checkpoint form of
predict.py (an official ``.pth`` as well as model folders); ``-y`` is accepted by the video script too; the output
folder is written under a hidden name and appears when the run finished (predict.py's rules: a folder holding
other files is never replaced). ``--num-workers`` is accepted and ignored (frames are decoded on a reader thread).
The webcam script also reads a video file standing in for the camera (``--src clip.mp4``), takes the plate from a
file (``--bgr``) or captures it at the start, writes the composite (``--output``) and reports frames per second.

Example:
    python inference_images.py --model-type mattingrefine --model-backbone resnet50 \\
        --model-checkpoint pytorch_resnet50.pth --images-src photos/ --images-bgr plates/ \\
        --output-dir out --output-types com fgr pha
"""
import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bgmatting.cli_help import HelpFormatter
from bgmatting.errors import UserError, cli_main

#: the official scripts' defaults of the model flags (applied where the kind has the option and it is not given)
OFFICIAL_DEFAULTS = {"backbone_scale": 0.25, "refine_mode": "sampling", "refine_sample_pixels": 80_000,
                     "refine_threshold": 0.7}
OFFICIAL_TYPES = ("com", "pha", "fgr", "err", "ref")
WEBCAM_BACKGROUND = "255,255,255"  # the official webcam composites onto white

IMAGES_EXAMPLE = """Example (the official command line, unchanged):
    python inference_images.py \\
        --model-type mattingrefine \\
        --model-backbone resnet50 \\
        --model-backbone-scale 0.25 \\
        --model-refine-mode sampling \\
        --model-refine-sample-pixels 80000 \\
        --model-checkpoint pytorch_resnet50.pth \\
        --images-src photos/ \\
        --images-bgr plates/ \\
        --output-dir out \\
        --output-types com fgr pha

Writes out/com/NAME.png (RGBA), out/fgr/NAME.jpg, out/pha/NAME.jpg for every photos/NAME.jpg|png, paired with
plates/ by sorted path (or one plate image for every photo)."""

VIDEO_EXAMPLE = """Example (the official command line, unchanged):
    python inference_video.py \\
        --model-type mattingrefine \\
        --model-backbone resnet50 \\
        --model-backbone-scale 0.25 \\
        --model-refine-mode sampling \\
        --model-refine-sample-pixels 80000 \\
        --model-checkpoint pytorch_resnet50.pth \\
        --video-src clip.mp4 \\
        --video-bgr plate.png \\
        --video-resize 1920 1080 \\
        --output-dir out \\
        --output-types com fgr pha err ref \\
        --video-target-bgr beach.mp4

Writes out/com.mp4 (composited onto beach.mp4, default flat green), out/fgr.mp4, out/pha.mp4, …"""

WEBCAM_EXAMPLE = """Examples:
    # the official command line: camera 0 at 1280x720; press B with the scene empty to take the plate, Q to quit
    python inference_webcam.py --model-type mattingrefine --model-backbone resnet50 \\
        --model-checkpoint pytorch_resnet50.pth --resolution 1280 720
    # camera 1, plate from a file, the composite written to a video as well as shown
    python inference_webcam.py --model-checkpoint weights/bgmv2_mobilenetv2 --src camera:1 --bgr plate.png \\
        --output live.mp4
    # no screen: a video file stands in for the camera, its first frame is the plate, fps printed at the end
    python inference_webcam.py --model-checkpoint weights/bgmv2_mobilenetv2 --src clip.mp4 --no-display \\
        --output live.mp4"""


# ------------------------------------------------------------------------------------------------ shared parts

def add_official_model_arguments(parser, script: str):
    """The model flags (:func:`bgmatting.engine.model_args.add_model_arguments`) with the official defaults in
    their help and the official ``--device`` choices (cpu, cuda; gpu also accepted)."""
    from bgmatting.engine.model_args import add_model_arguments

    group = add_model_arguments(parser, title=f"model (the flags of the official {script})")
    for action in group._group_actions:
        option = action.dest[len("model_"):] if action.dest.startswith("model_") else None
        if option in OFFICIAL_DEFAULTS and "default" not in (action.help or ""):
            action.help = f"{action.help or option} (default: {OFFICIAL_DEFAULTS[option]}, as the official script)"
        elif option == "refine_kernel_size":
            action.help = f"{action.help} (default: the weights'; 3 for the official ones)"
        elif option in ("type", "backbone"):
            action.help = f"{action.help}; the official scripts require it"
        elif action.dest == "device":
            action.choices = ("cpu", "cuda", "gpu")
            action.default = None
            action.help = ("cpu, or cuda (= gpu) (default: cuda when Paddle is built with CUDA, else cpu; the "
                           "official default is cuda)")
    return group


def resolve_device(device) -> str:
    """``--device`` → ``cpu``/``gpu`` for :class:`bgmatting.engine.predictor.Predictor`."""
    if device in ("cuda", "gpu"):
        return "gpu"
    if device == "cpu":
        return "cpu"
    import paddle

    return "gpu" if paddle.device.is_compiled_with_cuda() else "cpu"


def official_settings(args, script: str, output_types=()):
    """The model settings of the official flags: the official defaults where the model has the option and the flag
    was not given, and a clean-plate model (the official scripts have no trimap)."""
    from bgmatting.engine.model_args import settings_from_args

    if args.model_checkpoint is None:
        raise UserError("give the model: --model-checkpoint (an official .pth, a .pdparams, or a model folder)")
    settings = settings_from_args(args)
    kind = settings.kind
    if kind.guide != "bgr":
        raise UserError(f"{script} mattes with a clean plate; {kind.name} takes a trimap: use predict.py --trimap")
    missing = {o: v for o, v in OFFICIAL_DEFAULTS.items() if o in kind.options and getattr(args, f"model_{o}") is None}
    if missing:
        for option, value in missing.items():
            setattr(args, f"model_{option}", value)
        settings = settings_from_args(args)
    if "ref" in output_types and kind.name == "mattingbase":
        raise UserError("--output-types ref needs --model-type mattingrefine (MattingBase refines nothing)")
    return settings


def make_predictor(args, settings):
    """The Predictor of ``settings`` on ``--device``."""
    from bgmatting.engine.predictor import Predictor

    return Predictor(settings=settings, device=resolve_device(args.device))


def add_output_arguments(parser, formats, default_format, format_help):
    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", required=True, help="the output folder (written when the run finished)")
    output.add_argument("--output-types", required=True, nargs="+", choices=OFFICIAL_TYPES,
                        help="com: composite (RGBA PNG for images), pha: alpha, fgr: foreground, err: error map, "
                             "ref: refined patches")
    output.add_argument("--output-format", default=default_format, choices=formats, help=format_help)
    output.add_argument("-y", action="store_true", help="replace an existing output folder without asking")
    return output


def run_pairs(predictor, pairs, to_plate, sink, output, total):
    """Matte ``pairs`` into the output folder (staged, renamed into place at the end); returns the run report."""
    from bgmatting.pipeline.run import run

    with output as staging:
        for folder in output.removed:
            print(f"removed {folder.name}, left by a run that was killed", file=sys.stderr)
        sink.open(staging)
        report = run(predictor, pairs, "bgr", to_plate, sink, total=total)
        output.commit()
    return report


def print_summary(report, output_types, output_dir, unit):
    if report.warnings:
        print(f"warning: plate alignment warned on {len(report.warnings)} {unit}(s)", file=sys.stderr)
    if report.unreadable:
        print(f"warning: skipped {len(report.unreadable)} undecodable {unit}(s)", file=sys.stderr)
    print(f"wrote {', '.join(output_types)} for {report.written} {unit}(s) to {output_dir}")


# ------------------------------------------------------------------------------------------------ images

def add_worker_and_alignment_arguments(group, what: str) -> None:
    """The official ``--num-workers`` (accepted; frames are decoded on a reader thread), ``--preprocess-alignment``
    (align ``what``) and ``--alignment-mode`` flags."""
    from bgmatting.data.alignment import ALIGNMENT_MODES

    group.add_argument("--num-workers", type=int, default=0,
                       help="accepted for the official command line; frames are decoded on a reader thread")
    group.add_argument("--preprocess-alignment", action="store_true",
                       help=f"align {what} (ORB features + RANSAC homography, as the official)")
    group.add_argument("--alignment-mode", default="homography", choices=ALIGNMENT_MODES,
                       help="homography: the official alignment; ecc: + sub-pixel refinement; full: + exposure and "
                            "white-balance matching")


def images_parser():
    """The parser of ``inference_images.py`` (the official flags, plus ``--output-format`` and
    ``--alignment-mode``)."""
    parser = argparse.ArgumentParser(description="Inference images: matting of a folder of images with their clean "
                                                 "plates\n(the official inference_images.py command line).",
                                     formatter_class=HelpFormatter, epilog=IMAGES_EXAMPLE)
    add_official_model_arguments(parser, "inference_images.py")
    data = parser.add_argument_group("inputs")
    data.add_argument("--images-src", required=True, help="a folder of images (searched recursively), or one image")
    data.add_argument("--images-bgr", required=True,
                      help="their clean plates: a folder paired with --images-src by sorted path, or one image")
    add_worker_and_alignment_arguments(data, "each plate to its image")
    add_output_arguments(parser, ("jpg", "png"), "jpg",
                         "file format of pha, fgr, err and ref (com is always an RGBA PNG); jpg as the official")
    return parser


@cli_main
def images_main(argv=None):
    """``inference_images.py``: every image of ``--images-src`` with its plate → OUTPUT_DIR/<type>/<name>.<ext>."""
    from bgmatting.data.alignment import PlateAligner
    from bgmatting.data.video import open_source
    from bgmatting.pipeline.output_dir import OutputFolder
    from bgmatting.pipeline.outputs import OutputSink
    from bgmatting.pipeline.pairing import PlateInput, check_pairing, check_sizes, frame_pairs

    args = images_parser().parse_args(argv)
    src = open_source(args.images_src, "--images-src")
    plate = open_source(args.images_bgr, "--images-bgr")
    if src.kind == "video" or plate.kind == "video":
        raise UserError("inference_images.py takes images or folders of images; for a video use inference_video.py")
    check_pairing(src, plate, "--images-bgr")
    check_sizes(src.size, plate.size, args.preprocess_alignment)
    output = OutputFolder(args.output_dir, args.y)
    settings = official_settings(args, "inference_images.py", args.output_types)
    predictor = make_predictor(args, settings)
    aligner = PlateAligner(args.alignment_mode) if args.preprocess_alignment else None
    sink = OutputSink(args.output_types, args.output_format)
    report = run_pairs(predictor, frame_pairs(src, plate, "--images-bgr"), PlateInput(aligner), sink, output, len(src))
    print_summary(report, args.output_types, args.output_dir, "image")


# ------------------------------------------------------------------------------------------------ video

def video_parser():
    """The parser of ``inference_video.py`` (the official flags, plus ``-y`` and ``--alignment-mode``)."""
    parser = argparse.ArgumentParser(description="Inference video: matting of a video with its clean plate\n(the "
                                                 "official inference_video.py command line).",
                                     formatter_class=HelpFormatter, epilog=VIDEO_EXAMPLE)
    add_official_model_arguments(parser, "inference_video.py")
    data = parser.add_argument_group("inputs")
    data.add_argument("--video-src", required=True, help="the video (or a folder of frames)")
    data.add_argument("--video-bgr", required=True,
                      help="the clean plate: an image (or a video / folder paired frame by frame)")
    data.add_argument("--video-target-bgr", default=None,
                      help="video (or image, or colour R,G,B) onto which com is composited (default: the official "
                           "flat green 120,255,155)")
    data.add_argument("--video-resize", type=int, default=None, nargs=2, metavar=("WIDTH", "HEIGHT"),
                      help="resize the video and the plate to WIDTH HEIGHT before matting (default: keep the size)")
    add_worker_and_alignment_arguments(data, "the plate to each frame")
    add_output_arguments(parser, ("video", "image_sequences"), "video",
                         "video: OUTPUT_DIR/<type>.mp4; image_sequences: OUTPUT_DIR/<type>/00000.jpg … (com as RGBA "
                         "PNGs)")
    return parser


def resized_pairs(pairs, size):
    """``pairs`` with every frame and plate resized to ``size`` = (WIDTH, HEIGHT) (``--video-resize``)."""
    def resize(image):
        if image is None or image.shape[1::-1] == tuple(size):
            return image
        shrink = image.shape[0] * image.shape[1] > size[0] * size[1]
        return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    for name, frame, plate in pairs:
        yield name, resize(frame), resize(plate)


@cli_main
def video_main(argv=None):
    """``inference_video.py``: a video with its plate → OUTPUT_DIR/<type>.mp4 (or image sequences)."""
    from bgmatting.data.alignment import PlateAligner
    from bgmatting.data.video import open_source
    from bgmatting.pipeline.output_dir import OutputFolder
    from bgmatting.pipeline.outputs import DEFAULT_VIDEO_BGR, OutputSink, TargetBackground
    from bgmatting.pipeline.pairing import PlateInput, check_pairing, check_sizes, frame_pairs

    args = video_parser().parse_args(argv)
    if args.video_resize is not None and min(args.video_resize) < 1:
        raise UserError(f"--video-resize needs a positive WIDTH HEIGHT, got {args.video_resize[0]} "
                        f"{args.video_resize[1]}")
    src = open_source(args.video_src, "--video-src")
    if src.kind == "image":
        raise UserError("--video-src is one image; use inference_images.py for images")
    plate = open_source(args.video_bgr, "--video-bgr")
    check_pairing(src, plate, "--video-bgr")
    if args.video_resize is None:
        check_sizes(src.size, plate.size, args.preprocess_alignment)
    output = OutputFolder(args.output_dir, args.y)
    settings = official_settings(args, "inference_video.py", args.output_types)
    predictor = make_predictor(args, settings)
    aligner = PlateAligner(args.alignment_mode) if args.preprocess_alignment else None
    if args.output_format == "video":
        target = TargetBackground(args.video_target_bgr or DEFAULT_VIDEO_BGR)
        sink = OutputSink(args.output_types, "video", getattr(src, "fps", None) or 25.0, target)  # frames: 25
    else:  # the official image sequences: com as RGBA PNGs, the others JPEG
        sink = OutputSink(args.output_types, "jpg")
    pairs = frame_pairs(src, plate, "--video-bgr")
    if args.video_resize is not None:
        pairs = resized_pairs(pairs, args.video_resize)
    report = run_pairs(predictor, pairs, PlateInput(aligner), sink, output, len(src))
    print_summary(report, args.output_types, args.output_dir, "frame")


# ------------------------------------------------------------------------------------------------ webcam

def webcam_parser():
    """The parser of ``inference_webcam.py`` (the official flags, plus the source, plate, output and display
    flags)."""
    parser = argparse.ArgumentParser(
        description="Inference on webcams: live matting of a camera, or of a video file standing in for one\n(the "
                    "official inference_webcam.py command line). With a window: press B to take the plate\n(the "
                    "frame shown; step out of the picture first) and again to retake it, Q to quit.",
        formatter_class=HelpFormatter, epilog=WEBCAM_EXAMPLE)
    add_official_model_arguments(parser, "inference_webcam.py")
    live = parser.add_argument_group("camera and display")
    live.add_argument("--hide-fps", action="store_true", help="do not draw the frame rate on the shown frames")
    live.add_argument("--resolution", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), default=(1280, 720),
                      help="the resolution asked of the camera")
    live.add_argument("--src", default="camera:0",
                      help="camera:N (OpenCV camera N), or a video file standing in for the camera")
    live.add_argument("--bgr", default=None,
                      help="the clean plate as an image file (default: captured: key B in the window, or without "
                           "a window the first --plate-frames frames)")
    live.add_argument("--plate-frames", type=int, default=1,
                      help="without a window or --bgr: the plate is the median of the first N frames")
    live.add_argument("--target-bgr", default=WEBCAM_BACKGROUND,
                      help="what the subject is composited onto: a colour R,G,B, an image or a video (default: "
                           f"white {WEBCAM_BACKGROUND}, as the official)")
    live.add_argument("--output", default=None, help="also write the composite to this .mp4")
    live.add_argument("--no-display", action="store_true",
                      help="no window (the default when there is no screen: no $DISPLAY / $WAYLAND_DISPLAY)")
    live.add_argument("--max-frames", type=int, default=None, help="stop after N matted frames (default: no limit)")
    live.add_argument("--report-every", type=float, default=2.0,
                      help="seconds between the frame-rate lines on stderr (0: only the final one)")
    return parser


class FPSTracker:
    """Frame rate as the official webcam script reports it: an exponential moving average of 1/Δt (``ratio`` the
    weight of the newest sample), plus the overall count and time."""

    def __init__(self, ratio: float = 0.5):
        self.ratio, self.average, self.last, self.start, self.frames = ratio, None, None, None, 0

    def tick(self, now: float = None):
        """Count one frame; returns the averaged fps (None for the first frame)."""
        now = time.perf_counter() if now is None else now
        self.frames += 1
        if self.last is None:
            self.start = self.last = now
            return None
        sample = 1.0 / max(now - self.last, 1e-9)
        self.average = sample if self.average is None else self.ratio * sample + (1 - self.ratio) * self.average
        self.last = now
        return self.average

    def overall(self):
        """Frames per second from the first frame to the last (None before two frames)."""
        if self.frames < 2 or self.last == self.start:
            return None
        return (self.frames - 1) / (self.last - self.start)


class LiveSource:
    """Frames of a camera (``camera:N``; a thread keeps only the newest frame, as the official) or of a video file
    (read in order, every frame). ``read()`` → uint8 (H, W, 3) RGB, or None when the source ended."""

    def __init__(self, spec: str, resolution=(1280, 720)):
        import threading

        self.camera = spec.startswith("camera:") or spec.isdigit()
        if self.camera:
            index = spec.split(":", 1)[-1]
            if not index.isdigit():
                raise UserError(f"--src {spec}: a camera is camera:N with N a number, e.g. camera:0")
            self.capture = cv2.VideoCapture(int(index))
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, resolution[0])
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, resolution[1])
        else:
            if not Path(spec).is_file():
                raise UserError(f"--src {spec}: no such video file (a camera is camera:N)")
            self.capture = cv2.VideoCapture(spec)
        if not self.capture.isOpened():
            raise UserError(f"--src {spec}: cannot open {'the camera' if self.camera else 'the video'}")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0
        self._frame, self._sequence, self._taken, self._ended = None, 0, 0, False
        self._condition = threading.Condition()
        if self.camera:
            self._thread = threading.Thread(target=self._grab, daemon=True)
            self._thread.start()

    def _grab(self):
        while True:
            ok, frame = self.capture.read()
            with self._condition:
                if not ok:
                    self._ended = True
                else:
                    self._frame, self._sequence = frame, self._sequence + 1
                self._condition.notify_all()
            if not ok:
                return

    def read(self):
        if not self.camera:
            ok, frame = self.capture.read()
            return np.ascontiguousarray(frame[:, :, ::-1]) if ok else None
        with self._condition:  # wait for a frame newer than the last one returned
            self._condition.wait_for(lambda: self._sequence > self._taken or self._ended, timeout=10)
            if self._sequence <= self._taken:
                return None
            self._taken = self._sequence
            return np.ascontiguousarray(self._frame[:, :, ::-1])

    def close(self):
        self.capture.release()


class Window:
    """An OpenCV window showing RGB frames, optionally with the frame rate drawn on them; ``show`` returns the key
    pressed (lower-case character, or '')."""

    def __init__(self, title: str, show_fps: bool):
        self.title, self.show_fps = title, show_fps
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray, fps=None) -> str:
        frame = np.ascontiguousarray(image[:, :, 2::-1]) if image.ndim == 3 else image
        if self.show_fps and fps is not None:
            cv2.putText(frame, f"{fps:.0f} fps | {frame.shape[1]}x{frame.shape[0]}", (10, 40),
                        cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0))
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        return chr(key).lower() if key != 0xFF else ""

    def close(self):
        cv2.destroyWindow(self.title)


def has_screen() -> bool:
    """Whether a window can be opened (Linux/BSD need $DISPLAY or $WAYLAND_DISPLAY)."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def read_plate_file(path) -> np.ndarray:
    from bgmatting.data.io import read_image

    if not Path(path).is_file():
        raise UserError(f"--bgr {path}: no such image file")
    return read_image(path)


@cli_main
def webcam_main(argv=None):
    """``inference_webcam.py``: matte a camera (or a video file) live; show and/or write the composite; report fps."""
    from bgmatting.data.video import VideoWriter
    from bgmatting.pipeline.outputs import TargetBackground
    from bgmatting.pipeline.render import render

    args = webcam_parser().parse_args(argv)
    show = not args.no_display and has_screen()
    if not show and args.output is None:
        raise UserError("no window (--no-display, or no screen) and no --output: nothing would be shown or written")
    if args.plate_frames < 1:
        raise UserError(f"--plate-frames must be >= 1, got {args.plate_frames}")
    if args.output is not None and Path(args.output).suffix.lower() != ".mp4":
        raise UserError(f"--output {args.output}: give an .mp4 file")
    plate = read_plate_file(args.bgr) if args.bgr else None
    target = TargetBackground(args.target_bgr)
    settings = official_settings(args, "inference_webcam.py")
    predictor = make_predictor(args, settings)
    source = LiveSource(args.src, args.resolution)
    window = Window("MattingV2", not args.hide_fps) if show else None
    fps, writer, ok, model_seconds = FPSTracker(), None, False, 0.0
    last_report = time.perf_counter()
    try:
        if plate is None and window is None:
            plate = capture_plate(source, args.plate_frames)
        while args.max_frames is None or fps.frames < args.max_frames:
            frame = source.read()
            if frame is None:
                break
            if plate is None:  # capture mode: show the camera until B
                key = window.show(frame, fps.average)
                if key == "b":
                    plate = frame
                elif key == "q":
                    break
                continue
            if plate.shape != frame.shape:
                plate = cv2.resize(plate, frame.shape[1::-1], interpolation=cv2.INTER_AREA)
            start = time.perf_counter()
            result = predictor(src=frame, bgr=plate)
            model_seconds += time.perf_counter() - start
            composite = render("com", result, target.next(frame.shape[:2]))
            current = fps.tick()
            if args.output is not None:
                if writer is None:
                    writer = VideoWriter(args.output, source.fps, composite.shape[:2])
                writer.write(composite)
            if window is not None:
                key = window.show(composite, current)
                if key == "b":
                    plate = None
                elif key == "q":
                    break
            if args.report_every > 0 and time.perf_counter() - last_report >= args.report_every and current:
                print(f"{fps.frames} frames, {current:.1f} fps", file=sys.stderr, flush=True)
                last_report = time.perf_counter()
        ok = True
    except KeyboardInterrupt:
        ok = True  # Ctrl-C ends a live session: keep what was written
    finally:
        if writer is not None:
            writer.close(ok)
        source.close()
        if window is not None:
            window.close()
    overall = fps.overall()
    rate = f"{overall:.2f} fps" if overall else "fps n/a"
    per_frame = f", model {1000 * model_seconds / fps.frames:.0f} ms/frame" if fps.frames else ""
    print(f"matted {fps.frames} frame(s): {rate}{per_frame}" + (f"; wrote {args.output}" if writer else ""))


def capture_plate(source, count: int) -> np.ndarray:
    """The plate captured at the start without a window: the median of the first ``count`` frames."""
    frames = []
    while len(frames) < count:
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    if not frames:
        raise UserError("--src gave no frame to capture the plate from")
    if len(frames) == 1:
        return frames[0]
    return np.median(np.stack(frames), axis=0).astype(np.uint8)

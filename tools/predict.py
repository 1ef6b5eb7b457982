"""Matting of a photo, a folder of photos or a video, given a clean plate (BackgroundMattingV2) or a trimap (ViTMatte).

Flags follow the official inference_images.py / inference_video.py; ``--src`` and ``--bgr`` take a file, a
folder or a video, and ``--bgr auto`` estimates the plate of a video shot without one.

Example:
    python predict.py --model-type mattingrefine --model-backbone resnet50 \\
        --model-checkpoint pytorch_resnet50.pth --src photo.jpg --bgr plate.jpg \\
        --output-dir out --output-types com pha fgr --preprocess-alignment

    python predict.py --model-type mattingrefine --model-backbone mobilenetv2 \\
        --model-checkpoint pytorch_mobilenetv2.pth --src clip.mp4 --bgr plate.jpg \\
        --output-dir out_clip --output-types com pha --target-bgr 0,255,0 -y

    # trimap matting (ViTMatte; official .pth, Hugging Face model.safetensors or converted .pdparams)
    python predict.py --model-type vitmatte --model-checkpoint vitmatte-small/model.safetensors \\
        --src photo.jpg --trimap trimap.png --output-dir out_vitmatte --output-types com pha
    # no trimap: build one from a binary/soft mask (unknown band of +-15 px around its edges)
    python predict.py --model-type vitmatte --model-checkpoint vitmatte_s.pdparams --src photos/ --mask masks/ \\
        --mask-width 15 --output-dir out_masks --output-types pha
    # cascade: BackgroundMattingV2's coarse alpha -> automatic trimap -> ViTMatte on the full-resolution photo
    python predict.py --model-type bgmv2+vitmatte --model-backbone resnet50 --model-checkpoint pytorch_resnet50.pth \\
        --model-vitmatte-checkpoint vitmatte_s.pdparams --src photo.jpg --bgr plate.jpg --output-dir out_cascade \\
        --output-types com pha
"""
import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bgmatting.data.alignment import ALIGNMENT_MODES, PlateAligner  # noqa: E402
from bgmatting.data.compositing import cutout_rgba  # noqa: E402
from bgmatting.data.io import write_image  # noqa: E402
from bgmatting.data.plate_estimation import estimate_plate  # noqa: E402
from bgmatting.data.synthetic import composite  # noqa: E402
from bgmatting.data.trimap_inputs import TrimapInput  # noqa: E402
from bgmatting.data.video import ThreadedReader, ThreadedWriter, VideoWriter, open_source  # noqa: E402
from bgmatting.engine.model_args import add_model_arguments  # noqa: E402
from bgmatting.engine.predictor import BGMV2_BACKBONES, MODEL_KINDS, Predictor  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402

OUTPUT_TYPES = ("com", "pha", "fgr", "err", "ref")
DEFAULT_VIDEO_BGR = (120, 255, 155)  # the official inference_video.py's flat green
PLATE_FILE = "plate.png"


def build_parser():
    """The argument parser (official flag names and defaults, plus this project's additions)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__[
                                         __doc__.index("Example:"):])
    add_model_arguments(parser, official_required=True, title="model (official flags)")
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--src", required=True, help="an image, a folder of images, or a video")
    io.add_argument("--bgr",
                    help="BackgroundMattingV2 models: the clean plate: an image, a folder (paired with --src by sorted "
                         "path), a video (paired "
                         "frame by frame), or 'auto' (temporal median of a --src video or folder)")
    io.add_argument("--trimap", help="vitmatte: the trimap (0/128/255): an image, or a folder/video paired with --src")
    io.add_argument("--mask", help="vitmatte without a trimap: a binary/soft mask (image, folder or video) whose edges "
                                   "become the unknown band of the trimap")
    io.add_argument("--mask-width", type=int, default=10,
                    help="--mask: half-width in pixels of the unknown band around the mask's edges (default 10)")
    io.add_argument("--bgr-resize", action="store_true", help="resize a plate whose size differs from --src")
    io.add_argument("--preprocess-alignment", action="store_true",
                    help="align the plate to each source image (hand-held capture)")
    io.add_argument("--alignment-mode", default="full", choices=ALIGNMENT_MODES,
                    help="homography: the official ORB+RANSAC; ecc: + sub-pixel refinement; full: + exposure and "
                         "white-balance matching (default)")
    io.add_argument("--output-dir", required=True)
    io.add_argument("--output-types", required=True, nargs="+", choices=OUTPUT_TYPES)
    io.add_argument("--output-format", choices=["video", "png", "jpg"],
                    help="default: video for a video --src, png otherwise")
    io.add_argument("--target-bgr",
                    help="composite 'com' onto this: a colour R,G,B, an image, or a video (default for video "
                         "output: the official green; for image output 'com' is an RGBA PNG)")
    parser.add_argument("--backend", default="dygraph", choices=["dygraph", "inference", "onnx"],
                        help="inference = Paddle Inference (oneDNN on CPU), onnx = onnxruntime; both take an export "
                             "directory of tools/export.py as --model-checkpoint, or export a checkpoint on the fly")
    parser.add_argument("--cpu-threads", type=int, default=None, help="threads of the inference/onnx backends")
    parser.add_argument("-y", action="store_true", help="replace an existing output directory without asking")
    return parser


class TargetBackground:
    """What ``com`` is composited onto: a colour, an image (resized to the frame) or a video/folder (looped).

    ``next(size)`` returns float32 (H, W, 3) in [0, 1] for the next frame.
    """

    def __init__(self, value):
        self.colour, self.source, self.frames = None, None, None
        if re.fullmatch(r"\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*", value):
            colour = [int(c) for c in value.split(",")]
            if max(colour) > 255:
                raise UserError(f"--target-bgr colour components must be 0..255, got {value}")
            self.colour = np.array(colour, np.float32) / 255.0
        else:
            self.source = open_source(value, "--target-bgr")

    def next(self, size):
        """The background for the next frame, float32 (H, W, 3) in [0, 1]."""
        if self.colour is not None:
            return np.broadcast_to(self.colour, (*size, 3))
        if self.frames is None:
            self.frames = iter(self.source)
        item = next(self.frames, None)
        if item is None:  # loop a shorter video
            self.frames = iter(self.source)
            item = next(self.frames)
        frame = item[1]
        if frame.shape[:2] != tuple(size):
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return frame.astype(np.float32) / 255.0


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Refuse an existing output directory unless ``-y`` or the user confirms on a terminal.

    Only directories holding nothing but this tool's outputs may be replaced, so a mistyped ``--output-dir``
    cannot delete unrelated files.
    """
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"--output-dir exists and is not a directory: {path}")
    if not any(path.iterdir()):
        return  # nothing to overwrite
    ours = set(OUTPUT_TYPES) | {f"{t}.mp4" for t in OUTPUT_TYPES} | {PLATE_FILE}
    foreign = sorted(p.name for p in path.iterdir() if p.name not in ours)
    if foreign:
        raise UserError(f"--output-dir {path} holds files predict.py did not write ({', '.join(foreign[:3])}); "
                        "choose another directory")
    if overwrite:
        return
    if sys.stdin.isatty():
        answer = input(f"Directory {path} already exists. Replace it? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            return
    raise UserError(f"output directory already exists: {path} (pass -y to replace it)")


def check_pairing(src, plate, what="--bgr"):
    """Raise UserError for src/plate (or src/trimap, ``what``) combinations that cannot be paired."""
    if plate is None:  # --bgr auto
        if src.kind == "image":
            raise UserError("--bgr auto needs a video or a folder of frames as --src, not a single image")
        return
    if plate.kind == "image":
        return
    if src.kind == "image":
        raise UserError(f"--src is one image but {what} is a {plate.kind}; pass one image")
    if len(src) and len(plate) and len(src) != len(plate):
        raise UserError(f"--src has {len(src)} {'images' if src.kind == 'folder' else 'frames'} but {what} has "
                        f"{len(plate)}; they are paired by sorted path / frame index and must match in number "
                        "(or pass a single plate image)")


def check_sizes(src_size, plate_size, args, name="the first image"):
    """Raise UserError when the plate's size differs from the source's and nothing was asked to fix that."""
    if tuple(src_size) != tuple(plate_size) and not (args.bgr_resize or args.preprocess_alignment):
        raise UserError(f"size mismatch for {name}: --src is {src_size[1]}x{src_size[0]} but --bgr is "
                        f"{plate_size[1]}x{plate_size[0]} (pass --bgr-resize to resize the plate, or "
                        "--preprocess-alignment to warp it)")


def frame_pairs(src, plate):
    """Yield ``(name, frame, plate_frame)``; a plate image (or an estimated plate array) is reused for every frame."""
    if isinstance(plate, np.ndarray):
        for name, frame in src:
            yield name, frame, plate
        return
    if plate.kind == "image":
        yield from frame_pairs(src, plate.frame)
        return
    plates = iter(plate)
    for name, frame in src:
        item = next(plates, None)
        if item is None:
            raise UserError(f"--bgr ran out of frames before --src at {name}")
        yield name, frame, item[1]


class OutputSink:
    """Writes the requested outputs of each frame, as images or as one video per output type."""

    def __init__(self, root: Path, types, output_format, fps, target):
        self.root, self.types, self.format, self.fps, self.target = root, types, output_format, fps, target
        self.videos = {}

    def images(self, result):
        """Output type → uint8-convertible array for this frame (float32 in [0, 1])."""
        pha, fgr = result["pha"], result["fgr"]
        images = {}
        for kind in self.types:
            if kind == "com":
                if self.target is None:  # official RGBA: fgr × (pha > 0)
                    images[kind] = cutout_rgba(fgr, pha)
                else:
                    images[kind] = composite(fgr, pha, self.target.next(pha.shape))
            else:
                images[kind] = result[kind]
        return images

    def write(self, name, images):
        """Write one frame's images (called on the writer thread, in frame order)."""
        for kind, image in images.items():
            if self.format == "video":
                if kind not in self.videos:
                    self.videos[kind] = VideoWriter(self.root / f"{kind}.mp4", self.fps, image.shape[:2])
                self.videos[kind].write((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
            else:
                rgba = kind == "com" and image.shape[-1] == 4
                write_image(self.root / kind / f"{name}.{'png' if rgba else self.format}", image)

    def close(self, ok=True):
        """Finish the videos (``ok=False``: discard them)."""
        for video in self.videos.values():
            video.close(ok)


def _plate_for(frame, plate_frame, name, aligner, fallbacks, args):
    """The plate for ``frame``: aligned (warnings recorded in ``fallbacks``), or size-checked and resized."""
    if aligner is not None:
        alignment = aligner(frame, plate_frame)
        if alignment.warning:
            if not fallbacks:
                tqdm.write(f"warning: {name}: {alignment.warning}", file=sys.stderr)
            fallbacks[name] = alignment.warning
        return alignment.plate
    check_sizes(frame.shape, plate_frame.shape, args, name)
    if plate_frame.shape != frame.shape:
        plate_frame = cv2.resize(plate_frame, frame.shape[1::-1], interpolation=cv2.INTER_AREA)
    return plate_frame


def run(args, src, plate, predictor, root: Path, trimaps=None):
    """Matte every frame of ``src`` into ``root`` (a fresh directory); ``trimaps`` (a TrimapInput) turns the frames
    paired from ``plate`` into trimaps for trimap models."""
    target = TargetBackground(args.target_bgr) if args.target_bgr else (
        TargetBackground(",".join(map(str, DEFAULT_VIDEO_BGR))) if args.output_format == "video" else None)
    sink = OutputSink(root, args.output_types, args.output_format, src.fps, target)
    aligner = PlateAligner(args.alignment_mode) if args.preprocess_alignment else None
    fallbacks = {}
    ok = False
    try:
        with ThreadedWriter() as writer:
            frames = tqdm(ThreadedReader(frame_pairs(src, plate)), total=len(src) or None, unit="frame",
                          disable=src.kind == "image", file=sys.stderr)
            for name, frame, plate_frame in frames:
                if trimaps is not None:
                    result = predictor(src=frame, trimap=trimaps(name, frame, plate_frame))
                else:
                    result = predictor(src=frame, bgr=_plate_for(frame, plate_frame, name, aligner, fallbacks, args))
                writer.submit(sink.write, name, sink.images(result))
        ok = True
    finally:
        sink.close(ok)
    if len(fallbacks) > 1:
        print(f"warning: plate alignment warned on {len(fallbacks)} of {len(src)} frames (the first is shown above)",
              file=sys.stderr)


def finalize(partial: Path, output: Path):
    """Move the finished ``partial`` directory to ``output``, replacing an old one (already confirmed)."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(old)
    partial.rename(output)
    if old is not None:
        shutil.rmtree(old)


def resolve_output_format(args, src):
    """``--output-format``, defaulting to video for a video ``--src`` and png otherwise."""
    if args.output_format is None:
        return "video" if src.kind == "video" else "png"
    if args.output_format == "video" and src.kind != "video":
        raise UserError(f"--output-format video needs a video --src; {args.src} is a {src.kind}")
    return args.output_format


def load_plate(args, src):
    """The plate source, or (for ``--bgr auto``) an estimated plate array; warnings printed."""
    if args.bgr != "auto":
        plate = open_source(args.bgr, "--bgr")
        check_pairing(src, plate)
        check_sizes(src.size, plate.size, args)
        return plate
    check_pairing(src, None)
    aligner = PlateAligner(args.alignment_mode) if args.preprocess_alignment else None
    frames = ThreadedReader(frame for _, frame in tqdm(src, total=len(src) or None, desc="estimating plate",
                                                        unit="frame", file=sys.stderr))
    estimate = estimate_plate(frames, count=len(src) or 1, aligner=aligner)
    if estimate.warning:
        print(f"warning: {estimate.warning}", file=sys.stderr)
    return estimate.plate


def check_model_inputs(args):
    """Raise UserError for inputs and outputs that do not fit the model type (a plate vs a trimap or mask)."""
    if args.model_type == "mattingbase" and "ref" in args.output_types:
        raise UserError("--output-types ref needs --model-type mattingrefine (MattingBase refines nothing)")
    if MODEL_KINDS[args.model_type].guide == "trimap":
        if args.bgr or args.bgr_resize or args.preprocess_alignment:
            raise UserError(f"--bgr, --bgr-resize and --preprocess-alignment are for clean-plate models; "
                            f"{args.model_type} takes --trimap TRIMAP or --mask MASK")
        if (args.trimap is None) == (args.mask is None):
            raise UserError(f"{args.model_type} needs exactly one of --trimap TRIMAP and --mask MASK")
        if {"err", "ref"} & set(args.output_types):
            raise UserError(f"--output-types err and ref come from BackgroundMattingV2; {args.model_type} predicts "
                            "alpha only")
        return
    if args.trimap or args.mask:
        raise UserError(f"--trimap and --mask are for --model-type vitmatte; {args.model_type} takes a clean plate "
                        "(--bgr)")
    if args.bgr is None:
        raise UserError(f"{args.model_type} needs a clean plate: --bgr PLATE (or --bgr auto for a video)")
    if args.model_backbone is None:
        raise UserError(f"{args.model_type} needs --model-backbone ({', '.join(BGMV2_BACKBONES)})")
    if args.model_type == "bgmv2+vitmatte":
        if not args.model_vitmatte_checkpoint:
            raise UserError("bgmv2+vitmatte needs the ViTMatte weights too: --model-vitmatte-checkpoint CKPT")
        if args.backend != "dygraph":
            raise UserError("the bgmv2+vitmatte cascade runs on the dygraph backend only")


def load_trimaps(args, src):
    """(the --trimap/--mask source, a TrimapInput turning its frames into trimaps), checked against ``src``."""
    what = "--trimap" if args.trimap else "--mask"
    source = open_source(args.trimap or args.mask, what)
    check_pairing(src, source, what)
    return source, TrimapInput(None if args.trimap else args.mask_width, what)


@cli_main
def main(argv=None):
    """Parse arguments, validate every input, then matte into a temporary directory renamed at the end."""
    args = build_parser().parse_args(argv)
    output = Path(args.output_dir)
    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise UserError(f"--cpu-threads must be >= 1, got {args.cpu_threads}")
    check_model_inputs(args)
    src = open_source(args.src, "--src")
    args.output_format = resolve_output_format(args, src)
    if args.target_bgr:
        TargetBackground(args.target_bgr)  # validate before any work
    prepare_output_dir(output, args.y)
    trimaps = None
    if MODEL_KINDS[args.model_type].guide == "trimap":
        plate, trimaps = load_trimaps(args, src)
    else:
        plate = load_plate(args, src)
    predictor = Predictor.from_args(args, backend=args.backend, cpu_threads=args.cpu_threads)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    partial.mkdir()
    try:
        if isinstance(plate, np.ndarray):
            write_image(partial / PLATE_FILE, plate)
        run(args, src, plate, predictor, partial, trimaps)
        finalize(partial, output)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    print(f"wrote {', '.join(args.output_types)} for {len(src) or 'all'} frame(s) to {output}")


if __name__ == "__main__":
    main()

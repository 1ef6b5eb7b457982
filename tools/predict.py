"""Matting of a photo, a folder of photos or a video, given a clean plate (BackgroundMattingV2) or a trimap (ViTMatte).

Flags follow the official inference_images.py / inference_video.py; ``--src`` and ``--bgr`` take a file, a
folder or a video, and ``--bgr auto`` estimates the plate of a video shot without one.

Outputs go to OUTPUT_DIR/TYPE/NAME.png (or TYPE.mp4|mov|webm), named after the inputs; files of one folder that
share a stem keep their extension (``a.png``, ``a.jpg`` → ``a_png``, ``a_jpg``). The folder appears only once the run
finished (:mod:`bgmatting.pipeline.output_dir`). Bad input ends the run with one ``error:`` line and exit status 2;
undecodable video frames are skipped with a warning, and the last line counts the frames actually written. Video
outputs keep the source's timestamps, colour tags and audio (see --output-format). Under
``python -m paddle.distributed.launch --nproc_per_node N predict.py …`` the frames are split across the N processes
and rank 0 writes the one output (:mod:`bgmatting.pipeline.ranks`).

Example:
    python predict.py --model-type mattingrefine --model-backbone resnet50 \\
        --model-checkpoint pytorch_resnet50.pth --src photo.jpg --bgr plate.jpg \\
        --output-dir out --output-types com pha fgr --preprocess-alignment

    python predict.py --model-type mattingrefine --model-backbone mobilenetv2 \\
        --model-checkpoint pytorch_mobilenetv2.pth --src clip.mp4 --bgr plate.jpg \\
        --output-dir out_clip --output-types com pha --target-bgr 0,255,0 -y
    # for an editor: ProRes 4444 with 'com' as a real alpha channel, the clip's timestamps and audio kept
    python predict.py --model-type mattingrefine --model-backbone mobilenetv2 \\
        --model-checkpoint pytorch_mobilenetv2.pth --src clip.mp4 --bgr plate.jpg \\
        --output-dir out_prores --output-types com pha --output-format mov-prores4444

    # trimap matting (ViTMatte; official .pth, Hugging Face model.safetensors or converted .pdparams)
    python predict.py --model-type vitmatte --model-checkpoint vitmatte-small/model.safetensors \\
        --src photo.jpg --trimap trimap.png --output-dir out_vitmatte --output-types com pha
    # no trimap: build one from a binary/soft mask (unknown band of +-15 px around its edges)
    python predict.py --model-type vitmatte --model-checkpoint vitmatte_s.pdparams --src photos/ --mask masks/ \\
        --mask-width 15 --output-dir out_masks --output-types pha
    # cascade: BackgroundMattingV2's coarse alpha -> automatic trimap -> ViTMatte on the full-resolution photo;
    # also write that trimap and the aligned plate, and force alpha to 0/1 where the trimap is sure
    python predict.py --model-type bgmv2+vitmatte --model-backbone resnet50 --model-checkpoint pytorch_resnet50.pth \\
        --model-vitmatte-checkpoint vitmatte_s.pdparams --src photo.jpg --bgr plate.jpg --output-dir out_cascade \\
        --output-types com pha trimap bgr --preprocess-alignment --clamp-known
"""
import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bgmatting.data.alignment import ALIGNMENT_MODES, PlateAligner  # noqa: E402
from bgmatting.data.io import write_image  # noqa: E402
from bgmatting.data.trimap_inputs import TrimapInput  # noqa: E402
from bgmatting.data.video import open_source  # noqa: E402
from bgmatting.engine.model_args import add_model_arguments, settings_from_args  # noqa: E402
from bgmatting.engine.predictor import Predictor, default_backend  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402
from bgmatting.cli_help import HelpFormatter  # noqa: E402
from bgmatting.pipeline.extras import check_guide_outputs, with_guide_outputs  # noqa: E402
from bgmatting.pipeline.output_dir import OutputFolder  # noqa: E402
from bgmatting.data.video import DEFAULT_CRF, DEFAULT_PRESET, ENCODER_PRESETS, VIDEO_FORMATS  # noqa: E402
from bgmatting.pipeline.outputs import (DEFAULT_VIDEO_BGR, FORMAT_ALIASES, OUTPUT_FORMATS, PLATE_FILE,  # noqa: E402
                                        OutputSink, TargetBackground, needs_background)
from bgmatting.pipeline.pairing import (PlateInput, check_pairing, check_sizes, estimate_source_plate,  # noqa: E402
                                        frame_pairs)
from bgmatting.pipeline.parts import Tally, decode_png, encode_png, join_parts, part_format, write_part  # noqa: E402
from bgmatting.pipeline.ranks import Ranks, add_rank_arguments, part_folder  # noqa: E402
from bgmatting.pipeline.render import OUTPUT_TYPES  # noqa: E402
from bgmatting.pipeline.run import run  # noqa: E402
from bgmatting.runtime_logs import quiet_runtime_logs  # noqa: E402


def build_parser():
    """The argument parser (official flag names and defaults, plus this project's additions)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter, epilog=__doc__[__doc__.index("Example:"):])
    add_model_arguments(parser, title="model (official flags; a self-describing checkpoint needs none but "
                                      "--model-checkpoint)")
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
    io.add_argument("--clamp-known", action="store_true",
                    help="trimap paths (vitmatte, bgmv2+vitmatte): force alpha to 0/1 where the trimap used is 0/255, "
                         "as eval.py --clamp-known")
    io.add_argument("--bgr-resize", action="store_true", help="resize a plate whose size differs from --src")
    io.add_argument("--preprocess-alignment", action="store_true",
                    help="align the plate to each source image (hand-held capture)")
    io.add_argument("--alignment-mode", default="full", choices=ALIGNMENT_MODES,
                    help="homography: the official ORB+RANSAC; ecc: + sub-pixel refinement; full: + exposure and "
                         "white-balance matching (default)")
    io.add_argument("--output-dir", required=True,
                    help="the output folder: OUTPUT_DIR/TYPE/NAME.png (or TYPE.mp4|mov|webm), written when the run "
                         "finished")
    io.add_argument("--output-types", required=True, nargs="+", choices=OUTPUT_TYPES,
                    help="com: RGBA cut-out (or composite on --target-bgr), pha: alpha, fgr: foreground, err: error "
                         "map, ref: refined patches, trimap: the trimap used (vitmatte; the cascade's automatic one), "
                         "bgr: the plate as the model saw it (aligned, resized or estimated)")
    io.add_argument("--output-format", choices=[*OUTPUT_FORMATS, *FORMAT_ALIASES],
                    help="mp4: H.264; mp4-hevc: HEVC; mov-prores4444: ProRes 4444, 'com' with alpha (editors); "
                         "webm-alpha: VP9 with alpha (web); png/jpg: image sequences (video = mp4). Videos keep the "
                         "source's timestamps, colour tags and audio. Default: mp4 for a video --src, png otherwise")
    io.add_argument("--crf", type=int, default=DEFAULT_CRF,
                    help=f"quality of mp4/mp4-hevc/webm-alpha, 0 (lossless) to 51; default {DEFAULT_CRF}")
    io.add_argument("--preset", choices=ENCODER_PRESETS,
                    help=f"speed preset of mp4/mp4-hevc (x264/x265; default {DEFAULT_PRESET}): faster presets leave "
                         "the CPU to the model, slower ones make smaller files at the same --crf")
    io.add_argument("--pha-depth", type=int, default=8, choices=[8, 16],
                    help="16: 'pha' as 16-bit PNGs (with --output-format png)")
    io.add_argument("--target-bgr",
                    help="composite 'com' onto this: a colour R,G,B, an image, or a video (default for mp4 and "
                         "mp4-hevc: the official green; otherwise 'com' is an RGBA cut-out: PNG, ProRes 4444 or VP9 "
                         "with alpha)")
    parser.add_argument("--backend", default=None, choices=["auto", "dygraph", "inference", "onnx"],
                        help="auto (the default) = the fastest installed runtime (onnxruntime, else Paddle Inference) "
                             "where the model exports, else dygraph; inference = Paddle Inference (oneDNN on CPU), "
                             "onnx = onnxruntime: both take an export folder as --model-checkpoint, or export the "
                             "checkpoint once into the export cache (~/.cache/bgmatting/exports, "
                             "$BGMATTING_EXPORT_CACHE); dygraph = eager Paddle")
    parser.add_argument("--cpu-threads", type=int, default=None,
                        help="CPU threads of the runtime, any backend (default: all CPUs)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the runtimes' own logs (Paddle, oneDNN, paddle2onnx), hidden by default")
    parser.add_argument("-y", action="store_true", help="replace an existing output directory without asking")
    add_rank_arguments(parser)
    return parser


def check_model_inputs(args, settings):
    """Raise UserError for inputs and outputs that do not fit the model (a plate vs a trimap or mask)."""
    kind = settings.kind
    if args.model_checkpoint is None:
        raise UserError("give the model: --model-checkpoint (a model/run/export folder or a weights file)")
    if kind.name == "mattingbase" and "ref" in args.output_types:
        raise UserError("--output-types ref needs --model-type mattingrefine (MattingBase refines nothing)")
    if kind.guide == "trimap":
        if args.bgr or args.bgr_resize or args.preprocess_alignment:
            raise UserError(f"--bgr, --bgr-resize and --preprocess-alignment are for clean-plate models; "
                            f"{kind.name} takes --trimap TRIMAP or --mask MASK")
        if (args.trimap is None) == (args.mask is None):
            raise UserError(f"{kind.name} needs exactly one of --trimap TRIMAP and --mask MASK")
        if {"err", "ref"} & set(args.output_types):
            raise UserError(f"--output-types err and ref come from BackgroundMattingV2; {kind.name} predicts "
                            "alpha only")
        return
    if args.trimap or args.mask:
        raise UserError(f"--trimap and --mask are for --model-type vitmatte; {kind.name} takes a clean plate "
                        "(--bgr)")
    if args.bgr is None:
        raise UserError(f"{kind.name} needs a clean plate: --bgr PLATE (or --bgr auto for a video)")
    if kind.name == "bgmv2+vitmatte":
        if not settings.options["vitmatte_checkpoint"]:
            raise UserError("bgmv2+vitmatte needs the ViTMatte weights too: --model-vitmatte-checkpoint CKPT")


def resolve_output_format(args, src):
    """``--output-format``, defaulting to mp4 for a video ``--src`` and png otherwise (checked with ``--crf`` and
    ``--pha-depth``)."""
    output_format = FORMAT_ALIASES.get(args.output_format, args.output_format)
    if output_format is None:
        output_format = "mp4" if src.kind == "video" else "png"
    if output_format in VIDEO_FORMATS and src.kind != "video":
        raise UserError(f"--output-format {args.output_format} needs a video --src; {args.src} is a {src.kind}")
    if not 0 <= args.crf <= 51:
        raise UserError(f"--crf must be 0 (lossless) to 51, got {args.crf}")
    if args.pha_depth == 16 and output_format != "png":
        raise UserError(f"--pha-depth 16 writes 16-bit PNGs: add --output-format png (not {output_format})")
    if args.preset is not None and output_format not in ("mp4", "mp4-hevc"):
        raise UserError(f"--preset {args.preset} sets the H.264/HEVC encoder: it needs --output-format mp4 or "
                        f"mp4-hevc (not {output_format})")
    return output_format


class Guide(NamedTuple):
    """The second model input: its argument (``bgr``/``trimap``), flag, source (or estimated plate array) and the
    callable turning each paired frame into it."""

    argument: str
    flag: str
    source: object
    to_guide: object


def load_guide(args, src, kind, ranks: Ranks) -> Guide:
    """Open and check the plate, trimap or mask paired with ``src`` (or estimate the plate for ``--bgr auto``: on
    rank 0 only, which shares it with the other ranks as a PNG)."""
    if kind.guide == "trimap":
        flag = "--trimap" if args.trimap else "--mask"
        source = open_source(args.trimap or args.mask, flag)
        check_pairing(src, source, flag)
        return Guide("trimap", flag, source, TrimapInput(None if args.trimap else args.mask_width, flag))
    aligner = PlateAligner(args.alignment_mode) if args.preprocess_alignment else None
    if args.bgr != "auto":
        plate = open_source(args.bgr, "--bgr")
        check_pairing(src, plate)
        check_sizes(src.size, plate.size, args.bgr_resize or aligner is not None)
        return Guide("bgr", "--bgr", plate, PlateInput(aligner, args.bgr_resize))
    check_pairing(src, None)
    if not ranks.main:
        return Guide("bgr", "--bgr", decode_png(ranks.receive("plate")), PlateInput(aligner, args.bgr_resize))
    estimate = estimate_source_plate(src, aligner)
    if estimate.warning:
        print(f"warning: {estimate.warning}", file=sys.stderr)
    ranks.publish("plate", encode_png(estimate.plate))
    return Guide("bgr", "--bgr", estimate.plate, PlateInput(aligner, args.bgr_resize))


def print_report(report, src, output_types, output):
    """The run's warnings, then one line saying what was written where."""
    if len(report.warnings) > 1:
        print(f"warning: plate alignment warned on {len(report.warnings)} of {len(src)} frames (the first is shown "
              "above)", file=sys.stderr)
    if report.unreadable:
        shown = ", ".join(report.unreadable[:5]) + (", …" if len(report.unreadable) > 5 else "")
        print(f"warning: skipped {len(report.unreadable)} frame(s) that could not be decoded: {shown}",
              file=sys.stderr)
    if src.kind == "video" and src.frames_seen is not None and src.frames_seen < len(src):
        print(f"warning: --src ended after frame {src.frames_seen} of the {len(src)} its header announces "
              "(damaged or truncated video)", file=sys.stderr)
    if src.kind == "video":
        print(f"--src: decoded {src.decoded} frame(s) with {'PyAV' if src.backend == 'pyav' else 'OpenCV'}; "
              f"{report.timing_line()}", file=sys.stderr)
    print(f"wrote {', '.join(output_types)} for {report.written} frame(s) to {output}")


@cli_main
def main(argv=None):
    """Parse arguments, validate every input, then matte into a staging folder renamed into place at the end."""
    args = build_parser().parse_args(argv)
    with quiet_runtime_logs(enabled=args.backend != "dygraph" and not args.verbose):  # Paddle/paddle2onnx internals
        ranks = Ranks.from_env(args.rank_timeout)  # one process, or a rank under paddle.distributed.launch
        with ranks.reporting():
            predict(args, ranks)


def check_ranks(args, target, ranks):
    """Refuse what cannot be split across ranks and stay identical to one process (``target``: the
    :class:`TargetBackground` or None)."""
    if ranks.distributed and args.preprocess_alignment:
        raise UserError("--preprocess-alignment starts each frame's alignment from the previous frame's, so frames "
                        "split across ranks would align differently at the share boundaries; run it as one process")
    if ranks.distributed and target is not None and target.source is not None and target.source.kind != "image":
        raise UserError(f"--target-bgr {args.target_bgr}: a background video or folder advances frame by frame and is "
                        "not split across ranks; give a colour R,G,B or one image, or run one process")


def predict(args, ranks):
    """The run of :func:`main` on parsed arguments (this rank's share of it, see :mod:`bgmatting.pipeline.ranks`)."""
    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise UserError(f"--cpu-threads must be >= 1, got {args.cpu_threads}")
    src = open_source(args.src, "--src")
    args.output_format = resolve_output_format(args, src)
    target = args.target_bgr or (DEFAULT_VIDEO_BGR if needs_background(args.output_format) else None)
    target = TargetBackground(target) if target else None
    check_ranks(args, target, ranks)
    output = OutputFolder(args.output_dir, args.y) if ranks.main else None
    settings = settings_from_args(args)  # imports Paddle: after the cheap checks
    check_model_inputs(args, settings)
    backend = args.backend if args.backend not in (None, "auto") else default_backend(
        settings.kind, args.device, None, settings.source)  # auto: the fastest runtime that applies
    check_guide_outputs(settings.kind, args.output_types, args.clamp_known)
    guide = load_guide(args, src, settings.kind, ranks)
    predictor = Predictor.from_args(args, settings=settings, backend=backend, cpu_threads=args.cpu_threads)
    predictor = with_guide_outputs(predictor, args.output_types, args.clamp_known)  # + trimap/bgr, --clamp-known
    output_format = args.output_format if ranks.main else part_format(args.output_format)
    sink = OutputSink(args.output_types, output_format, src.fps, target, crf=args.crf, preset=args.preset or DEFAULT_PRESET,
                      pha_depth=args.pha_depth,
                      timing=src if src.kind == "video" else None)  # timestamps, colour tags and audio of --src
    tally = Tally()
    pairs = tally.count(ranks.select(frame_pairs(src, guide.source, guide.flag), len(src)))
    matte = dict(total=min(len(ranks.share(len(src))), len(src)), keep_open=ranks.distributed,
                 allow_empty=ranks.distributed)
    if not ranks.main:  # this rank's share into its part folder of rank 0's staging folder
        folder = part_folder(ranks.receive("staging").decode(), ranks.rank)
        sink.open(folder)
        report = run(predictor, pairs, guide.argument, guide.to_guide, sink, progress=False, **matte)
        sink.close()
        write_part(folder, sink, report, src, tally.decoded)
        ranks.done()
        return
    with output as staging:
        for folder in output.removed:
            print(f"removed {folder.name}, left by a run that was killed", file=sys.stderr)
        if isinstance(guide.source, np.ndarray):  # a plate estimated by --bgr auto
            write_image(staging / PLATE_FILE, guide.source)
        sink.open(staging)
        ranks.publish("staging", str(staging).encode())
        report = run(predictor, pairs, guide.argument, guide.to_guide, sink, progress=src.kind != "image", **matte)
        if ranks.distributed:
            join_parts(ranks, staging, sink, report, src, tally.decoded)
        output.commit()
    print_report(report, src, args.output_types, args.output_dir)


if __name__ == "__main__":
    main()

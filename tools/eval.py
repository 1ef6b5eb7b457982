"""Evaluate matting with the standard metrics (SAD, MSE, Grad, Conn, FG MSE; DIM convention) and reproducible
protocols. Writes SAVE_DIR/metrics.json, per_image.csv, report.html + worst.png (worst images) and prints a table.

Examples:
    # PhotoMatte85 protocol (background matting): composite each foreground onto a background at 2048², seed 0
    python eval.py --data data/PhotoMatte85 --backgrounds data/backgrounds/valid \
        --model-type mattingrefine --model-backbone resnet50 --model-checkpoint weights/bgmv2_resnet50.pdparams \
        --save-dir output/eval_pm85
    # the same with imperfect clean plates, and under the Paddle port's convention (its ×2 SAD/MSE)
    python eval.py --data data/PhotoMatte85 --backgrounds data/bg --model-checkpoint w.pdparams \
        --bgr-perturb shadow,noise,jitter,misalign --protocol paddle-port
    # trivial baselines: α = max_c|src − bgr| > 0.1 (clean plate) or α = trimap/255 (Composition-1k)
    python eval.py --data data/PhotoMatte85 --backgrounds data/bg --baseline difference
    python eval.py --layout comp1k --data data/Composition-1k-testset --baseline trimap
    # Composition-1k (trimap matting), known regions of the prediction forced from the trimap
    python eval.py --layout comp1k --data data/Composition-1k-testset --model-type vitmatte \
        --model-checkpoint weights/vitmatte_s.pdparams --clamp-known
    # score saved predictions without a model
    python eval.py --pred-dir out/pha --gt-dir data/comp1k/alpha_copy --trimap-dir data/comp1k/trimaps
    # two processes, each scoring half of the images; rank 0 writes the one report
    python -m paddle.distributed.launch --nproc_per_node 2 eval.py --layout comp1k --data data/Composition-1k-testset \
        --model-type vitmatte --model-checkpoint weights/vitmatte_s.pdparams
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bgmatting.cli_help import HelpFormatter  # noqa: E402
from bgmatting.eval_report import (PredictionSaver, WorstImages, format_table, read_part,  # noqa: E402
                                   write_metrics_json, write_part, write_per_image_csv)
from bgmatting.data.io import check_writable_folder  # noqa: E402
from bgmatting.engine import evaluator  # noqa: E402
from bgmatting.engine.model_args import add_model_arguments  # noqa: E402
from bgmatting.engine.predictor import Predictor  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402
from bgmatting.pipeline.ranks import Ranks, add_rank_arguments, part_folder  # noqa: E402



def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--layout", choices=["photomatte85", "comp1k"], default="photomatte85",
                      help="photomatte85: RGBA folder or fgr/+pha/, composited onto --backgrounds; "
                           "comp1k: merged/ alpha_copy/ trimaps/ (+fg/)")
    data.add_argument("--data", help="the test set folder")
    data.add_argument("--backgrounds", help="background images for the photomatte85 protocol")
    data.add_argument("--pred-dir", help="score saved predicted alphas (no model) ...")
    data.add_argument("--gt-dir", help="... against these ground-truth alphas (paired by relative path) ...")
    data.add_argument("--trimap-dir", help="... on the unknown region of these trimaps (default: whole image)")
    data.add_argument("--trimap-threshold", type=int, default=None,
                      help="quantise trimaps: v < T → 0, v ≥ 255−T → 255, else 128 "
                           "(default: reject other values)")
    data.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")

    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--protocol", choices=sorted(evaluator.PROTOCOLS), default="standard",
                          help="standard: DIM metrics, official validation compositing; paddle-port: the "
                               "BackgroundMattingV2-paddle eval (fg scale 0.55–0.9, SAD×2, MSE×2 with n+1)")
    protocol.add_argument("--resolution", type=int, default=2048, help="photomatte85 canvas side (default 2048)")
    protocol.add_argument("--seed", type=int, default=0, help="photomatte85 compositing seed (default 0)")
    protocol.add_argument("--bgr-perturb", default="",
                          help=f"comma list of clean-plate imperfections: {','.join(evaluator.PERTURBATIONS)}")
    protocol.add_argument("--clamp-known", action="store_true",
                          help="force the prediction to 0/1 where the trimap is 0/255 (trimap inputs only)")

    model = add_model_arguments(parser, title="model (as predict.py)")
    model.add_argument("--random-init", action="store_true",
                       help="evaluate an untrained model (weights drawn with paddle.seed(--seed))")
    model.add_argument("--baseline", choices=sorted(evaluator.BASELINES),
                       help="a trivial baseline instead of a model: difference (α = max_c|src − bgr| > threshold, "
                            "photomatte85) or trimap (α = trimap/255, comp1k)")
    model.add_argument("--baseline-threshold", type=float, default=0.1,
                       help="difference baseline: α = 1 where max_c|src − bgr| > this (0..1)")

    output = parser.add_argument_group("output")
    output.add_argument("--save-dir", default="output/eval", help="where metrics.json etc. go (default output/eval)")
    output.add_argument("--save-predictions", action="store_true",
                        help="write SAVE_DIR/predictions/{pha,fgr}/ and the generated inputs (inputs/)")
    output.add_argument("--worst", type=int, default=8, help="images in the picture report (default 8, 0 = none)")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    add_rank_arguments(parser)
    return parser.parse_args(argv)


def _perturbations(text: str) -> tuple:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def check_args(args) -> None:
    """Reject contradictory or incomplete flag combinations with one clear message."""
    if args.pred_dir or args.gt_dir:
        if not (args.pred_dir and args.gt_dir):
            raise UserError("--pred-dir and --gt-dir go together (predictions need their ground truth)")
        if args.data or args.backgrounds:
            raise UserError("use either --pred-dir/--gt-dir (saved predictions) or --data (run a model), not both")
        if args.model_checkpoint or args.baseline or args.random_init:
            raise UserError("--pred-dir scores saved predictions; drop the model/baseline flags")
        if args.save_predictions:
            raise UserError("--save-predictions needs a model run, not --pred-dir")
    else:
        if not args.data:
            raise UserError("give --data DIR (with a model) or --pred-dir/--gt-dir (saved predictions)")
        if args.layout == "photomatte85" and not args.backgrounds:
            raise UserError("the photomatte85 protocol needs --backgrounds DIR (the clean plates are composited)")
        if sum(map(bool, (args.model_checkpoint, args.baseline, args.random_init))) != 1:
            raise UserError("choose one of --model-checkpoint CKPT, --baseline NAME or --random-init")
    uses_trimaps = args.trimap_dir if args.pred_dir else args.layout == "comp1k"
    if args.trimap_threshold is not None and not uses_trimaps:
        raise UserError("--trimap-threshold needs input trimaps (--layout comp1k, or --trimap-dir)")
    if args.backgrounds and args.layout != "photomatte85":
        raise UserError("--backgrounds is for the photomatte85 protocol; --layout comp1k photos are composited")
    if args.clamp_known and not uses_trimaps:
        raise UserError("--clamp-known needs input trimaps (--layout comp1k, or --trimap-dir); the photomatte85 "
                        "trimap comes from the ground truth and only defines the metric region")
    if _perturbations(args.bgr_perturb) and (args.pred_dir or args.layout != "photomatte85"):
        raise UserError("--bgr-perturb applies to the photomatte85 protocol only")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if not 0.0 <= args.baseline_threshold <= 1.0:
        raise UserError(f"--baseline-threshold must be in [0, 1], got {args.baseline_threshold}")


def build_samples(args):
    """The evaluation set chosen by the flags (a sequence of EvalSample)."""
    if args.pred_dir:
        return evaluator.SavedPredictions(args.pred_dir, args.gt_dir, args.trimap_dir, args.trimap_threshold)
    if args.layout == "comp1k":
        return evaluator.Comp1kBenchmark(args.data, args.trimap_threshold)
    return evaluator.PhotoMatte85Benchmark(args.data, args.backgrounds, args.resolution, args.seed, args.protocol,
                                           _perturbations(args.bgr_perturb))


def build_predict_fn(args):
    """(predict_fn, description) for the model or baseline chosen by the flags; (None, None) for --pred-dir."""
    if args.pred_dir:
        return None, None
    if args.baseline == "difference":
        return (evaluator.DifferenceBaseline(args.baseline_threshold),
                {"baseline": args.baseline, "threshold": args.baseline_threshold})
    if args.baseline:
        return evaluator.BASELINES[args.baseline](), {"baseline": args.baseline}
    if args.random_init:
        import warnings

        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle

        paddle.seed(args.seed)  # the same untrained weights on every run
    predictor = Predictor.from_args(args, backend=None)  # the fastest installed runtime that applies
    description = {"type": predictor.model_type, "checkpoint": args.model_checkpoint or "random init",
                   **{k: v for k, v in predictor.options.items() if k != "vitmatte_config"}}
    return predictor, description


def describe_run(args, model) -> dict:
    """The run's settings for metrics.json."""
    info = {"model": model, "protocol": args.protocol, "clamp_known": args.clamp_known}
    if args.pred_dir:
        info.update(source="saved predictions", pred_dir=args.pred_dir, gt_dir=args.gt_dir,
                    region=("trimap==128 of " + args.trimap_dir) if args.trimap_dir else "whole image")
    elif args.layout == "comp1k":
        info.update(source="comp1k", data=args.data, region="trimap==128 of trimaps/")
    else:
        info.update(source="photomatte85", data=args.data, backgrounds=args.backgrounds,
                    resolution=args.resolution, seed=args.seed, bgr_perturb=list(_perturbations(args.bgr_perturb)),
                    region=f"trimap from GT alpha: {evaluator.TRIMAP_KERNEL}x{evaluator.TRIMAP_KERNEL} ellipse, "
                           f"{evaluator.TRIMAP_ITERATIONS} iterations erode/dilate")
    if args.trimap_threshold is not None:
        info["trimap_threshold"] = args.trimap_threshold
    return info


@cli_main
def main(argv=None):
    """Run the evaluation; returns the :class:`bgmatting.engine.evaluator.EvalResult` (None on ranks other than 0
    under paddle.distributed.launch: rank 0 writes the one report)."""
    args = parse_args(argv)
    check_args(args)
    check_writable_folder(args.save_dir, "--save-dir")  # before the run, so a bad one wastes no time
    ranks = Ranks.from_env(args.rank_timeout)
    with ranks.reporting():
        return run_eval(args, ranks)


def run_eval(args, ranks):
    """:func:`main` on checked arguments: this rank's share of the images; rank 0 joins the others' and reports."""
    samples = build_samples(args)
    predict_fn, model = build_predict_fn(args)
    save_dir = Path(args.save_dir)
    worst = WorstImages(args.worst)
    callbacks = [worst]
    if args.save_predictions:
        callbacks.append(PredictionSaver(save_dir / "predictions", inputs=args.layout == "photomatte85"))
    # alpha-only models (the Predictor returns the photo as their ``fgr``) get no FG MSE
    score_fgr = bool(args.baseline) or (predict_fn is not None and predict_fn.kind.predicts_foreground)
    convention = evaluator.PROTOCOLS[args.protocol].convention
    share = ranks.share(len(samples) if args.limit is None else min(args.limit, len(samples)))
    result = evaluator.evaluate(samples, predict_fn, convention, clamp=args.clamp_known, callbacks=callbacks,
                                progress=not args.quiet and ranks.main, limit=args.limit, score_fgr=score_fgr,
                                share=share)
    if not ranks.main:
        write_part(part_folder(save_dir, ranks.rank), result.rows, worst)
        ranks.done()
        return None
    if ranks.distributed:
        rows = list(result.rows)
        for _, folder in ranks.parts(save_dir):
            rows += read_part(folder, worst)
        result = evaluator.EvalResult(rows=rows, convention=convention)
    info = describe_run(args, model)
    seconds = [row["seconds"] for row in result.rows if "seconds" in row]
    if seconds:
        info["seconds_per_image"] = sum(seconds) / len(seconds)
    title = f"{info['source']} ({args.protocol} protocol)"
    write_metrics_json(save_dir / "metrics.json", result, info)
    write_per_image_csv(save_dir / "per_image.csv", result)
    report = worst.write(save_dir, title=f"{title}: worst images")
    print(format_table(result, title))
    print(f"region: {info['region']}; model: {json.dumps(model) if model else 'none (saved predictions)'}"
          + (f"; {info['seconds_per_image']:.3f} s/image" if seconds else ""))
    print(f"wrote {save_dir / 'metrics.json'}, per_image.csv" + (", report.html, worst.png" if report else ""))
    return result


if __name__ == "__main__":
    main()

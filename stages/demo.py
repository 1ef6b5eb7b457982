"""The demo: synthetic data → tiny stage 1 (MattingBase) and stage 2 (MattingRefine) on CPU → evaluation on a
held-out synthetic split against the untrained model and the difference-matting baseline → a picture of the
results and the loss curves. About two minutes on two CPU cores.

Example:
    ./run.sh demo                 # writes output/demo/ (re-running resumes/reuses finished stages)
    ./run.sh demo --fresh         # start over
    python stages/demo.py --out /tmp/demo --iters 40 --refine-iters 10   # shorter, e.g. for a smoke test

Outputs in --out: data/ (synthetic layouts), stage1/ and stage2/ (training runs, see tools/train.py),
results.json and results.md (SAD/MSE/Grad/Conn on the held-out split with perfect and with imperfect plates,
DIM convention over the unknown band of a trimap from the ground truth), demo.png (labelled columns per row:
source, imperfect plate, true alpha, difference-baseline alpha, predicted alpha, its error, composite),
loss_curves.png (smoothed training loss and validation SAD per stage).
"""
import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message=".*ccache.*")
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

from bgmatting.data import synthetic  # noqa: E402
from bgmatting.data.io import write_image  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402

HELD_OUT_SEED = 1_000_000  # the evaluation split never shares a generator with the training data
EVAL_RESOLUTION = 128


def make_data(root: Path, n_train: int, n_eval: int, size: int):
    """Training layouts (fgr/pha pairs, backgrounds) and a held-out PhotoMatte85-style split."""
    if (root / "done").exists():
        return
    synthetic.make_fgr_pha_dataset(root / "videomatte", n_train, size, seed=0, n_valid=8)
    synthetic.make_backgrounds(root / "backgrounds" / "train", n_train, size, seed=0)
    synthetic.make_backgrounds(root / "backgrounds" / "valid", 8, size, seed=1)
    synthetic.make_photomatte85(root / "heldout" / "photomatte85", n_eval, size, seed=HELD_OUT_SEED)
    synthetic.make_backgrounds(root / "heldout" / "backgrounds", n_eval, size, seed=HELD_OUT_SEED + 1)
    (root / "done").write_text("ok\n")


def train_stage(config: str, data: Path, save_dir: Path, iters: int, batch_size: int, init_from=None,
                extra_opts=()) -> dict:
    """Train one tiny stage (resuming a finished/interrupted run in ``save_dir``); ``extra_opts`` are more
    ``key=value`` config overrides. ViTMatte configs train with the ViTMatte trainer."""
    from bgmatting.engine.vitmatte_trainer import load_training_config

    opts = [f"data.train.root={data}/videomatte/train", f"data.train.backgrounds={data}/backgrounds/train",
            f"data.valid.root={data}/videomatte/valid", f"data.valid.backgrounds={data}/backgrounds/valid",
            f"train.iters={iters}", f"train.save_interval={max(1, iters // 2)}",
            f"train.val_interval={max(1, iters // 4)}", "train.log_interval=1", f"train.batch_size={batch_size}"]
    if init_from:
        opts.append(f"model.init_from={init_from}")
    trainer_class, cfg = load_training_config(ROOT / "configs" / config, opts + list(extra_opts))
    print(f"training {cfg['model']['type']} for {iters} iterations → {save_dir}")
    return {"cfg": cfg, **trainer_class(cfg, save_dir).train()}


def _predictor(cfg, checkpoint):
    """The Predictor of a trained checkpoint (its settings from its card), or of the config's untrained model."""
    from bgmatting.engine.kinds import kind_for_training_type
    from bgmatting.engine.predictor import Predictor

    if checkpoint is not None:
        return Predictor.from_pretrained(checkpoint)
    kind = kind_for_training_type(cfg["model"]["type"])
    return Predictor(kind.name, **kind.options_from_training(cfg["model"]))


PLATES = {"perfect plates": (), "imperfect plates (shadow, noise, jitter, misalignment)":
          ("shadow", "noise", "jitter", "misalign")}


def evaluate_all(data: Path, stages: dict) -> dict:
    """Mean metrics of every method on the held-out split (PhotoMatte85 protocol at 128², seed 0), with
    perfect plates and with the four plate imperfections applied to every image."""
    import paddle

    from bgmatting.engine import evaluator

    paddle.seed(0)
    methods = {"difference baseline (threshold 0.1)": evaluator.DifferenceBaseline(0.1),
               "untrained MattingRefine (seed 0)": _predictor(stages["stage2"]["cfg"], None),
               "stage 1 MattingBase (trained)": _predictor(stages["stage1"]["cfg"], stages["stage1"]["best"]),
               "stage 2 MattingRefine (trained)": _predictor(stages["stage2"]["cfg"], stages["stage2"]["best"])}
    benches, means = {}, {}
    for plates, perturb in PLATES.items():
        benches[plates] = evaluator.PhotoMatte85Benchmark(
            data / "heldout" / "photomatte85", data / "heldout" / "backgrounds", resolution=EVAL_RESOLUTION,
            seed=0, perturb=perturb)
        means[plates] = {}
        for name, method in methods.items():
            means[plates][name] = evaluator.evaluate(benches[plates], method, progress=False).means
            print(f"{plates[:16]:16s} {name:40s} " + "  ".join(f"{k} {v:.4f}" for k, v in means[plates][name].items()))
    return {"benches": benches, "methods": methods, "means": means}


def write_results(out: Path, evaluation: dict):
    """results.json and Markdown tables (results.md), one per plate condition."""
    (out / "results.json").write_text(json.dumps(evaluation["means"], indent=1))
    count = len(next(iter(evaluation["benches"].values())))
    text = [f"Held-out synthetic split ({count} images never seen in training, PhotoMatte85 protocol at "
            f"{EVAL_RESOLUTION}², seed 0). DIM convention over the unknown band of a trimap from the ground truth: "
            "SAD = Σ|Δα|/1000, MSE ×1e3, Grad, Conn; fgr_mse ×1e3 (foreground, where α > 0)."]
    for plates, means in evaluation["means"].items():
        keys = list(next(iter(means.values())))
        text += ["", f"**{plates}**", "", "| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        text += [f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |" for name, row in means.items()]
    (out / "results.md").write_text("\n".join(text) + "\n")


def write_picture(out: Path, evaluation: dict, rows: int = 3):
    """demo.png, per held-out image with imperfect plates, under labelled columns: source | plate | true alpha |
    difference-baseline alpha | stage-2 alpha | stage-2 |error| | stage-2 composite on a checkerboard."""
    from bgmatting.plots import checkerboard_composite, error_map, labelled_grid

    bench = evaluation["benches"][list(PLATES)[1]]
    model = evaluation["methods"]["stage 2 MattingRefine (trained)"]
    baseline = evaluation["methods"]["difference baseline (threshold 0.1)"]
    tiles = []
    for index in range(min(rows, len(bench))):
        sample = bench[index]
        result = model(sample.src, bgr=sample.bgr)
        guess = baseline(sample.src, bgr=sample.bgr)["pha"]
        tiles.append([sample.src, sample.bgr, sample.pha, guess, result["pha"], error_map(result["pha"], sample.pha),
                      checkerboard_composite(result["fgr"], result["pha"])])
    labels = ["source", "imperfect plate", "true alpha", "difference (0.1)", "stage 2 alpha", "stage 2 |error|",
              "stage 2 composite"]
    write_image(out / "demo.png", labelled_grid(tiles, labels))


def write_loss_curves(out: Path, save_dirs: dict):
    """loss_curves.png: training loss per iteration of each stage (from losses.csv), smoothed without edge
    artefacts (:func:`bgmatting.plots.smooth`), and the validation SAD."""
    from bgmatting.plots import plot_loss_curves

    plot_loss_curves(out / "loss_curves.png", save_dirs)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/demo", help="output folder (default output/demo)")
    parser.add_argument("--iters", type=int, default=300, help="stage 1 iterations (default 300)")
    parser.add_argument("--refine-iters", type=int, default=100, help="stage 2 iterations (default 100)")
    parser.add_argument("--n-train", type=int, default=48, help="synthetic training foregrounds (default 48)")
    parser.add_argument("--n-eval", type=int, default=12, help="held-out images (default 12)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if min(args.iters, args.refine_iters, args.n_train, args.n_eval) < 1:
        raise UserError("--iters, --refine-iters, --n-train and --n-eval must be at least 1")
    out = Path(args.out)
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    data = out / "data"
    make_data(data, args.n_train, args.n_eval, size=160)
    # batch 4 then 2: the official base/refine batches (8, 4) halved
    stages = {"stage1": train_stage("bgmv2_tiny.yaml", data, out / "stage1", args.iters, 4)}
    stages["stage1"]["best"] = out / "stage1" / "best_model" / "model.pdparams"
    stages["stage2"] = train_stage("bgmv2_refine_tiny.yaml", data, out / "stage2", args.refine_iters, 2,
                                   init_from=stages["stage1"]["best"])
    stages["stage2"]["best"] = out / "stage2" / "best_model" / "model.pdparams"
    evaluation = evaluate_all(data, stages)
    write_results(out, evaluation)
    write_picture(out, evaluation)
    write_loss_curves(out, {"stage 1 (MattingBase)": out / "stage1", "stage 2 (MattingRefine)": out / "stage2"})
    print(f"results: {out / 'results.md'}; picture: {out / 'demo.png'}; loss curves: {out / 'loss_curves.png'}")
    return evaluation["means"]


if __name__ == "__main__":
    main()

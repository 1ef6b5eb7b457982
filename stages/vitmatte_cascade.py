"""Does the bgmv2+vitmatte cascade help? A measurement with tiny models trained on synthetic data (CPU, minutes).

Synthetic foregrounds have one-pixel hair strands with fractional coverage, a semi-transparent veil and a
motion-blurred arm (bgmatting/data/synthetic.py). On the demo's data (stages/demo.py) this trains
1. the tiny MattingBase of configs/bgmv2_tiny.yaml (the clean-plate model; samples at 128 px, 96-128 px crops),
2. the tiny ViTMatte of configs/vitmatte/tiny.yaml (samples at 128 px, 96-px crops, erosion kernels 1-11),
then scores on the held-out split (PhotoMatte85 protocol at 128 px, seed 0, perfect and imperfect plates)
(results.md, results.json; cascade.png shows three held-out images):
- MattingBase alone;
- the cascade MattingBase → automatic trimap (unknown band of ±B px around the coarse edges, B in --bands) →
  ViTMatte on the full-resolution photo;
- ViTMatte given the metric trimap itself (an oracle trimap from the ground truth: the best a trimap can do).
Metrics: DIM convention over the unknown band of the ground-truth trimap (SAD /1000, MSE ×1e3, Grad, Conn), and
thin_sad = Σ|Δα|/1000 over the pixels of structures thinner than 3 px (covered pixels a 3×3 opening removes: the
hair strands).

Example:
    python stages/vitmatte_cascade.py --out output/cascade          # writes results.md / results.json there
    for s in 0 1 2; do python stages/vitmatte_cascade.py --out output/cascade_s$s --seed $s; done
    python stages/vitmatte_cascade.py --summarise output/cascade_s0 output/cascade_s1 output/cascade_s2  # mean ± std
    python stages/vitmatte_cascade.py --out /tmp/c --iters 20 --vitmatte-iters 20 --n-train 8 --n-eval 2
"""
import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message=".*ccache.*")
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from demo import EVAL_RESOLUTION, PLATES, make_data, train_stage  # noqa: E402

from bgmatting.errors import UserError, cli_main  # noqa: E402

# both models train at the evaluation scale (128 px samples; the demo's MattingBase trains at 64 px)
BGMV2_OPTS = ("data.resolution=128", "data.crop={min: 96, max: 129, multiple: 4}")
VITMATTE_OPTS = ("data.resolution=128", "data.crop=96", "data.trimap.max_kernel=12", "data.trimap.valid_kernel=7",
                 "data.valid_samples=8", "train.milestones=[0.7, 0.9]")


class OracleTrimap:
    """The benchmark's samples with the metric trimap (from the ground truth) handed to the model as input."""

    def __init__(self, bench):
        self.bench = bench

    def __len__(self):
        return len(self.bench)

    def __getitem__(self, index):
        return dataclasses.replace(self.bench[index], trimap_is_input=True)


def methods(bgmv2_best: Path, vitmatte_best: Path, bands) -> dict:
    """Name → (predict_fn, uses the oracle trimap)."""
    from bgmatting.engine.predictor import Predictor

    found = {"MattingBase alone": (Predictor("mattingbase", "mobilenetv2", checkpoint=str(bgmv2_best)), False)}
    for band in bands:
        cascade = Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(bgmv2_best),
                            vitmatte_checkpoint=str(vitmatte_best), coarse_model_type="mattingbase", trimap_band=band)
        found[f"cascade, trimap band ±{band} px"] = (cascade, False)
    found["ViTMatte, ground-truth trimap (oracle)"] = (Predictor("vitmatte", checkpoint=str(vitmatte_best)), True)
    return found


def thin_structures(pha: np.ndarray) -> np.ndarray:
    """Pixels of structures thinner than 3 px (hair strands): covered (α > 0) but removed by a 3×3 opening."""
    covered = (pha > 0).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))  # a square keeps the corners of blocks
    return (covered == 1) & (cv2.morphologyEx(covered, cv2.MORPH_OPEN, kernel) == 0)


def thin_sad(sample, pred8, fgr8, row):
    """Evaluation callback: ``row["thin_sad"]`` = Σ|Δα|/1000 over :func:`thin_structures` of the ground truth."""
    mask = thin_structures(sample.pha)
    row["thin_sad"] = float(np.abs(pred8[mask] / 255.0 - sample.pha[mask]).sum() / 1000.0)


def evaluate(data: Path, found: dict) -> dict:
    """Plate condition → method → mean metrics (and thin-structure SAD) on the held-out split."""
    from bgmatting.engine import evaluator

    results = {}
    for plates, perturb in PLATES.items():
        bench = evaluator.PhotoMatte85Benchmark(data / "heldout" / "photomatte85", data / "heldout" / "backgrounds",
                                                resolution=EVAL_RESOLUTION, seed=0, perturb=perturb)
        results[plates] = {}
        for name, (predict_fn, oracle) in found.items():
            result = evaluator.evaluate(OracleTrimap(bench) if oracle else bench, predict_fn, callbacks=[thin_sad],
                                        progress=False)
            results[plates][name] = {k: v for k, v in result.means.items() if k != "fgr_mse"}
            results[plates][name]["thin_sad"] = float(np.mean([row["thin_sad"] for row in result.rows]))
            row = results[plates][name]
            print(f"{plates[:16]:16s} {name:40s} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
    return results


def write_picture(out: Path, data: Path, found: dict, band: int, rows: int = 3):
    """cascade.png, per held-out image (imperfect plates): photo | MattingBase alpha | automatic trimap (band
    ``band``) | cascade alpha | ViTMatte with the ground-truth trimap | ground truth."""
    from bgmatting.data.io import write_image
    from bgmatting.engine import evaluator
    from bgmatting.engine.kinds.cascade import cascade_trimap

    bench = evaluator.PhotoMatte85Benchmark(data / "heldout" / "photomatte85", data / "heldout" / "backgrounds",
                                            resolution=EVAL_RESOLUTION, seed=0, perturb=PLATES[list(PLATES)[1]])
    base, cascade = found["MattingBase alone"][0], found[f"cascade, trimap band ±{band} px"][0]
    oracle = found["ViTMatte, ground-truth trimap (oracle)"][0]
    tiles = []
    for index in range(min(rows, len(bench))):
        sample = bench[index]
        coarse = base(sample.src, bgr=sample.bgr)["pha"]
        alphas = [coarse, cascade_trimap(coarse, band) / 255.0, cascade(sample.src, bgr=sample.bgr)["pha"],
                  oracle(sample.src, trimap=sample.trimap)["pha"], sample.pha]
        tiles.append(np.concatenate([sample.src / 255.0] + [np.repeat(a[:, :, None], 3, axis=2) for a in alphas], 1))
    write_image(out / "cascade.png", np.concatenate(tiles, axis=0).astype(np.float32))


def write_results(out: Path, results: dict, settings: dict):
    """results.json and results.md (one table per plate condition)."""
    (out / "results.json").write_text(json.dumps({"settings": settings, "means": results}, indent=1))
    count = settings["n_eval"]
    text = [f"Held-out synthetic split ({count} images, PhotoMatte85 protocol at {EVAL_RESOLUTION}², seed 0); "
            "DIM convention over the unknown band of the ground-truth trimap: SAD = Σ|Δα|/1000, MSE ×1e3, Grad, "
            "Conn; thin_sad = Σ|Δα|/1000 over structures thinner than 3 px (hair). "
            f"Settings: {json.dumps(settings)}"]
    for plates, means in results.items():
        keys = list(next(iter(means.values())))
        text += ["", f"**{plates}**", "", "| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        text += [f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |" for name, row in means.items()]
    (out / "results.md").write_text("\n".join(text) + "\n")


def summarise(folders) -> str:
    """Markdown tables of mean ± std over the ``results.json`` of several runs (e.g. training seeds)."""
    runs = []
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise UserError(f"--summarise: no results.json in {folder}")
        runs.append(json.loads(path.read_text())["means"])
    text = []
    for plates, rows in runs[0].items():
        keys = list(next(iter(rows.values())))
        text += ["", f"**{plates}** (mean ± std over {len(runs)} runs)", "",
                 "| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name in rows:
            values = [np.array([run[plates][name][key] for run in runs]) for key in keys]
            text.append(f"| {name} | " + " | ".join(f"{v.mean():.4f} ± {v.std():.4f}" for v in values) + " |")
    return "\n".join(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/cascade", help="output folder (default output/cascade)")
    parser.add_argument("--iters", type=int, default=300, help="MattingBase iterations (default 300)")
    parser.add_argument("--vitmatte-iters", type=int, default=600, help="ViTMatte iterations (default 600)")
    parser.add_argument("--n-train", type=int, default=48, help="synthetic training foregrounds (default 48)")
    parser.add_argument("--n-eval", type=int, default=12, help="held-out images (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of both models (default 0)")
    parser.add_argument("--summarise", nargs="+", metavar="DIR",
                        help="only print mean ± std over the results of these earlier runs")
    parser.add_argument("--bands", type=int, nargs="+", default=[3, 6, 10],
                        help="cascade trimap bands to try, in pixels (default 3 6 10)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.summarise:
        print(summarise(args.summarise))
        return None
    if min(args.iters, args.vitmatte_iters, args.n_train, args.n_eval) < 1 or min(args.bands) < 0:
        raise UserError("--iters, --vitmatte-iters, --n-train and --n-eval must be at least 1, --bands >= 0")
    out = Path(args.out)
    data = out / "data"
    make_data(data, args.n_train, args.n_eval, size=160)
    seed = [f"train.seed={args.seed}"]
    train_stage("bgmv2_tiny.yaml", data, out / "mattingbase", args.iters, 4, extra_opts=[*BGMV2_OPTS, *seed])
    train_stage("vitmatte/tiny.yaml", data, out / "vitmatte", args.vitmatte_iters, 4,
                extra_opts=[*VITMATTE_OPTS, *seed])
    found = methods(out / "mattingbase" / "best_model" / "model.pdparams",
                    out / "vitmatte" / "best_model" / "model.pdparams", args.bands)
    results = evaluate(data, found)
    settings = dict(vars(args), bgmv2_opts=list(BGMV2_OPTS), vitmatte_opts=list(VITMATTE_OPTS))
    write_results(out, results, settings)
    write_picture(out, data, found, max(args.bands))
    print(f"results: {out / 'results.md'}")
    return results


if __name__ == "__main__":
    main()

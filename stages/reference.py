"""The reference run: evidence that the multi-stage recipe learns — stage 1 (MattingBase) and stage 2
(MattingRefine) with the real configs' recipe scaled down to two CPU cores, evaluated on a held-out split against
difference matting and the untrained model, with perfect and with imperfect plates. About 30 minutes on two cores.

Example:
    ./run.sh reference                      # writes output/reference/ (re-running resumes where it stopped)
    ./run.sh reference --smoke --out /tmp/r # a few iterations at tiny sizes (the CI test)
    ./run.sh reference --study              # then the study of what limits learning (needs the reference's stage 1)
    ./run.sh reference --study --variants laplacian,stage1_no_jitter   # only these study variants

The recipe (configs/bgmv2/reference_base.yaml, reference_refine.yaml): the official stage-1/stage-2 configs'
losses, augmentation and plate imperfections (shadow, noise, colour jitter, misalignment) and the base's stage-2
learning rates, with MobileNetV2 and the scene at one scale throughout: stage 2 trains on 256–384 px crops of
384-px samples and runs the base at backbone_scale 0.25 (64–96 px), so stage 1 trains the base on 64–96 px crops of
the same scenes at 96 px, and evaluation is at 320 px. Two deliberate changes: stage 1's learning rates are 10× the
official ones, which assume a pretrained backbone (none can be fetched here), and stage 2's refiner learns at 10× its
official rate (it starts from scratch and has 800 iterations, not the paper's hundreds of thousands). Data:
bgmatting.data.synthetic (hair strands, fur, translucent fabric, motion blur, colour spill, shared colours,
natural-image-like backgrounds); the held-out
split comes from another generator seed and is never seen in training. Training is data parallel over
``--processes`` CPU processes (default 2: eager Paddle uses one core per process).

Outputs in --out: data/, stage1/ and stage2/ (training runs; best_model/ and iter_N/ are self-describing model
folders with model.yaml), models/{stage1_base,stage2_refine}/ (copies of the best models), results.json and
results.md (held-out SAD/MSE/Grad/Conn, DIM convention over the unknown band of a trimap from the ground truth, per
plate condition, with the ratios to difference matting), reference.png (labelled pictures), loss_curves.png,
timings.json; with --study: study/<variant>/ runs and study.md/study.json.

The study (--study; about 1.5 hours on two cores): one change per variant, scored against the reference's own
checkpoint after as many iterations (the same run, unchanged). Stage 1 from scratch for 800 iterations: the
official learning rates, every rate ×0.5 or ×2, no colour jitter on the plate. Stage 2 from the reference's
stage-1 model for 100 iterations: the official refiner rate, crops 128–192 px, 50 instead of 200 training images,
every learning rate ×4 or ×0.25, the Laplacian loss on; and the reference's stage 2 continued to twice its
iterations (the iterations rows,
with the reference's checkpoints).
"""
import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message=".*ccache.*")
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

from bgmatting.data import synthetic  # noqa: E402
from bgmatting.data.io import to_uint8, write_image  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402

HELD_OUT_SEED = 2_000_003  # the held-out split never shares a generator with the training data (seed 0)
CONFIGS = {"stage1": "configs/bgmv2/reference_base.yaml", "stage2": "configs/bgmv2/reference_refine.yaml"}
#: the paper's configs the reference scales down (its _base_)
OFFICIAL_CONFIGS = {"stage1": "configs/bgmv2/base_resnet50_videomatte240k.yaml",
                    "stage2": "configs/bgmv2/refine_resnet50_videomatte240k.yaml"}

#: the run at full scale and the smoke version (a few iterations, tiny sizes) the CI test runs
SCALES = {
    "full": dict(n_train=200, n_valid=16, n_eval=24, data_size=384, eval_resolution=320, overrides={}),
    "smoke": dict(n_train=4, n_valid=2, n_eval=2, data_size=128, eval_resolution=128, overrides={
        "stage1": ["train.iters=2", "train.batch_size=2", "data.resolution=64", "data.crop.min=48",
                   "data.crop.max=65", "data.valid_samples=2", "train.val_interval=1", "train.save_interval=1",
                   "train.image_interval=1"],
        "stage2": ["train.iters=2", "train.batch_size=2", "data.resolution=128", "data.crop.min=96",
                   "data.crop.max=129", "data.valid_samples=2", "model.refine_sample_pixels=2000",
                   "train.val_interval=1", "train.save_interval=1", "train.image_interval=1"]}),
}

#: the study: one thing changed per variant, trained for STUDY_ITERS[stage] iterations — stage 1 variants from
#: scratch, stage 2 variants from the reference's stage-1 model — and scored against the reference's own checkpoint
#: after as many iterations. variant → (stage, config overrides or None when derived, what it changes)
STUDY_ITERS = {"stage1": {"full": 800, "smoke": 1}, "stage2": {"full": 100, "smoke": 1}}
STUDY_VARIANTS = {
    "stage1_lr_official": ("stage1", None, "the official stage-1 learning rates (for a pretrained backbone)"),
    "stage1_lr_x0.5": ("stage1", None, "every stage-1 learning rate ×0.5"),
    "stage1_lr_x2": ("stage1", None, "every stage-1 learning rate ×2"),
    "stage1_no_jitter": ("stage1", ["augment.plate.jitter.prob=0"], "no colour jitter on the plate"),
    "crop_128_192": ("stage2", ["data.crop.min=128", "data.crop.max=193"],
                     "crops 128–192 px instead of 256–384 (same scale)"),
    "images_50": ("stage2", [], "50 training foregrounds and backgrounds instead of 200"),
    "refiner_lr_official": ("stage2", ["train.lr.refiner=3e-4"], "the official refiner learning rate (3e-4)"),
    "lr_x4": ("stage2", None, "every per-module learning rate ×4"),
    "lr_x0.25": ("stage2", None, "every per-module learning rate ×0.25"),
    "laplacian": ("stage2", ["loss.pha_laplacian=1.0"], "Laplacian pyramid loss on alpha (weight 1)"),
    "continued": ("stage2", None, "the reference's stage 2 continued to twice its iterations"),
}
STUDY_SMALL_N = {"full": 50, "smoke": 2}


# ------------------------------------------------------------------------------------------------------- data

def make_data(root: Path, scale: dict, small_n: int):
    """Training layouts (fgr/pha pairs and backgrounds, seed 0), the smaller subset for the study (its first
    items are the same images), and the held-out PhotoMatte85-style split (another seed) with its backgrounds."""
    if (root / "done").exists():
        return
    size, n = scale["data_size"], scale["n_train"]
    synthetic.make_fgr_pha_dataset(root / "videomatte", n, size, seed=0, n_valid=scale["n_valid"])
    synthetic.make_backgrounds(root / "backgrounds" / "train", n, size, seed=0)
    synthetic.make_backgrounds(root / "backgrounds" / "valid", scale["n_valid"], size, seed=1)
    synthetic.make_fgr_pha_dataset(root / f"videomatte_{small_n}", small_n, size, seed=0, n_valid=scale["n_valid"])
    synthetic.make_backgrounds(root / f"backgrounds_{small_n}" / "train", small_n, size, seed=0)
    synthetic.make_photomatte85(root / "heldout" / "photomatte85", scale["n_eval"], scale["eval_resolution"],
                                seed=HELD_OUT_SEED)
    synthetic.make_backgrounds(root / "heldout" / "backgrounds", scale["n_eval"], scale["eval_resolution"],
                               seed=HELD_OUT_SEED + 1)
    (root / "done").write_text("ok\n")


def data_opts(data: Path, videomatte="videomatte", backgrounds="backgrounds") -> list:
    return [f"data.train.root={data}/{videomatte}/train", f"data.train.backgrounds={data}/{backgrounds}/train",
            f"data.valid.root={data}/videomatte/valid", f"data.valid.backgrounds={data}/backgrounds/valid"]


# --------------------------------------------------------------------------------------------------- training

def train_stage(stage: str, data: Path, save_dir: Path, overrides=(), init_from=None, resume=None,
                processes: int = 1) -> dict:
    """Train (or resume, or reuse when finished) one stage in ``save_dir``; returns the trainer's result + cfg.
    ``resume``: a checkpoint to continue whatever its config (used only while ``save_dir`` has no ``latest``).
    ``processes`` > 1: data parallel over that many CPU processes (``paddle.distributed.launch`` of
    ``tools/train.py`` with the same config and overrides, so the same run resumes either way)."""
    from bgmatting.engine.vitmatte_trainer import load_training_config

    opts = data_opts(data) + list(overrides)
    if init_from:
        opts.append(f"model.init_from={init_from}")
    trainer_class, cfg = load_training_config(ROOT / CONFIGS[stage], opts)
    print(f"{stage}: {cfg['model']['type']} ({cfg['model']['backbone']}) for {cfg['train']['iters']} iterations "
          f"on {processes} process(es) → {save_dir}", flush=True)
    if resume is not None and (save_dir / "latest").exists():
        resume = None  # continue this run's own checkpoint
    if processes > 1:
        result = launch_training(ROOT / CONFIGS[stage], opts, cfg, save_dir, resume, processes)
    else:
        result = trainer_class(cfg, save_dir, resume=resume, source=ROOT / CONFIGS[stage]).train()
    return {"cfg": cfg, "best": save_dir / "best_model", **result}


def launch_training(config: Path, opts: list, cfg: dict, save_dir: Path, resume, processes: int) -> dict:
    """``tools/train.py --config config --opts opts`` (resolving to ``cfg``) under ``paddle.distributed.launch`` on
    ``processes`` CPU processes, one math thread each (the launcher's logs in ``save_dir/launch``), unless the run
    there has finished; returns the result as :meth:`Trainer.train` does, read from the run's checkpoints.

    Raises:
        UserError: a process failed (its log's last line named).
    """
    import subprocess

    save_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_run(save_dir, cfg)
    if finished is not None:
        return finished
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes),
               "--log_dir", str(save_dir / "launch"), str(ROOT / "tools" / "train.py"), "--config", str(config),
               "--save-dir", str(save_dir), *(["--resume", str(resume)] if resume is not None else []),
               "--opts", *opts]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(command, env=env, cwd=ROOT)
    if done.returncode != 0:
        logs = sorted((save_dir / "launch").glob("workerlog.*"))
        last = [line for log in logs for line in log.read_text(errors="replace").splitlines()
                if line.startswith("error:") or "Error" in line][-1:]
        raise UserError(f"training in {save_dir} failed on {processes} processes (exit {done.returncode})"
                        + (f": {last[0]}" if last else f"; see {save_dir / 'launch'}"))
    return finished_run(save_dir, cfg)


def finished_run(save_dir: Path, cfg: dict):
    """The result (as :meth:`Trainer.train` returns it) of the run in ``save_dir`` when it has reached
    ``train.iters`` with ``cfg``, else None."""
    from bgmatting.engine.checkpoint import find_checkpoint, read_state
    from bgmatting.engine.model_card import config_hash

    latest = find_checkpoint(save_dir / "latest")
    if latest is None or not (save_dir / "best_model").is_dir():
        return None
    state, best = read_state(latest), read_state(save_dir / "best_model")
    if state.get("config_hash") != config_hash(cfg) or state.get("iteration", 0) < cfg["train"]["iters"]:
        return None
    return {"iteration": state["iteration"], "best_sad": best["metrics"]["sad"], "best_mse": best["metrics"]["mse"],
            "save_dir": str(save_dir)}


class Timings:
    """Seconds per phase, kept in ``timings.json`` and added up over interrupted and resumed runs."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, phase: str, seconds: float):
        """Add ``seconds`` to a training phase (resumed runs add up); other phases are redone, so replaced."""
        resumable = "training" in phase or phase == "data"
        self.seconds[phase] = (self.seconds.get(phase, 0.0) if resumable else 0.0) + seconds
        self.path.write_text(json.dumps(self.seconds, indent=1))

    def timed(self, phase: str, function, *args, **kwargs):
        start = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            self.add(phase, time.time() - start)


# ------------------------------------------------------------------------------------------------- evaluation

class ShiftNoiseExposure:
    """The held-out samples with an imperfect plate as a second shot gives one: the plate shifted by ``shift`` px
    (a random direction), ``exposure`` times as bright, and independent sensor noise (σ = ``noise``) on photo and
    plate. Deterministic by ``seed`` and index.

    Args:
        samples: a benchmark with perfect plates (``bench[i]`` → :class:`bgmatting.engine.evaluator.EvalSample`).
    """

    def __init__(self, samples, shift: float = 2.0, noise: float = 0.02, exposure: float = 1.08, seed: int = 0):
        self.samples, self.shift, self.noise, self.exposure, self.seed = samples, shift, noise, exposure, seed

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        import cv2

        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, 77, index])
        angle = rng.uniform(0, 2 * np.pi)
        height, width = sample.bgr.shape[:2]
        matrix = np.float32([[1, 0, self.shift * np.cos(angle)], [0, 1, self.shift * np.sin(angle)]])
        plate = cv2.warpAffine(sample.bgr.astype(np.float32) / 255.0, matrix, (width, height),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        plate = plate * self.exposure + rng.normal(0.0, self.noise, plate.shape)
        src = sample.src.astype(np.float32) / 255.0 + rng.normal(0.0, self.noise, sample.src.shape)
        return dataclasses.replace(sample, src=to_uint8(np.clip(src, 0, 1)), bgr=to_uint8(np.clip(plate, 0, 1)))


class AtScale:
    """A method run at ``scale`` of the image's size (inputs resized with area averaging, outputs back bilinearly):
    stage 1's MattingBase scored at the scale it was trained at — in the full model it runs at backbone_scale."""

    def __init__(self, method, scale: float):
        self.method, self.scale = method, scale

    def __call__(self, src, bgr=None, trimap=None):
        import cv2

        height, width = src.shape[:2]
        small = (max(8, round(width * self.scale)), max(8, round(height * self.scale)))
        shrink = lambda image: cv2.resize(image, small, interpolation=cv2.INTER_AREA)  # noqa: E731
        outputs = self.method(shrink(src), bgr=None if bgr is None else shrink(bgr))
        return {key: np.ascontiguousarray(cv2.resize(value, (width, height), interpolation=cv2.INTER_LINEAR))
                for key, value in outputs.items()}


PERFECT = "perfect plates"
IMPERFECT = "imperfect plates (2-px shift, noise σ 0.02, exposure +8 %)"
SIMULATED = "official plate simulation (shadow, noise, colour jitter, misalignment)"
DIFFERENCE = "difference matting (threshold 0.1)"
UNTRAINED = "untrained MattingRefine (seed 0)"
STAGE1 = "stage 1 MattingBase (trained), run at ¼ scale"
STAGE2 = "stage 2 MattingRefine (trained)"


def benchmarks(data: Path, resolution: int, conditions=(PERFECT, IMPERFECT, SIMULATED)) -> dict:
    """The held-out split (PhotoMatte85 protocol at ``resolution``², seed 0) under each plate condition."""
    from bgmatting.engine import evaluator

    def bench(perturb=()):
        return evaluator.PhotoMatte85Benchmark(data / "heldout" / "photomatte85", data / "heldout" / "backgrounds",
                                               resolution=resolution, seed=0, perturb=perturb)

    made = {PERFECT: bench(), IMPERFECT: ShiftNoiseExposure(bench(), seed=1),
            SIMULATED: bench(("shadow", "noise", "jitter", "misalign"))}
    return {name: made[name] for name in conditions}


def predictor(checkpoint=None, cfg=None):
    """The Predictor of a model folder (its settings from model.yaml), or the untrained model of a config."""
    import paddle

    from bgmatting.engine.kinds import kind_for_training_type
    from bgmatting.engine.predictor import Predictor

    if checkpoint is not None:
        return Predictor.from_pretrained(checkpoint)
    paddle.seed(0)
    kind = kind_for_training_type(cfg["model"]["type"])
    return Predictor(kind.name, **kind.options_from_training(cfg["model"]))


def evaluate_methods(benches: dict, methods: dict) -> dict:
    """``{condition: {method: means}}`` (SAD, MSE ×1e3, Grad, Conn, fgr_mse ×1e3)."""
    from bgmatting.engine import evaluator

    means = {}
    for condition, bench in benches.items():
        means[condition] = {}
        for name, method in methods.items():
            means[condition][name] = evaluator.evaluate(bench, method, progress=False).means
            print(f"{condition[:24]:24s} {name:36s} "
                  + "  ".join(f"{k} {v:.4f}" for k, v in means[condition][name].items()), flush=True)
    return means


# ------------------------------------------------------------------------------------------------- reporting

def ratio_text(means: dict, name: str) -> str:
    difference = means[DIFFERENCE]["sad"]
    return f"{means[name]['sad'] / difference:.2f}×" if difference > 0 else "n/a"


def write_results(out: Path, means: dict, count: int, resolution: int, timings: dict, runs: dict):
    (out / "results.json").write_text(json.dumps({"means": means, "images": count, "resolution": resolution,
                                                  "seconds": timings, "runs": runs}, indent=1))
    lines = [f"Held-out synthetic split: {count} images from generator seed {HELD_OUT_SEED} (training used seed 0), "
             f"PhotoMatte85 protocol at {resolution}², seed 0. DIM convention over the unknown band of a trimap "
             "from the ground truth: SAD = Σ|Δα|/1000, MSE ×1e3, Grad, Conn; fgr_mse ×1e3 (where α > 0). "
             "\"÷ diff.\" = SAD ÷ difference matting's SAD (the issue asks ≤ 1.0 perfect, ≤ 0.5 imperfect).", ""]
    for condition, rows in means.items():
        keys = list(next(iter(rows.values())))
        lines += [f"**{condition}**", "", "| method | " + " | ".join(keys) + " | ÷ diff. |",
                  "|---" * (len(keys) + 2) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + f" | {ratio_text(rows, name)} |"
                  for name, row in rows.items()]
        lines.append("")
    total = sum(timings.values())
    lines.append("Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
                 + f"; total {total / 60:.1f} min.")
    lines.append("Models: " + ", ".join(f"{k}: {v}" for k, v in runs.items()))
    (out / "results.md").write_text("\n".join(lines) + "\n")


def write_pictures(out: Path, benches: dict, methods: dict, rows: int = 4):
    """reference.png: per held-out image (imperfect plates), labelled columns: source | plate | true alpha |
    difference | untrained | stage 1 | stage 2 | stage-2 |error| | refined patches | stage-2 composite."""
    from bgmatting.plots import checkerboard_composite, error_map, labelled_grid

    bench = benches[IMPERFECT]
    tiles, row_labels = [], []
    for index in range(min(rows, len(bench))):
        sample = bench[index]
        outputs = {name: method(sample.src, bgr=sample.bgr) for name, method in methods.items()}
        final = outputs[STAGE2]
        overlay = sample.src.astype(np.float32) / 255.0 * 0.5
        overlay[:, :, 1] += final["ref"] * 0.5
        tiles.append([sample.src, sample.bgr, sample.pha, outputs[DIFFERENCE]["pha"], outputs[UNTRAINED]["pha"],
                      outputs[STAGE1]["pha"], final["pha"], error_map(final["pha"], sample.pha), overlay,
                      checkerboard_composite(final["fgr"], final["pha"])])
        row_labels.append(f"held-out image {sample.name}, imperfect plate (2-px shift, noise, exposure +8 %)")
    labels = ["source", "plate", "true alpha", "difference (0.1)", "untrained", "stage 1 (1/4 scale)", "stage 2 alpha",
              "stage 2 |error|", "refined patches", "stage 2 composite"]
    write_image(out / "reference.png", labelled_grid(tiles, labels, row_labels))


def copy_model(folder: Path, target: Path):
    """Copy a model folder (weights + model.yaml, without the optimizer) to ``target``."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in folder.iterdir():
        if path.name != "model.pdopt":
            shutil.copy2(path, target / path.name)


# ------------------------------------------------------------------------------------------------------ study

def study_overrides(name: str, base_cfg: dict, data: Path, small_n: int) -> list:
    """The config overrides of study variant ``name`` (``base_cfg``: the reference's config of that stage)."""
    _, opts, _ = STUDY_VARIANTS[name]
    if name == "images_50":
        return data_opts(data, f"videomatte_{small_n}", f"backgrounds_{small_n}")
    rates = base_cfg["train"]["lr"]
    if name == "stage1_lr_official":
        from bgmatting.engine.vitmatte_trainer import load_training_config

        official = load_training_config(ROOT / OFFICIAL_CONFIGS["stage1"], [])[1]["train"]["lr"]
        return [f"train.lr.{module}={rate:g}" for module, rate in official.items()]
    if "lr_x" in name:
        factor = float(name[name.index("lr_x") + len("lr_x"):])
        return [f"train.lr.{module}={rate * factor:g}" for module, rate in rates.items()]
    return list(opts)


def stage_overrides(scale: dict, stage: str, iters: int) -> list:
    """The scale's overrides of ``stage`` with ``iters`` iterations, one checkpoint at the end, 3 validations."""
    own = [o for o in scale["overrides"].get(stage, [])
           if not o.startswith(("train.iters", "train.save_interval", "train.val_interval"))]
    return own + [f"train.iters={iters}", f"train.save_interval={iters}", f"train.val_interval={max(1, iters // 3)}"]


def study_method(stage: str, folder: Path, backbone_scale: float):
    """A study model scored as the reference's: stage 1 at the base's scale in stage 2, stage 2 as it is."""
    return AtScale(predictor(folder), backbone_scale) if stage == "stage1" else predictor(folder)


def run_study(out: Path, data: Path, scale_name: str, scale: dict, stage1_best: Path, variants, timings: Timings,
              processes: int = 1):
    """Train each variant (one change, STUDY_ITERS[stage] iterations; stage 2 from the reference's stage-1 model) and
    score it on the held-out split; the reference's own checkpoints give the iterations rows."""
    from bgmatting.engine.vitmatte_trainer import load_training_config

    configs = {stage: load_training_config(ROOT / CONFIGS[stage], data_opts(data) + scale["overrides"].get(stage, []))
               [1] for stage in CONFIGS}
    backbone_scale = configs["stage2"]["model"]["backbone_scale"]
    benches = benchmarks(data, scale["eval_resolution"], (PERFECT, IMPERFECT))
    for name in variants:
        stage = STUDY_VARIANTS[name][0]
        folder = out / "study" / name
        result_path = folder / "heldout.json"
        if result_path.is_file():
            continue
        init_from = stage1_best / "model.pdparams" if stage == "stage2" else None
        if name == "continued":  # scored with the reference's checkpoints (write_study), not as a variant
            total = 2 * configs["stage2"]["train"]["iters"]
            step = max(1, total // 8)
            timings.timed("study continued training", train_stage, "stage2", data, folder,
                          stage_overrides(scale, "stage2", total) + [f"train.save_interval={step}",
                                                                     f"train.val_interval={step}"],
                          init_from=init_from, resume=out / "stage2" / "latest", processes=processes)
            continue
        iters = STUDY_ITERS[stage][scale_name]
        overrides = stage_overrides(scale, stage, iters) + study_overrides(name, configs[stage], data,
                                                                            STUDY_SMALL_N[scale_name])
        overrides = [o for o in overrides if not o.startswith("data.train.")] + \
            [o for o in overrides if o.startswith("data.train.")]  # the variant's data paths win
        run = timings.timed(f"study {name} training", train_stage, stage, data, folder, overrides,
                            init_from=init_from, processes=processes)
        means = timings.timed(f"study {name} evaluation", evaluate_methods, benches,
                              {name: study_method(stage, folder / f"iter_{iters}", backbone_scale)})
        result_path.write_text(json.dumps({"stage": stage, "iters": iters, "overrides": overrides, "means": means,
                                           "best_valid_sad": run["best_sad"]}, indent=1))


def reference_checkpoints(out: Path, stage: str) -> list:
    """The reference's checkpoints ``iter_N`` of ``stage``, with those of its continuation (variant ``continued``)
    for stage 2."""
    found = {}
    for folder in (out / stage, out / "study" / "continued") if stage == "stage2" else (out / stage,):
        for path in folder.glob("iter_*"):
            if path.name[5:].isdigit() and (path / "model.pdparams").is_file():
                found.setdefault(path.name, path)
    return [found[name] for name in sorted(found, key=lambda name: int(name[5:]))]


def reference_scores(out: Path, data: Path, scale: dict, stage: str, timings: Timings) -> dict:
    """``{iter_N: {condition: means}}`` of the reference's checkpoints of ``stage`` (cached in study/)."""
    from bgmatting.engine.vitmatte_trainer import load_training_config

    cache = out / "study" / f"reference_{stage}_checkpoints.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    missing = [p for p in reference_checkpoints(out, stage) if p.name not in scores]
    if missing:
        cfg = load_training_config(ROOT / CONFIGS["stage2"], data_opts(data) + scale["overrides"].get("stage2", []))[1]
        benches = benchmarks(data, scale["eval_resolution"], (PERFECT, IMPERFECT))
        for folder in missing:
            means = timings.timed(f"study reference {stage} checkpoints evaluation", evaluate_methods, benches,
                                  {folder.name: study_method(stage, folder, cfg["model"]["backbone_scale"])})
            scores[folder.name] = {c: rows[folder.name] for c, rows in means.items()}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(scores, indent=1))
    return scores


def write_study(out: Path, data: Path, scale_name: str, scale: dict, timings: Timings):
    """study.md/study.json: held-out SAD of every finished variant next to the reference at the same iterations,
    and the reference's checkpoints (the iterations rows), one table per stage."""
    lines = ["Study: one change per variant against the reference run's own checkpoint after as many iterations "
             "(constant learning rates and data addressed by (seed, iteration), so that checkpoint is exactly the "
             "unchanged variant). Stage-1 variants train from scratch and are scored at the base's scale in stage 2; "
             "stage-2 variants start from the reference's stage-1 model. Held-out SAD over the unknown band "
             f"({scale['eval_resolution']} px); Δ = change against the reference at the same iterations.", ""]
    rows = []
    for stage in CONFIGS:
        iters = STUDY_ITERS[stage][scale_name]
        scores = reference_scores(out, data, scale, stage, timings)
        baseline = scores.get(f"iter_{iters}")
        stage_rows = [(f"reference {stage} after {folder[5:]} iterations", "iterations", score)
                      for folder, score in sorted(scores.items(), key=lambda item: int(item[0][5:]))]
        for name, (variant_stage, _, what) in STUDY_VARIANTS.items():
            path = out / "study" / name / "heldout.json"
            if variant_stage == stage and name != "continued" and path.is_file():
                means = json.loads(path.read_text())["means"]
                stage_rows.append((f"{what}, {iters} iterations", name, {c: m[name] for c, m in means.items()}))
        lines += [f"**{stage}** (variants: {iters} iterations)", "",
                  "| variant | SAD perfect | Δ | SAD imperfect | Δ |", "|---|---|---|---|---|"]
        for label, _, score in stage_rows:
            cells = []
            for condition in (PERFECT, IMPERFECT):
                sad = score[condition]["sad"]
                base = baseline[condition]["sad"] if baseline else None
                cells += [f"{sad:.3f}", f"{(sad - base) / base:+.0%}" if base else "n/a"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        rows += [{"stage": stage, "label": label, "variant": variant,
                  "sad": {c: s[c]["sad"] for c in (PERFECT, IMPERFECT)}} for label, variant, s in stage_rows]
    (out / "study.md").write_text("\n".join(lines))
    (out / "study.json").write_text(json.dumps({"iters": {stage: STUDY_ITERS[stage][scale_name] for stage in CONFIGS},
                                                "rows": rows}, indent=1))
    print(f"study: {out / 'study.md'}")


# ------------------------------------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/reference", help="output folder (default output/reference)")
    parser.add_argument("--smoke", action="store_true", help="a few iterations at tiny sizes (seconds; for CI)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--study", action="store_true",
                        help="run the study of what limits learning instead of the reference's stage 2 (needs the "
                             "reference's stage 1, trained first when missing)")
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1),
                        help="data-parallel training processes (default: 2, or 1 on a one-core machine); eager Paddle "
                             "uses one core per process on CPU")
    parser.add_argument("--variants", default=",".join(STUDY_VARIANTS),
                        help=f"comma-separated study variants (default all: {','.join(STUDY_VARIANTS)})")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    scale_name = "smoke" if args.smoke else "full"
    scale = SCALES[scale_name]
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(STUDY_VARIANTS))
    if unknown:
        raise UserError(f"unknown --variants {', '.join(unknown)}; choose from {', '.join(STUDY_VARIANTS)}")
    if args.processes < 1:
        raise UserError(f"--processes must be 1 or more, got {args.processes}")
    out = Path(args.out)
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    timings = Timings(out / ("timings_study.json" if args.study else "timings.json"))
    data = out / "data"
    small_n = STUDY_SMALL_N[scale_name]
    timings.timed("data", make_data, data, scale, small_n)
    overrides = scale["overrides"]
    stage1 = timings.timed("stage 1 training", train_stage, "stage1", data, out / "stage1", overrides.get("stage1", []),
                           processes=args.processes)
    if args.study:
        run_study(out, data, scale_name, scale, stage1["best"], variants, timings, args.processes)
        write_study(out, data, scale_name, scale, timings)
        return json.loads((out / "study.json").read_text())
    stage2 = timings.timed("stage 2 training", train_stage, "stage2", data, out / "stage2", overrides.get("stage2", []),
                           init_from=stage1["best"] / "model.pdparams", processes=args.processes)
    for key, run in (("stage1_base", stage1), ("stage2_refine", stage2)):
        copy_model(run["best"], out / "models" / key)
    methods = {DIFFERENCE: None, UNTRAINED: predictor(cfg=stage2["cfg"]),
               STAGE1: AtScale(predictor(out / "models" / "stage1_base"), stage2["cfg"]["model"]["backbone_scale"]),
               STAGE2: predictor(out / "models" / "stage2_refine")}
    from bgmatting.engine import evaluator

    methods[DIFFERENCE] = evaluator.DifferenceBaseline(0.1)
    benches = benchmarks(data, scale["eval_resolution"])
    means = timings.timed("evaluation", evaluate_methods, benches, methods)
    timings.timed("pictures", write_pictures, out, benches, methods)
    from bgmatting.plots import plot_loss_curves

    plot_loss_curves(out / "loss_curves.png", {"stage 1 (MattingBase)": out / "stage1",
                                               "stage 2 (MattingRefine)": out / "stage2"},
                     terms=("loss", "pha_l1", "pha_sobel", "err_mse"))
    runs = {key: str(out / "models" / key) for key in ("stage1_base", "stage2_refine")}
    write_results(out, means, len(benches[PERFECT]), scale["eval_resolution"], timings.seconds, runs)
    print(f"results: {out / 'results.md'}; pictures: {out / 'reference.png'}; loss curves: {out / 'loss_curves.png'}")
    return means


if __name__ == "__main__":
    main()

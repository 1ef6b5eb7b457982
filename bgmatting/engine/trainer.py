"""One training loop for MattingBase and MattingRefine (official ``train_base.py`` / ``train_refine.py``).

Per iteration: a batch of augmented (pha, fgr, bgr) at ``data.resolution`` → :func:`augment.random_crop`
→ :func:`augment.simulate_plate` (source composite + imperfect plate) → forward → :func:`losses.base_loss`
or :func:`losses.refine_loss` → Adam step with per-module learning rates. AMP (``paddle.amp``) only on GPU.

Outputs in ``save_dir``: ``iter_N/`` every ``train.save_interval`` iterations (the newest
``train.keep_checkpoints`` kept), ``latest/`` (model + optimizer + scaler + iteration, for resuming),
``best_model/`` (lowest validation SAD, with its metrics), ``config.yaml`` (the resolved config),
``train.log`` (text), ``losses.csv`` (iteration, loss terms), ``valid.csv`` and ``vdl/`` (VisualDL). Every
checkpoint folder also holds ``model.yaml``, its model card (:mod:`bgmatting.engine.model_card`), and its
``state.json`` the resolved config and its hash.

Restarting a run with the same ``save_dir`` resumes from ``latest`` automatically, but only when ``latest`` was
written with the same resolved config (same hash); otherwise a UserError names the keys that differ. ``fresh``
starts over (removing the earlier run's checkpoints and logs from ``save_dir``); ``resume`` names a checkpoint
folder to continue deliberately, whatever its config (e.g. with a new learning rate). A resumed run first cuts
from ``losses.csv``, ``valid.csv``, ``train.log`` and ``vdl/`` what the interrupted run logged after the checkpoint,
so every iteration is logged once. Data and augmentation are addressed by (seed, iteration), so a resumed run
computes exactly the losses an uninterrupted one would.

Values no run can use (``train.batch_size=0``, a negative learning rate or resolution…) are refused before anything
starts, in one line naming the key. A bad file in the data is replaced by another sample and counted (a warning per
file); more than ``data.max_bad_share`` of a split's files bad stops the run with one line.

Data parallel: start with ``python -m paddle.distributed.launch --nproc_per_node N tools/train.py …``;
each process takes ``train.batch_size / N`` samples per iteration (official: global batch split across
GPUs); BatchNorm becomes SyncBatchNorm on GPU when ``train.sync_bn``; rank 0 validates and writes.
"""
import csv
import json
import logging
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import paddle
from tqdm import tqdm

from bgmatting import losses, metrics
from bgmatting.config import dump_config, get
from bgmatting.data import augment
from bgmatting.data.datasets import MattingSamples, SampleRange, ValidRange, collate_numpy, unpack_batch
from bgmatting.data.io import atomic_path
from bgmatting.engine import build
from bgmatting.engine.checkpoint import find_checkpoint, load_checkpoint, read_state, save_checkpoint
from bgmatting.engine.model_card import config_hash, training_card
from bgmatting.errors import UserError

#: what a run writes in its save_dir (removed by ``fresh``; other files are left alone)
RUN_OUTPUTS = re.compile(r"(iter_\d+|latest|best_model)(\.tmp|\.old)?|vdl|losses\.csv|valid\.csv|train\.log|"
                         r"config\.yaml")

#: keys every training config has that must be positive
POSITIVE_KEYS = ("train.iters", "train.batch_size", "train.save_interval", "train.val_interval", "train.log_interval",
                 "train.keep_checkpoints", "data.resolution", "data.valid_samples")


def _nchw(array):
    return paddle.to_tensor(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def _numpy(field):
    return field.numpy() if isinstance(field, paddle.Tensor) else np.asarray(field)


def compute_loss(outputs, pha, fgr, weights):
    """The official loss for the model's outputs (4 → base, 6 → refine); returns (total, terms)."""
    if len(outputs) == 4:
        return losses.base_loss(outputs[0], outputs[1], outputs[2], pha, fgr, weights)
    return losses.refine_loss(*outputs[:5], pha, fgr, weights)


class Trainer:
    """Trains a BackgroundMattingV2 model from a resolved config.

    Args:
        cfg: config from :func:`bgmatting.config.load_config` (``TRAIN_DEFAULTS`` schema).
        save_dir: output folder (see the module docstring).
        resume: checkpoint folder (or run folder holding ``latest/``) to continue from, whatever its config;
            None → ``save_dir/latest`` when present and written with the same config.
        fresh: start over in ``save_dir``, removing the checkpoints and logs an earlier run left there.
        source: the config file's path, recorded in the model cards.
    Example:
        >>> Trainer(load_config("configs/bgmv2_tiny.yaml"), "output/tiny").train()
        {'iteration': 20, 'best_sad': ..., ...}
    """

    def __init__(self, cfg: dict, save_dir, resume=None, fresh: bool = False, source=None):
        self.cfg, self.save_dir, self.source = cfg, Path(save_dir), None if source is None else str(source)
        self.train_cfg = cfg["train"]
        self.config_hash = config_hash(cfg)
        self.rank, self.world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
        self.on_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().device_id}" if self.on_gpu else "cpu")
        check_common_values(cfg)
        self._check_config()
        if self.train_cfg["batch_size"] % self.world:
            raise UserError(f"config key train.batch_size ({self.train_cfg['batch_size']}) must be divisible by "
                            f"the number of processes ({self.world})")
        self.batch_size = self.train_cfg["batch_size"] // self.world
        self.train_samples = MattingSamples.from_config(cfg, "train")
        self.valid_samples = MattingSamples.from_config(cfg, "valid")
        start = self._start_checkpoint(resume, fresh)

        if self.world > 1:
            paddle.distributed.init_parallel_env()
        build.model_registry()  # imports paddleseg, which draws random numbers: before seeding
        self._seed(self.train_cfg["seed"])  # the same initial weights on every rank
        self.model = self._build_model()
        if self.world > 1 and self.on_gpu and self.train_cfg["sync_bn"]:
            self.model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.log = self._logger()
        self.bad_files = {split: BadFiles(split, samples.files(), cfg["data"]["max_bad_share"], self.log)
                          for split, samples in (("train", self.train_samples), ("valid", self.valid_samples))}
        self._load_initial_weights()
        self.optimizer = self._build_optimizer()
        self.amp = bool(self.train_cfg["amp"]) and self.on_gpu
        self.scaler = paddle.amp.GradScaler() if self.amp else None
        self.iteration, self.best, self.resumed_from = 0, {"sad": float("inf")}, None
        if start is not None:
            self._resume(start)
        if self.rank == 0:
            truncate_logs(self.save_dir, self.iteration)  # also the rows of a run killed before its first checkpoint
        # find_unused_parameters: MattingRefine started from a trained base failed its second data-parallel step
        # without it ("parameter refiner.conv4.weight has been ready before"); the refiner's patch path is data-dependent
        self.network = paddle.DataParallel(self.model, find_unused_parameters=True) if self.world > 1 else self.model

    # ------------------------------------------------------------------------------------------ set-up
    # (model-specific parts are methods, so that a trainer for another model family overrides only these:
    # _check_config, _build_model, _load_initial_weights, _build_optimizer, _prepare, _forward_loss, _validate)

    def _check_config(self):
        check_crop(self.cfg)
        check_laplacian_sizes(self.cfg)

    def _build_model(self):
        return build.build_model(self.cfg["model"])

    def _load_initial_weights(self):
        for key in ("pretrained", "init_from"):
            value = self.cfg["model"][key]
            if value and not (key == "pretrained" and build.pretrained_by_constructor(self.cfg["model"])):
                count = build.load_matched_weights(self.model, value, f"model.{key}")
                self.log.info(f"model.{key}: loaded {count} tensors from {value}")

    def _build_optimizer(self):
        return paddle.optimizer.Adam(learning_rate=1.0,
                                     parameters=build.parameter_groups(self.model, self.train_cfg["lr"]))

    @staticmethod
    def _seed(seed):
        random.seed(seed)
        np.random.seed(seed)
        paddle.seed(seed)

    def _logger(self):
        log = logging.getLogger(f"bgmatting.train.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        if self.rank == 0:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.save_dir / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
        return log

    def _start_checkpoint(self, resume, fresh: bool):
        """The checkpoint folder to start from (see the class docstring), or None to start at iteration 0.

        Raises:
            UserError: ``save_dir/latest`` was written with another config (naming the keys that differ).
        """
        if resume is not None:
            return resume_folder(resume)
        if fresh:
            if self.rank == 0:
                clear_run(self.save_dir)
            return None
        latest = find_checkpoint(self.save_dir / "latest")
        if latest is not None:
            check_same_run(latest, self.cfg, self.save_dir)
        return latest

    def _resume(self, folder):
        state = load_checkpoint(folder, self.model, self.optimizer, self.scaler)
        self.iteration = int(state.get("iteration", 0))
        self.best = state.get("best", self.best)
        self.resumed_from = Path(folder)
        self.log.info(f"resumed from {folder} at iteration {self.iteration}")

    # ---------------------------------------------------------------------------------------- training

    def _loader(self):
        view = SampleRange(self.train_samples, self.iteration, self.train_cfg["iters"], self.batch_size,
                           self.rank, self.world)
        return paddle.io.DataLoader(view, batch_size=self.batch_size, shuffle=False, drop_last=True,
                                    num_workers=self.cfg["data"]["num_workers"], collate_fn=collate_numpy)

    def _prepare(self, batch, iteration):
        """Random crop + clean-plate simulation for one batch → (src, bgr, pha, fgr) NCHW tensors."""
        rng = np.random.default_rng([self.train_cfg["seed"], 4, iteration, self.rank])
        crop = self.cfg["data"]["crop"]
        pha, fgr, bgr = augment.random_crop([_numpy(f) for f in batch], rng, crop["min"], crop["max"],
                                            crop["multiple"])
        src, bgr = augment.simulate_plate(pha, fgr, bgr, rng, self.cfg["augment"]["plate"])
        return _nchw(src), _nchw(bgr), _nchw(pha), _nchw(fgr)

    def _forward_loss(self, src, bgr, pha, fgr):
        """Forward one prepared batch (the tensors of :meth:`_prepare`) → (total loss, terms)."""
        return compute_loss(self.network(src, bgr), pha, fgr, self.cfg["loss"])

    def _step(self, *batch):
        # ASPP has dropout: its masks come from Paddle's generator, re-seeded per (seed, iteration, rank)
        # so that a resumed run draws the same masks as an uninterrupted one.
        paddle.seed(int(np.random.SeedSequence([self.train_cfg["seed"], 5, self.iteration, self.rank])
                        .generate_state(1)[0]))
        with paddle.amp.auto_cast(enable=self.amp):
            total, terms = self._forward_loss(*batch)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        return {"loss": float(total), **{k: float(v) for k, v in terms.items()}}

    def train(self) -> dict:
        """Run until ``train.iters``; returns ``{"iteration", "best_sad", "best_mse", "save_dir"}``."""
        iters = self.train_cfg["iters"]
        writer = self._writer()
        if self.rank == 0:
            dump_config(self.cfg, self.save_dir / "config.yaml")
            self.log.info(f"training {self.cfg['model']['type']} ({self.cfg['model'].get('backbone')}) from iteration "
                          f"{self.iteration} to {iters}, {self.world} process(es), batch {self.batch_size}/process")
        self.model.train()
        bar = tqdm(total=iters, initial=self.iteration, desc="train", disable=self.rank != 0, dynamic_ncols=True)
        start = time.time()
        try:
            for loaded in self._loader():
                batch, problems = unpack_batch(loaded)
                self.bad_files["train"].add(problems)
                prepared = self._prepare(batch, self.iteration)
                terms = self._step(*prepared)
                self.iteration += 1
                if self.rank == 0:
                    self._log_images(writer, prepared)
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}")
                if self.rank == 0:
                    self._log_train(terms, writer, start)
                if self.iteration % self.train_cfg["val_interval"] == 0 or self.iteration == iters:
                    self._validate_and_keep_best(writer)
                if self.rank == 0 and (self.iteration % self.train_cfg["save_interval"] == 0
                                       or self.iteration == iters):
                    self._save()
        finally:
            bar.close()
            self._close(writer)
        return {"iteration": self.iteration, "best_sad": self.best["sad"], "best_mse": self.best.get("mse"),
                "save_dir": str(self.save_dir)}

    def _close(self, writer):
        """Close the VisualDL writer and the log file (also when training stops on an error or an interrupt)."""
        if writer is not None:
            writer.close()
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)

    # ----------------------------------------------------------------------------------- logs and saving

    def _writer(self):
        """The VisualDL writer (rank 0 only). The VisualDL log is rewritten from the CSV logs (which a resumed run has
        cut at the resumed iteration), so that it too holds every iteration once."""
        if self.rank != 0:
            return None
        from visualdl import LogWriter

        shutil.rmtree(self.save_dir / "vdl", ignore_errors=True)
        writer = LogWriter(logdir=str(self.save_dir / "vdl"))
        for prefix, name in (("train", "losses.csv"), ("valid", "valid.csv")):
            for row in _read_csv(self.save_dir / name):
                for key, value in row.items():
                    if key != "iteration":
                        writer.add_scalar(f"{prefix}/{key}", float(value), int(row["iteration"]))
        return writer

    def _log_train(self, terms, writer, start):
        if self.iteration % self.train_cfg["log_interval"] and self.iteration != self.train_cfg["iters"]:
            return
        _append_csv(self.save_dir / "losses.csv", {"iteration": self.iteration, **terms})
        for name, value in terms.items():
            writer.add_scalar(f"train/{name}", value, self.iteration)
        self.log.info(f"iter {self.iteration} " + " ".join(f"{k}={v:.5f}" for k, v in terms.items())
                      + f" ({time.time() - start:.1f} s)")

    def _log_images(self, writer, prepared):
        """Every ``train.image_interval`` iterations: the model's prediction for the first sample of this iteration's
        batch (eval mode, no gradient, so training is unchanged) as a labelled VisualDL image ``train/prediction``
        (:meth:`_image_panel`), as the official scripts log images to TensorBoard."""
        interval = self.train_cfg.get("image_interval", 0)
        if writer is None or not interval or (self.iteration % interval and self.iteration != self.train_cfg["iters"]):
            return
        self.model.eval()
        try:
            with paddle.no_grad():
                panel = self._image_panel(prepared)
        finally:
            self.model.train()
        writer.add_image("train/prediction", (np.clip(panel, 0, 1) * 255).astype(np.uint8), self.iteration)

    def _image_panel(self, prepared) -> np.ndarray:
        """source | predicted alpha | true alpha | |error| | refined patches | predicted error, for one sample."""
        from bgmatting.plots import prediction_panel

        src, bgr, pha = (tensor[:1] for tensor in prepared[:3])
        outputs = self.model(src, bgr)
        refine = len(outputs) == 6
        first = lambda tensor: tensor.numpy()[0, 0]  # noqa: E731
        return prediction_panel(src.numpy()[0].transpose(1, 2, 0), first(outputs[0]), first(pha),
                                ref=first(outputs[5]) if refine else None,
                                err=first(outputs[4] if refine else outputs[2]))

    def _validate_and_keep_best(self, writer):
        if self.rank != 0:
            return
        result = self._validate()
        self.model.train()
        _append_csv(self.save_dir / "valid.csv", {"iteration": self.iteration, **result})
        for name, value in result.items():
            writer.add_scalar(f"valid/{name}", value, self.iteration)
        self.log.info(f"valid iter {self.iteration} " + " ".join(f"{k}={v:.5f}" for k, v in result.items()))
        if result["sad"] < self.best["sad"]:
            self.best = {"iteration": self.iteration, **result}
            save_checkpoint(self.save_dir / "best_model", self.model, card=self._card(),
                            state={"iteration": self.iteration, "metrics": result, "config_hash": self.config_hash})
            self.log.info(f"new best model at iteration {self.iteration}: SAD {result['sad']:.4f}")

    def _validate(self) -> dict:
        """Validation metrics ``{"loss", "sad", "mse", ...}`` of the current model (the best has the lowest SAD)."""
        return validate(self.model, self._valid_batches(), self.cfg["loss"])

    def _valid_batches(self):
        """The validation samples in order, each as NumPy ``(pha, fgr, bgr)`` batches of one; bad files counted."""
        loader = paddle.io.DataLoader(ValidRange(self.valid_samples), batch_size=1, shuffle=False,
                                      collate_fn=collate_numpy)
        for loaded in loader:
            fields, problems = unpack_batch(loaded)
            self.bad_files["valid"].add(problems)
            yield [_numpy(field) for field in fields]

    def _card(self) -> dict:
        """The model card of a checkpoint written now (:func:`bgmatting.engine.model_card.training_card`)."""
        return training_card(self.cfg["model"], {"tool": "train", "source": self.source, "iteration": self.iteration,
                                                  "config_hash": self.config_hash})

    def _save(self):
        state = {"iteration": self.iteration, "best": self.best, "config_hash": self.config_hash, "config": self.cfg}
        card = self._card()
        save_checkpoint(self.save_dir / f"iter_{self.iteration}", self.model, state=state, card=card)
        save_checkpoint(self.save_dir / "latest", self.model, self.optimizer, state, self.scaler, card=card)
        kept = sorted((p for p in self.save_dir.glob("iter_*") if re.fullmatch(r"iter_\d+", p.name)),
                      key=lambda p: int(p.name[len("iter_"):]))
        for old in kept[: max(0, len(kept) - self.train_cfg["keep_checkpoints"])]:
            shutil.rmtree(old, ignore_errors=True)


class BadFiles:
    """The distinct bad files of one split met while training (see :class:`bgmatting.data.datasets.Sample`).

    Each new one is a warning (stderr and train.log); once more than ``max_share`` of the split's ``total`` files
    are bad, :meth:`add` raises a UserError (one line) that stops the run.
    """

    def __init__(self, split: str, total: int, max_share: float, log):
        self.split, self.total, self.max_share, self.log = split, total, max_share, log
        self.seen = set()

    def add(self, problems) -> None:
        """Count ``problems`` (``(file key, message)`` pairs of a batch)."""
        for key, message in problems:
            if key in self.seen:
                continue
            self.seen.add(key)
            text = f"{self.split} data: skipped a {message} ({len(self.seen)} bad of {self.total} files so far)"
            self.log.warning(text)
            tqdm.write(f"warning: {text}", file=sys.stderr)
            share = len(self.seen) / self.total
            if share > self.max_share:
                raise UserError(f"{len(self.seen)} of {self.total} {self.split} files are bad ({share:.1%}, more "
                                f"than data.max_bad_share={self.max_share:g}), the last: {message}; fix or remove "
                                "them, or raise data.max_bad_share")


def require(cfg: dict, key: str, ok, expected: str) -> None:
    """Raise ``config key KEY must be EXPECTED, got VALUE`` unless the value is a number and ``ok(value)``."""
    value = get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise UserError(f"config key {key} must be {expected}, got {value!r}")


def check_common_values(cfg: dict) -> None:
    """Refuse the values of the keys every trainer shares that no run can use (one line naming the key)."""
    for key in POSITIVE_KEYS:
        require(cfg, key, lambda value: value > 0, "positive")
    require(cfg, "data.num_workers", lambda value: value >= 0, "0 or more")
    require(cfg, "train.image_interval", lambda value: value >= 0, "0 (no images) or more")
    require(cfg, "data.max_bad_share", lambda value: 0 <= value <= 1, "between 0 and 1")
    rates = cfg["train"]["lr"]
    for name in (rates if isinstance(rates, dict) else [None]):
        require(cfg, "train.lr" if name is None else f"train.lr.{name}", lambda value: value >= 0, "0 or more")


def check_crop(cfg: dict) -> None:
    """``data.crop`` of BackgroundMattingV2: positive ``min < max`` (max exclusive), ``min ≥ multiple``."""
    crop = cfg["data"]["crop"]
    for key in ("min", "max", "multiple"):
        require(cfg, f"data.crop.{key}", lambda value: value > 0, "positive")
    require(cfg, "data.crop.max", lambda value: value > crop["min"], f"more than data.crop.min ({crop['min']})")
    require(cfg, "data.crop.min", lambda value: value >= crop["multiple"],
            f"at least data.crop.multiple ({crop['multiple']})")


def check_laplacian_sizes(cfg: dict) -> None:
    """Raise UserError when ``loss.pha_laplacian`` is on but a crop (or its coarse copy for MattingRefine) is
    too small for the 5-level pyramid, instead of failing inside the first iteration."""
    if not cfg["loss"]["pha_laplacian"]:
        return
    crop = cfg["data"]["crop"]
    smallest = crop["min"] // crop["multiple"] * crop["multiple"]
    sides = {"data.crop.min": smallest}
    if cfg["model"]["type"] == "MattingRefine":
        sides["data.crop.min × model.backbone_scale"] = int(smallest * cfg["model"]["backbone_scale"])
    for what, side in sides.items():
        if not losses.laplacian_fits(side):
            raise UserError(f"loss.pha_laplacian needs images of at least 64 px for its 5 levels, but {what} gives "
                            f"{side} px; raise data.crop.min or set loss.pha_laplacian=0")


def validate(model, batches, loss_weights) -> dict:
    """Validation loss and whole-image SAD/MSE (``bgmatting.metrics``) averaged over the validation ``batches``.

    The source is the exact composite on the (augmented) validation background and the plate is perfect,
    as in the official ``valid``. SAD = Σ|Δα|/1000 per image; MSE is the raw mean (not ×1e3).

    Args:
        batches: NumPy ``(pha, fgr, bgr)`` batches of one sample (:meth:`Trainer._valid_batches`).
    Returns:
        ``{"loss", "sad", "mse"}`` (floats).
    """
    model.eval()
    totals, count = {"loss": 0.0, "sad": 0.0, "mse": 0.0}, 0
    with paddle.no_grad():
        for pha, fgr, bgr in batches:
            src = fgr * pha + bgr * (1 - pha)
            outputs = model(_nchw(src), _nchw(bgr))
            total, _ = compute_loss(outputs, _nchw(pha), _nchw(fgr), loss_weights)
            pred = outputs[0].numpy()[0, 0]
            totals["loss"] += float(total)
            totals["sad"] += metrics.sad(pred, pha[0, :, :, 0])
            totals["mse"] += metrics.mse(pred, pha[0, :, :, 0])
            count += 1
    return {k: v / count for k, v in totals.items()}


def resume_folder(path) -> Path:
    """The checkpoint folder ``--resume PATH`` names: PATH itself, or the ``latest/`` of a run folder."""
    path = Path(path)
    if find_checkpoint(path) is None and find_checkpoint(path / "latest") is not None:
        return find_checkpoint(path / "latest")
    return path


def check_same_run(folder, cfg: dict, save_dir) -> None:
    """Raise one UserError line unless checkpoint ``folder`` was written with ``cfg`` (same config hash), naming
    the keys that differ and the ways on (``--fresh``, another ``--save-dir``, ``--resume``)."""
    state = read_state(folder)
    if state.get("config_hash") == config_hash(cfg):
        return
    if isinstance(state.get("config"), dict):
        differences = config_differences(state["config"], cfg) or ["the config hash"]
        what = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
    else:
        what = "it records no config: written by an older version"
    raise UserError(f"{save_dir} holds a run with another config ({what}); use --fresh to start over in {save_dir}, "
                    f"another --save-dir, or --resume {folder} to continue it with this config")


def config_differences(old: dict, new: dict) -> list:
    """``["model.backbone: resnet50 → mobilenetv2", …]``: each dotted key whose value differs, in ``new``'s order."""
    before, after = (_flatten(json.loads(json.dumps(config, default=str))) for config in (old, new))
    keys = list(after) + [key for key in before if key not in after]
    return [f"{key}: {_shown(before, key)} → {_shown(after, key)}" for key in keys
            if json.dumps(before.get(key)) != json.dumps(after.get(key)) or (key in before) != (key in after)]


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(flat: dict, key: str) -> str:
    if key not in flat:
        return "(absent)"
    return flat[key] if isinstance(flat[key], str) else json.dumps(flat[key])


def clear_run(save_dir) -> None:
    """Remove what a training run wrote in ``save_dir`` (:data:`RUN_OUTPUTS`), leaving other files alone."""
    save_dir = Path(save_dir)
    for path in save_dir.glob("*") if save_dir.is_dir() else []:
        if RUN_OUTPUTS.fullmatch(path.name):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def truncate_logs(save_dir, iteration: int) -> None:
    """Cut from ``losses.csv``, ``valid.csv`` and ``train.log`` in ``save_dir`` what was logged after ``iteration``
    (by the run interrupted after its last checkpoint), so that the resumed run logs every iteration once."""
    save_dir = Path(save_dir)
    for name in ("losses.csv", "valid.csv"):
        path = save_dir / name
        if path.is_file():
            rows = [row for row in _read_csv(path) if int(row["iteration"]) <= iteration]
            _write_csv(path, rows)
    log = save_dir / "train.log"
    if log.is_file():  # cut in place: the trainer's log handler has the file open already
        lines = log.read_bytes().splitlines(keepends=True)
        logged = [re.search(rb"\biter(?:ation)? (\d+)", line) for line in lines]
        cut = next((i for i, match in enumerate(logged) if match and int(match.group(1)) > iteration), len(lines))
        with open(log, "r+b") as f:
            f.truncate(sum(len(line) for line in lines[:cut]))


def _read_csv(path) -> list:
    """The complete rows of a log CSV (a row cut short by a kill is dropped); [] when the file is missing."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [row for row in rows if None not in row.values() and row.get("iteration", "").isdigit()]


def _write_csv(path, rows: list) -> None:
    """Rewrite a log CSV with ``rows`` (atomically; an empty list leaves the header out and the file empty)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


def _append_csv(path, row: dict):
    """Append ``row`` to a CSV file, writing the header when the file is new."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)

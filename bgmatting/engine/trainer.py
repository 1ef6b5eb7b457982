"""One training loop for MattingBase and MattingRefine (official ``train_base.py`` / ``train_refine.py``).

Per iteration: a batch of augmented (pha, fgr, bgr) at ``data.resolution`` → :func:`augment.random_crop`
→ :func:`augment.simulate_plate` (source composite + imperfect plate) → forward → :func:`losses.base_loss`
or :func:`losses.refine_loss` → Adam step with per-module learning rates. AMP (``paddle.amp``) only on GPU.

Outputs in ``save_dir``: ``iter_N/`` every ``train.save_interval`` iterations (the newest
``train.keep_checkpoints`` kept), ``latest/`` (model + optimizer + scaler + iteration, for resuming),
``best_model/`` (lowest validation SAD, with its metrics), ``config.yaml`` (the resolved config),
``train.log`` (text), ``losses.csv`` (iteration, loss terms), ``valid.csv`` and ``vdl/`` (VisualDL).

Restarting a run with the same ``save_dir`` resumes from ``latest`` automatically; ``resume_model`` names
another checkpoint folder. Data and augmentation are addressed by (seed, iteration), so a resumed run
computes exactly the losses an uninterrupted one would.

Data parallel: start with ``python -m paddle.distributed.launch --nproc_per_node N tools/train.py …``;
each process takes ``train.batch_size / N`` samples per iteration (official: global batch split across
GPUs); BatchNorm becomes SyncBatchNorm on GPU when ``train.sync_bn``; rank 0 validates and writes.
"""
import csv
import logging
import random
import re
import shutil
import time
from pathlib import Path

import numpy as np
import paddle
from tqdm import tqdm

from bgmatting import losses, metrics
from bgmatting.config import dump_config
from bgmatting.data import augment
from bgmatting.data.datasets import MattingSamples, SampleRange, ValidRange, collate_numpy
from bgmatting.engine import build
from bgmatting.engine.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from bgmatting.errors import UserError


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
        resume_model: checkpoint folder to resume from; None → ``save_dir/latest`` when present.
    Example:
        >>> Trainer(load_config("configs/bgmv2_tiny.yaml"), "output/tiny").train()
        {'iteration': 20, 'best_sad': ..., ...}
    """

    def __init__(self, cfg: dict, save_dir, resume_model=None):
        self.cfg, self.save_dir = cfg, Path(save_dir)
        self.train_cfg = cfg["train"]
        self.rank, self.world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
        self.on_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().device_id}" if self.on_gpu else "cpu")
        if self.train_cfg["batch_size"] % self.world:
            raise UserError(f"config key train.batch_size ({self.train_cfg['batch_size']}) must be divisible by "
                            f"the number of processes ({self.world})")
        self.batch_size = self.train_cfg["batch_size"] // self.world
        self._check_config()
        self.train_samples = MattingSamples.from_config(cfg, "train")
        self.valid_samples = MattingSamples.from_config(cfg, "valid")

        if self.world > 1:
            paddle.distributed.init_parallel_env()
        build.model_registry()  # imports paddleseg, which draws random numbers: before seeding
        self._seed(self.train_cfg["seed"])  # the same initial weights on every rank
        self.model = self._build_model()
        if self.world > 1 and self.on_gpu and self.train_cfg["sync_bn"]:
            self.model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.log = self._logger()
        self._load_initial_weights()
        self.optimizer = self._build_optimizer()
        self.amp = bool(self.train_cfg["amp"]) and self.on_gpu
        self.scaler = paddle.amp.GradScaler() if self.amp else None
        self.iteration, self.best = 0, {"sad": float("inf")}
        self._resume(resume_model)
        self.network = paddle.DataParallel(self.model) if self.world > 1 else self.model

    # ------------------------------------------------------------------------------------------ set-up
    # (model-specific parts are methods, so that a trainer for another model family overrides only these:
    # _check_config, _build_model, _load_initial_weights, _build_optimizer, _prepare, _forward_loss, _validate)

    def _check_config(self):
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

    def _resume(self, resume_model):
        folder = resume_model or find_checkpoint(self.save_dir / "latest")
        if folder is None:
            return
        state = load_checkpoint(folder, self.model, self.optimizer, self.scaler)
        self.iteration = int(state.get("iteration", 0))
        self.best = state.get("best", self.best)
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
            self.log.info(f"training {self.cfg['model']['type']} ({self.cfg['model']['backbone']}) from iteration "
                          f"{self.iteration} to {iters}, {self.world} process(es), batch {self.batch_size}/process")
        self.model.train()
        bar = tqdm(total=iters, initial=self.iteration, desc="train", disable=self.rank != 0, dynamic_ncols=True)
        start = time.time()
        for batch in self._loader():
            terms = self._step(*self._prepare(batch, self.iteration))
            self.iteration += 1
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.4f}")
            if self.rank == 0:
                self._log_train(terms, writer, start)
            if self.iteration % self.train_cfg["val_interval"] == 0 or self.iteration == iters:
                self._validate_and_keep_best(writer)
            if self.rank == 0 and (self.iteration % self.train_cfg["save_interval"] == 0 or self.iteration == iters):
                self._save()
        bar.close()
        if writer is not None:
            writer.close()
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)
        return {"iteration": self.iteration, "best_sad": self.best["sad"], "best_mse": self.best.get("mse"),
                "save_dir": str(self.save_dir)}

    # ----------------------------------------------------------------------------------- logs and saving

    def _writer(self):
        if self.rank != 0:
            return None
        from visualdl import LogWriter

        return LogWriter(logdir=str(self.save_dir / "vdl"))

    def _log_train(self, terms, writer, start):
        if self.iteration % self.train_cfg["log_interval"] and self.iteration != self.train_cfg["iters"]:
            return
        _append_csv(self.save_dir / "losses.csv", {"iteration": self.iteration, **terms})
        for name, value in terms.items():
            writer.add_scalar(f"train/{name}", value, self.iteration)
        self.log.info(f"iter {self.iteration} " + " ".join(f"{k}={v:.5f}" for k, v in terms.items())
                      + f" ({time.time() - start:.1f} s)")

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
            save_checkpoint(self.save_dir / "best_model", self.model, state={"iteration": self.iteration,
                                                                              "metrics": result})
            self.log.info(f"new best model at iteration {self.iteration}: SAD {result['sad']:.4f}")

    def _validate(self) -> dict:
        """Validation metrics ``{"loss", "sad", "mse", ...}`` of the current model (the best has the lowest SAD)."""
        return validate(self.model, self.valid_samples, self.cfg["loss"])

    def _save(self):
        state = {"iteration": self.iteration, "best": self.best}
        save_checkpoint(self.save_dir / f"iter_{self.iteration}", self.model, state=state)
        save_checkpoint(self.save_dir / "latest", self.model, self.optimizer, state, self.scaler)
        kept = sorted((p for p in self.save_dir.glob("iter_*") if re.fullmatch(r"iter_\d+", p.name)),
                      key=lambda p: int(p.name[len("iter_"):]))
        for old in kept[: max(0, len(kept) - self.train_cfg["keep_checkpoints"])]:
            shutil.rmtree(old, ignore_errors=True)


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


def validate(model, samples, loss_weights) -> dict:
    """Validation loss and whole-image SAD/MSE (``bgmatting.metrics``) averaged over ``samples``.

    The source is the exact composite on the (augmented) validation background and the plate is perfect,
    as in the official ``valid``. SAD = Σ|Δα|/1000 per image; MSE is the raw mean (not ×1e3).

    Returns:
        ``{"loss", "sad", "mse"}`` (floats).
    """
    model.eval()
    totals = {"loss": 0.0, "sad": 0.0, "mse": 0.0}
    loader = paddle.io.DataLoader(ValidRange(samples), batch_size=1, shuffle=False, collate_fn=collate_numpy)
    with paddle.no_grad():
        for batch in loader:
            pha, fgr, bgr = (_numpy(f) for f in batch)
            src = fgr * pha + bgr * (1 - pha)
            outputs = model(_nchw(src), _nchw(bgr))
            total, _ = compute_loss(outputs, _nchw(pha), _nchw(fgr), loss_weights)
            pred = outputs[0].numpy()[0, 0]
            totals["loss"] += float(total)
            totals["sad"] += metrics.sad(pred, pha[0, :, :, 0])
            totals["mse"] += metrics.mse(pred, pha[0, :, :, 0])
    return {k: v / len(samples) for k, v in totals.items()}


def _append_csv(path, row: dict):
    """Append ``row`` to a CSV file, writing the header when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)

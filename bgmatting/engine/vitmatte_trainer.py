"""ViTMatte training on the shared :class:`bgmatting.engine.trainer.Trainer` (the official hustvl/ViTMatte recipe).

Only the model-specific parts differ from BackgroundMattingV2 training; the loop, data addressing, checkpoints,
resuming, logs and data parallelism are the shared trainer's.

- data: the shared (pha, fgr, bgr) samples (:class:`bgmatting.data.datasets.MattingSamples`, augmentation from
  the ``augment`` section) → per batch an online trimap by random erosion (kernels 1 … ``data.trimap.max_kernel``
  − 1, official 1–29), a ``data.crop`` square centred on an unknown pixel, the composite
  (:func:`bgmatting.data.trimap_batch.trimap_training_batch`) → the Hugging Face pre-processing
  (:func:`bgmatting.models.vitmatte_processing.normalize_and_pad`, trimap 128/255 as at inference);
- loss: :func:`bgmatting.losses.vitmatte_loss` (unknown-region L1, known-region L1, Laplacian, gradient penalty;
  weights in ``loss``);
- optimiser: AdamW (β 0.9/0.999, ``train.weight_decay`` 0.1, none on normalisation layers and ``pos_embed``),
  layer-wise learning-rate decay ``train.layer_decay`` 0.65 (``get_vit_lr_decay_rate``: patch/position
  embedding ``decay^(depth+1)``, block i ``decay^(depth−i)``, residual conv blocks and decoder 1);
- schedule: linear warmup over ``train.warmup_iters`` from ``train.warmup_factor`` × lr, then ``train.lr`` ×
  ``train.lr_values[k]`` after the ``train.milestones`` (fractions of ``train.iters``; official 0.3 and 0.9 →
  ×0.1 and ×0.05);
- initialisation: ``model.pretrained`` = a DINO/MAE ViT (timm names, with or without ``backbone.``; PyTorch
  layout unless ``.pdparams``): the RGB patch embedding is copied and the trimap's 4th input channel starts at zero
  (official ``pretrained/preprocess.py``); ``model.init_from`` = a whole ViTMatte (official, HF or ours);
- validation: the validation samples composited, a fixed trimap from the ground truth (kernel
  ``data.trimap.valid_kernel``), loss and SAD / MSE over the unknown region.

Example:
    >>> trainer_class, cfg = load_training_config("configs/vitmatte/tiny.yaml", ["train.iters=4"])
    >>> trainer_class(cfg, "output/vitmatte_tiny").train()
"""
import copy
from pathlib import Path

import numpy as np
import paddle

from bgmatting import losses, metrics
from bgmatting.config import FREE_FORM, TRAIN_DEFAULTS, load_config
from bgmatting.data.synthetic import composite
from bgmatting.data.trimap import trimap_from_alpha
from bgmatting.data.trimap_batch import trimap_training_batch
from bgmatting.engine.trainer import Trainer, require
from bgmatting.errors import UserError
from bgmatting.models.vitmatte import MODEL_DEFAULTS, build_vitmatte
from bgmatting.models.vitmatte_processing import SIZE_DIVISOR, normalize_and_pad

_AUGMENT = copy.deepcopy({k: v for k, v in TRAIN_DEFAULTS["augment"].items() if k != "plate"})
_AUGMENT["fgr"]["affine"] = {"degrees": [-30.0, 30.0], "translate": [0.0, 0.0], "scale": [0.8, 1.25],
                             "shear": [-10.0, 10.0]}  # official RandomAffine(30, scale=[0.8, 1.25], shear=10)
_SPLIT = {"root": None, "backgrounds": None}

#: Schema of defaults for training ViTMatte (official ViTMatte-S recipe unless noted).
VITMATTE_TRAIN_DEFAULTS = {
    "model": {**MODEL_DEFAULTS, "pretrained": None, "init_from": None},
    "data": {
        "train": dict(_SPLIT),
        "valid": dict(_SPLIT),
        "resolution": 640,  # side of the augmented sample the crop is taken from (official GenMask works at 640)
        "crop": 512,
        "trimap": {"max_kernel": 30, "valid_kernel": 15},
        "valid_samples": 50,
        "num_workers": 0,
        "max_bad_share": 0.01,  # bad files (skipped with a warning) allowed, as a share of a split's files
    },
    "augment": _AUGMENT,
    "loss": {"unknown_l1": 1.0, "known_l1": 1.0, "laplacian": 1.0, "gradient_penalty": 1.0},
    "train": {
        "iters": 134687,  # 100 "epochs" of 43100 composites at a global batch of 32
        "batch_size": 32,
        "lr": 5e-4,
        "layer_decay": 0.65,
        "weight_decay": 0.1,
        "warmup_iters": 250,
        "warmup_factor": 0.001,
        "milestones": [0.3, 0.9],
        "lr_values": [1.0, 0.1, 0.05],
        "save_interval": 13469,
        "keep_checkpoints": 3,
        "log_interval": 20,
        "val_interval": 13469,
        "image_interval": 0,  # VisualDL prediction images every N iterations (0: none)
        "seed": 0,
        "amp": True,  # used only on GPU
        "sync_bn": True,
    },
}

_NO_DECAY_LAYERS = (paddle.nn.LayerNorm, paddle.nn.BatchNorm2D)


def is_vitmatte_config(path, opts=None) -> bool:
    """True when the config ``path`` (with ``opts``) has ``model.type: ViTMatte``."""
    raw = load_config(path, opts, {FREE_FORM: None})
    return isinstance(raw.get("model"), dict) and raw["model"].get("type") == "ViTMatte"


def load_training_config(path, opts=None):
    """(trainer class, config) for a training config: ViTMatte configs → :class:`ViTMatteTrainer` with
    :data:`VITMATTE_TRAIN_DEFAULTS`; everything else → the BackgroundMattingV2 :class:`Trainer`."""
    if is_vitmatte_config(path, opts):
        return ViTMatteTrainer, load_config(path, opts, VITMATTE_TRAIN_DEFAULTS)
    return Trainer, load_config(path, opts)


def vit_lr_factor(name: str, layer_decay: float, depth: int) -> float:
    """Official ``get_vit_lr_decay_rate``: the learning-rate factor of parameter ``name`` of a ViTMatte.

    Patch and position embeddings: ``decay^(depth+1)``; ``backbone.blocks.i.*`` (not ``.residual.``):
    ``decay^(depth−i)``; everything else (residual conv blocks, decoder): 1.
    """
    layer = depth + 1
    if name.startswith("backbone."):
        if name.startswith(("backbone.pos_embed", "backbone.patch_embed")):
            layer = 0
        elif name.startswith("backbone.blocks.") and ".residual." not in name:
            layer = int(name.split(".")[2]) + 1
    return layer_decay ** (depth + 1 - layer)


def no_decay_names(model) -> set:
    """Structured names of the parameters without weight decay: normalisation layers and ``pos_embed``."""
    from bgmatting.models.backbones.vit import LayerNorm2D

    names = {"backbone.pos_embed"}
    for prefix, layer in model.named_sublayers():
        if isinstance(layer, _NO_DECAY_LAYERS + (LayerNorm2D,)):
            names.update(f"{prefix}.{name}" for name, _ in layer.named_parameters(include_sublayers=False))
    return names


def build_optimizer(model, train_cfg: dict):
    """AdamW with layer-wise learning-rate groups, weight decay except on norms/``pos_embed``, and the schedule.

    Returns:
        (optimizer, scheduler): ``scheduler.step()`` once per iteration.
    """
    depth = len(model.backbone.blocks)
    groups = {}
    for name, param in model.named_parameters():
        groups.setdefault(vit_lr_factor(name, train_cfg["layer_decay"], depth), []).append(param)
    no_decay = no_decay_names(model)
    skip = {param.name for name, param in model.named_parameters() if name in no_decay}
    scheduler = build_scheduler(train_cfg)
    optimizer = paddle.optimizer.AdamW(
        learning_rate=scheduler, beta1=0.9, beta2=0.999, weight_decay=train_cfg["weight_decay"],
        parameters=[{"params": params, "learning_rate": factor} for factor, params in sorted(groups.items())],
        apply_decay_param_fun=lambda name: name not in skip)
    return optimizer, scheduler


def build_scheduler(train_cfg: dict):
    """Linear warmup then multi-step values (see the module docstring); a Paddle ``LRScheduler``."""
    lr, iters = float(train_cfg["lr"]), int(train_cfg["iters"])
    milestones, values = train_cfg["milestones"], train_cfg["lr_values"]
    if len(values) != len(milestones) + 1:
        raise UserError(f"config key train.lr_values needs {len(milestones) + 1} values (one more than "
                        f"train.milestones), got {len(values)}")
    warmup = max(0, int(train_cfg["warmup_iters"]))
    # milestones count from the start of training (detectron2's WarmupParamScheduler), Paddle's inner schedule
    # from the end of the warmup
    boundaries = [max(1, int(m * iters) - warmup) for m in milestones]
    steps = paddle.optimizer.lr.PiecewiseDecay(boundaries, [lr * v for v in values])
    if warmup == 0:
        return steps
    return paddle.optimizer.lr.LinearWarmup(steps, warmup, lr * train_cfg["warmup_factor"], lr)


def load_vit_pretrained(model, path) -> int:
    """Initialise the backbone from a DINO/MAE ViT; the patch embedding's 4th (trimap) input channel starts at zero.

    Args:
        model: a :class:`bgmatting.models.ViTMatte`.
        path: checkpoint (.pth/.safetensors in PyTorch layout, Linear weights transposed here; .pdparams as is)
            with timm ViT names (``patch_embed.proj.weight``, ``pos_embed``, ``blocks.N.attn.qkv.weight`` …),
            optionally prefixed ``backbone.``; other keys (``cls_token``, ``head``, MAE decoder …) are ignored.
    Returns:
        the number of tensors loaded.
    Raises:
        UserError: unreadable file or no tensor matches.
    """
    from bgmatting.convert.checkpoint_io import load_state_arrays
    from bgmatting.convert.vitmatte import linear_weight_names

    transpose = set() if Path(path).suffix == ".pdparams" else linear_weight_names(model)
    own = {k: v.numpy() for k, v in model.state_dict().items()}
    matched = {}
    for key, value in load_state_arrays(path).items():
        name = key.removeprefix("module.")
        name = name if name.startswith("backbone.") else f"backbone.{name}"
        value = value.T if name in transpose and value.ndim == 2 else value
        if name == "backbone.patch_embed.proj.weight" and name in own and value.shape[1] < own[name].shape[1]:
            extra = np.zeros((value.shape[0], own[name].shape[1] - value.shape[1], *value.shape[2:]), value.dtype)
            value = np.concatenate([value, extra], axis=1)  # RGB weights kept, trimap channel zero
        if name in own and own[name].shape == value.shape:
            matched[name] = np.asarray(value, own[name].dtype)
    if not matched:
        raise UserError(f"model.pretrained: no tensor of {path} matches the ViTMatte backbone")
    own.update(matched)
    model.set_state_dict(own)
    return len(matched)


def load_vitmatte_weights(model, path) -> int:
    """Load a whole ViTMatte checkpoint (official, HF or ours) by name and shape; returns the tensors loaded."""
    from bgmatting.convert.checkpoint_io import load_state_arrays
    from bgmatting.convert.vitmatte import convert_vitmatte

    state, _ = convert_vitmatte(load_state_arrays(path))
    own = {k: v.numpy() for k, v in model.state_dict().items()}
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise UserError(f"model.init_from: no tensor of {path} matches the model")
    own.update(matched)
    model.set_state_dict(own)
    return len(matched)


def _nchw(array):
    return paddle.to_tensor(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


class ViTMatteTrainer(Trainer):
    """Trains a :class:`bgmatting.models.ViTMatte` with the official recipe (see the module docstring).

    Args:
        cfg: config from ``load_config(path, opts, VITMATTE_TRAIN_DEFAULTS)`` (see :func:`load_training_config`).
        save_dir, resume, fresh, source: as :class:`bgmatting.engine.trainer.Trainer`.
    Example:
        >>> ViTMatteTrainer(load_config("configs/vitmatte/tiny.yaml", None, VITMATTE_TRAIN_DEFAULTS), "out").train()
    """

    def __init__(self, cfg: dict, save_dir, resume=None, fresh: bool = False, source=None):
        super().__init__(cfg, save_dir, resume, fresh, source)
        self.scheduler.step(self.iteration)  # a resumed run continues the schedule where it stopped

    def _check_config(self):
        data = self.cfg["data"]
        crop = data["crop"]
        require(self.cfg, "data.crop", lambda value: value > 0, "positive")
        if crop % SIZE_DIVISOR or not losses.laplacian_fits(crop):
            raise UserError(f"config key data.crop must be a multiple of {SIZE_DIVISOR} and at least 64 (the "
                            f"Laplacian loss has 5 levels), got {crop}")
        if data["resolution"] < crop or not losses.laplacian_fits(data["resolution"]):
            raise UserError(f"config key data.resolution ({data['resolution']}) must be at least data.crop ({crop})")
        if data["trimap"]["max_kernel"] < 2:
            raise UserError(f"config key data.trimap.max_kernel must be at least 2, got {data['trimap']['max_kernel']}")

    def _build_model(self):
        options = {k: v for k, v in self.cfg["model"].items() if k not in ("pretrained", "init_from")}
        try:
            return build_vitmatte(options)
        except (TypeError, ValueError) as e:
            raise UserError(f"config section model: cannot build ViTMatte: {e}") from None

    def _load_initial_weights(self):
        for key, loader in (("pretrained", load_vit_pretrained), ("init_from", load_vitmatte_weights)):
            value = self.cfg["model"][key]
            if value:
                self.log.info(f"model.{key}: loaded {loader(self.model, value)} tensors from {value}")

    def _build_optimizer(self):
        optimizer, self.scheduler = build_optimizer(self.model, self.train_cfg)
        return optimizer

    def _prepare(self, batch, iteration):
        """Online trimaps, crops centred on unknown pixels, composite → (pixel_values, pha, unknown) tensors."""
        rng = np.random.default_rng([self.train_cfg["seed"], 4, iteration, self.rank])
        pha, fgr, bgr = (field.numpy() if isinstance(field, paddle.Tensor) else np.asarray(field) for field in batch)
        data = self.cfg["data"]
        image, trimap, pha = trimap_training_batch(pha, fgr, bgr, rng, data["crop"], data["trimap"]["max_kernel"])
        pixel_values = paddle.to_tensor(normalize_and_pad(image, trimap / 255.0))
        unknown = (trimap == 128).astype(np.float32)[..., None]
        return pixel_values, _nchw(pha), _nchw(unknown)

    def _forward_loss(self, pixel_values, pha, unknown):
        return losses.vitmatte_loss(self.network(pixel_values), pha, unknown, self.cfg["loss"])

    def _step(self, *batch):
        lr = float(self.optimizer.get_lr())  # the rate of this iteration's update
        terms = super()._step(*batch)
        self.scheduler.step()
        return {**terms, "lr": lr}

    def _image_panel(self, prepared) -> np.ndarray:
        """source | trimap | predicted alpha | true alpha | |error|, for the first sample of a prepared batch."""
        from bgmatting.plots import error_map, labelled_grid

        pixel_values, pha = prepared[0][:1], prepared[1][:1]
        height, width = pha.shape[2:]
        pred = self.model(pixel_values).numpy()[0, 0, :height, :width]
        inputs = pixel_values.numpy()[0, :, :height, :width]
        source = np.clip(inputs[:3].transpose(1, 2, 0) * 0.5 + 0.5, 0, 1)
        true = pha.numpy()[0, 0]
        return labelled_grid([[source, inputs[3], pred, true, error_map(pred, true)]],
                             ["source", "trimap", "predicted alpha", "true alpha", "|error|"])

    def _validate(self) -> dict:
        """Loss and SAD/MSE over the unknown region of a fixed GT trimap, averaged over the validation samples."""
        self.model.eval()
        kernel = self.cfg["data"]["trimap"]["valid_kernel"]
        totals, count = {"loss": 0.0, "sad": 0.0, "mse": 0.0}, 0
        with paddle.no_grad():
            for pha, fgr, bgr in self._valid_batches():
                pha, fgr, bgr = pha[0], fgr[0], bgr[0]
                alpha = pha[:, :, 0]
                trimap = trimap_from_alpha(alpha, kernel, kernel)
                height, width = alpha.shape
                pixel_values = normalize_and_pad(composite(fgr, alpha, bgr)[None], trimap[None] / 255.0)
                pred = self.model(paddle.to_tensor(pixel_values))[:, :, :height, :width]
                unknown = paddle.to_tensor((trimap == 128).astype(np.float32)[None, None])
                total, _ = losses.vitmatte_loss(pred, paddle.to_tensor(pha[None, None, :, :, 0]), unknown,
                                                self.cfg["loss"])
                pred = pred.numpy()[0, 0]
                totals["loss"] += float(total)
                totals["sad"] += metrics.sad(pred, alpha, trimap)
                totals["mse"] += metrics.mse(pred, alpha, trimap)
                count += 1
        return {k: v / count for k, v in totals.items()}

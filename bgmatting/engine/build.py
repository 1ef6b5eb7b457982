"""Models from the ``model`` config section through PaddleSeg's ``manager.MODELS`` registry, per-module
learning-rate groups, and initialisation from pretrained or earlier-stage weights.

Example:
    >>> from bgmatting.config import load_config
    >>> cfg = load_config("configs/bgmv2_tiny.yaml")
    >>> model = build_model(cfg["model"])
    >>> groups = parameter_groups(model, cfg["train"]["lr"])   # for paddle.optimizer.Adam(learning_rate=1.0, ...)
"""
import numpy as np

from bgmatting.engine.kinds import kind_for_training_type
from bgmatting.errors import UserError

TOP_LEVEL_MODULES = ("backbone", "aspp", "decoder", "refiner")


def model_registry():
    """PaddleSeg's ``manager.MODELS`` with the registered kinds' model classes (imported lazily; importing
    paddleseg draws random numbers, so trainers call this before seeding)."""
    from paddleseg.cvlibs import manager

    from bgmatting.models import MattingBase, MattingRefine, ViTMatte

    for component in (MattingBase, MattingRefine, ViTMatte):
        if component.__name__ not in manager.MODELS.components_dict:
            manager.MODELS.add_component(component)
    return manager.MODELS


def pretrained_by_constructor(model_cfg: dict) -> bool:
    """True when ``model.pretrained`` goes to the backbone's own loader (PaddleSeg ImageNet weights for the
    ResNet-vd backbones). Other weights load with :func:`load_matched_weights`."""
    from bgmatting.models.backbones import get_backbone

    return bool(model_cfg.get("pretrained")) and get_backbone(model_cfg["backbone"]).pretrained_loader


def build_model(model_cfg: dict):
    """Build the model of a training config's ``model`` section through the kind registry.

    Args:
        model_cfg: the ``model`` config section (see :data:`bgmatting.config.TRAIN_DEFAULTS`).
    Returns:
        a ``paddle.nn.Layer`` (MattingBase or MattingRefine), freshly initialised.
    Raises:
        UserError: unknown type or invalid option value (naming the config section).
    """
    kind = kind_for_training_type(model_cfg["type"])
    options = {**kind.options, **kind.options_from_training(model_cfg)}
    if pretrained_by_constructor(model_cfg):
        options["backbone_pretrained"] = model_cfg["pretrained"]
    try:
        return kind.build(options)
    except UserError as e:
        raise UserError(f"config section model: cannot build {model_cfg['type']}: {e}") from None
    except (ValueError, AssertionError, KeyError) as e:
        raise UserError(f"config section model: cannot build {model_cfg['type']}: {e}") from None


def parameter_groups(model, learning_rates: dict) -> list:
    """One Adam parameter group per top-level module (backbone, aspp, decoder[, refiner]).

    Paddle multiplies a group's ``learning_rate`` by the optimiser's, so use the optimiser with
    ``learning_rate=1.0`` to get exactly these rates (official: base 1e-4/5e-4/5e-4; refine
    5e-5/5e-5/1e-4/3e-4).
    """
    groups = []
    for name in TOP_LEVEL_MODULES:
        module = getattr(model, name, None)
        if module is None:
            continue
        if name not in learning_rates:
            raise UserError(f"config key train.lr.{name} is missing (the model has a {name})")
        groups.append({"params": module.parameters(), "learning_rate": float(learning_rates[name])})
    return groups


def _to_model_names(arrays: dict) -> dict:
    """Official/torchvision/DeepLabV3 key names → ours: BN renames, ``module.`` stripped, VainF DeepLabV3's
    ``classifier.classifier.0`` → ``aspp``, bare backbone keys (``conv1.…``, ``layer1.…``, ``features.…``)
    prefixed with ``backbone.``."""
    from bgmatting.convert.bgmv2 import rename_torch_keys

    renamed = {}
    for key, value in rename_torch_keys(arrays).items():
        key = key.replace("classifier.classifier.0.", "aspp.")
        if key.split(".")[0] not in TOP_LEVEL_MODULES:
            key = "backbone." + key
        renamed[key] = value
    return renamed


def load_matched_weights(model, path, what: str) -> int:
    """Load every tensor of ``path`` whose (renamed) name and shape match the model (official
    ``load_matched_state_dict``); e.g. a MattingBase checkpoint into MattingRefine, or DeepLabV3 weights
    into the backbone + ASPP (the 3-channel first conv is skipped; ours takes 6 channels).

    Args:
        path: .pdparams / .pth / .safetensors file.
        what: config key for messages (e.g. ``model.pretrained``).
    Returns:
        the number of tensors loaded.
    Raises:
        UserError: unreadable file or no tensor matches.
    """
    from bgmatting.convert.checkpoint_io import load_state_arrays

    arrays = _to_model_names(load_state_arrays(path))
    own = model.state_dict()
    matched = {k: v for k, v in arrays.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not matched:
        raise UserError(f"{what}: no tensor of {path} matches the model (first keys: "
                        f"{', '.join(sorted(arrays)[:3])})")
    # a complete dict (own values where nothing matched) keeps Paddle from warning about every missing key
    full = {k: v.numpy() for k, v in own.items()}
    full.update({k: np.asarray(v, dtype=full[k].dtype) for k, v in matched.items()})
    model.set_state_dict(full)
    return len(matched)

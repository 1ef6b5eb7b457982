"""YAML configs with ``_base_`` inheritance, ``--opts a.b=c`` overrides and a schema of defaults.

A config file is a nested mapping. ``_base_: other.yaml`` (or a list of files, relative to the file that
names them) is loaded first and the file's own keys are merged over it: mappings merge key by key, any other
value (lists included) replaces the inherited one. ``--opts train.iters=10 model.backbone=mobilenetv2``
overrides after that; each value is parsed as YAML (``10`` → int, ``[1, 2]`` → list, ``null`` → None).
String values may name environment variables as ``${NAME}`` or ``${NAME:-default}`` (dataset roots).

The result is validated against a *schema of defaults*, a nested dict whose keys are every allowed key and
whose values are the defaults: an unknown key, or a value whose type differs from the default's, raises
:class:`bgmatting.errors.UserError` naming the key and the file (or ``--opts``) it came from. A default of
``None`` accepts any value; a mapping default whose only key is ``"*"`` accepts any keys (free-form).

Example:
    >>> from bgmatting.config import load_config, TRAIN_DEFAULTS
    >>> cfg = load_config("configs/bgmv2/base_resnet50_videomatte240k.yaml", ["train.iters=10"], TRAIN_DEFAULTS)
    >>> cfg["train"]["iters"]
    10
"""
import copy
import os
import re
from pathlib import Path

import yaml

from bgmatting.data.io import atomic_path
from bgmatting.errors import UserError

BASE_KEY = "_base_"
FREE_FORM = "*"

_AFFINE_FGR = {"degrees": [-5.0, 5.0], "translate": [0.1, 0.1], "scale": [0.4, 1.0], "shear": [-5.0, 5.0]}
_AFFINE_BGR = {"degrees": [-5.0, 5.0], "translate": [0.1, 0.1], "scale": [1.0, 2.0], "shear": [-5.0, 5.0]}
_SPLIT = {"root": None, "backgrounds": None}  # root: ROOT/{train,valid or test} holding fgr/ and pha/

#: Schema of defaults for training BackgroundMattingV2 (official train_base.py values unless noted).
TRAIN_DEFAULTS = {
    "model": {
        "type": "MattingBase",
        "backbone": "resnet50",
        "backbone_scale": 0.25,
        "refine_mode": "sampling",
        "refine_sample_pixels": 80000,
        "refine_threshold": 0.1,
        "refine_kernel_size": 3,
        "refine_prevent_oversampling": True,
        "pretrained": None,  # backbone (+ASPP) init: ImageNet/DeepLabV3 .pth/.pdparams, PaddleSeg weights for *_vd
        "init_from": None,  # whole-model weights to start from (e.g. the previous stage's best)
    },
    "data": {
        "train": dict(_SPLIT),
        "valid": dict(_SPLIT),
        "resolution": 512,  # side of the affine-and-resize output (official: 512 base, 2048 refine)
        "crop": {"min": 256, "max": 512, "multiple": 1},  # refine: 1024, 2048, 4
        "valid_samples": 50,  # SampleDataset(valid, 50)
        "num_workers": 0,
        "max_bad_share": 0.01,  # bad files (skipped with a warning) allowed, as a share of a split's files
    },
    "augment": {
        "fgr": {"affine": _AFFINE_FGR, "hflip": 0.5, "box_blur": {"prob": 0.1, "max_radius": 5},
                "sharpen": 0.1, "color_jitter": [0.15, 0.15, 0.15, 0.05]},
        "bgr": {"affine": _AFFINE_BGR, "hflip": 0.5, "box_blur": {"prob": 0.1, "max_radius": 5},
                "sharpen": 0.1, "color_jitter": [0.15, 0.15, 0.15, 0.05]},
        "valid_fgr_scale": [0.3, 1.0],
        "valid_bgr_scale": [1.0, 1.2],
        "plate": {
            "shadow": {"prob": 0.3, "strength": 0.3, "degrees": [-5.0, 5.0], "translate": [0.2, 0.2],
                       "scale": [0.5, 1.5], "shear": [-5.0, 5.0], "blur": [20, 40]},
            "noise": {"prob": 0.4, "sigma": 0.03},
            "jitter": {"prob": 0.8, "brightness": 0.18, "contrast": 0.18, "saturation": 0.18, "hue": 0.1},
            "misalign": {"prob": 0.3, "degrees": [-1.0, 1.0], "translate": [0.01, 0.01]},
        },
    },
    "loss": {"pha_l1": 1.0, "pha_sobel": 1.0, "pha_laplacian": 0.0, "fgr_l1": 1.0, "err_mse": 1.0},
    "train": {
        "iters": 1000,
        "batch_size": 8,
        "lr": {"backbone": 1e-4, "aspp": 5e-4, "decoder": 5e-4, "refiner": 3e-4},
        "save_interval": 500,
        "keep_checkpoints": 3,
        "log_interval": 10,
        "val_interval": 500,
        "image_interval": 0,  # VisualDL prediction images every N iterations (0: none)
        "seed": 0,
        "amp": True,  # used only on GPU
        "sync_bn": True,  # SyncBatchNorm when running on more than one process
    },
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot, YAML 1.1 would say string) as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|"
               r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$|^[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?$|"
               r"^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = _yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"config file is not valid YAML: {path}: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file must hold a mapping at the top level: {path}")
    return data


def _merge(target: dict, source: dict, origins, origin: str, prefix: str = "") -> None:
    """Merge ``source`` into ``target`` in place, recording in ``origins`` (unless None) where keys came from."""
    for key, value in source.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, origins, origin, dotted + ".")
        else:
            target[key] = copy.deepcopy(value)
            if origins is None:
                continue
            origins[dotted] = origin
            if isinstance(value, dict):
                _record(value, origins, origin, dotted + ".")


def _record(mapping: dict, origins: dict, origin: str, prefix: str) -> None:
    for key, value in mapping.items():
        origins[f"{prefix}{key}"] = origin
        if isinstance(value, dict):
            _record(value, origins, origin, f"{prefix}{key}.")


def _load_with_bases(path: Path, origins: dict, chain: tuple = ()) -> dict:
    path = path.resolve()
    if path in chain:
        raise UserError(f"config _base_ cycle: {' -> '.join(str(p) for p in chain + (path,))}")
    data = _load_yaml(path)
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise UserError(f"config key {BASE_KEY} must be a file name or a list of them: {path}")
    merged = {}
    for base in bases:
        # the base's own load recorded its keys' origins already
        _merge(merged, _load_with_bases(path.parent / base, origins, chain + (path,)), None, "")
    _merge(merged, data, origins, str(path))
    return merged


def parse_opts(opts) -> dict:
    """``["a.b=1", "c=[1, 2]"]`` → ``{"a": {"b": 1}, "c": [1, 2]}`` with YAML-typed values.

    Raises:
        UserError: an item without ``=`` or with an empty key.
    """
    result = {}
    for item in opts or []:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"--opts items must look like key.sub=value, got {item!r}")
        try:
            value = _yaml(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--opts sets both {part} and keys under it: {item!r}")
        node[parts[-1]] = value
    return result


def _type_ok(default, value) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def validate(config: dict, schema: dict, origins: dict, prefix: str = "") -> None:
    """Raise UserError for the first key of ``config`` not in ``schema`` or of the wrong type (recursive)."""
    if set(schema) == {FREE_FORM}:
        return
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        where = origins.get(dotted, "the defaults")
        if key not in schema:
            known = ", ".join(sorted(f"{prefix}{k}" for k in schema))
            raise UserError(f"unknown config key '{dotted}' in {where} (known keys here: {known})")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise UserError(f"config key '{dotted}' in {where} must be a mapping, got {value!r}")
            validate(value, default, origins, dotted + ".")
        elif not _type_ok(default, value):
            raise UserError(f"config key '{dotted}' in {where} expects {type(default).__name__}, got {value!r}")


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value, dotted=""):
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string of a nested config."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{dotted}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, dotted) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match):
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise UserError(f"config key '{dotted.rstrip('.')}' uses environment variable {name}, which is not set")
        return default

    return _ENV_PATTERN.sub(replace, value)


def _concrete(schema: dict) -> dict:
    """The defaults with free-form placeholders removed."""
    return {k: _concrete(v) if isinstance(v, dict) else copy.deepcopy(v)
            for k, v in schema.items() if k != FREE_FORM}


def load_config(path=None, opts=None, defaults: dict = None) -> dict:
    """Load ``path`` (with its ``_base_`` chain), apply ``opts`` and fill in and check against ``defaults``.

    Args:
        path: YAML file, or None for the defaults alone.
        opts: list of ``"a.b=value"`` strings (values parsed as YAML).
        defaults: schema of defaults (see the module docstring); ``TRAIN_DEFAULTS`` when None.
    Returns:
        A nested dict holding every key of ``defaults``.
    Raises:
        UserError: missing/invalid file, ``_base_`` cycle, unknown key or wrong type (naming key and file).
    """
    defaults = TRAIN_DEFAULTS if defaults is None else defaults
    origins = {}
    loaded = _load_with_bases(Path(path), origins) if path is not None else {}
    _merge(loaded, parse_opts(opts), origins, "--opts")
    validate(loaded, defaults, origins)
    config = _concrete(defaults)
    _merge(config, loaded, None, "")
    return _expand_env(config)


def get(config: dict, dotted: str):
    """``get(cfg, "train.lr.backbone")`` → ``cfg["train"]["lr"]["backbone"]``."""
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def dump_config(config: dict, path) -> None:
    """Write ``config`` as YAML atomically (the resolved config saved beside each training run)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

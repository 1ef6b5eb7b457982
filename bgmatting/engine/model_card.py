"""The model card: the small ``model.yaml`` every model the project writes carries beside its weights.

A card says what the weights are, so that no tool has to be told again::

    format: 1
    kind: mattingrefine            # a registered model kind (bgmatting.engine.kinds)
    backbone: resnet50             # BackgroundMattingV2 kinds only
    options:                       # every constructor option of the kind
      backbone_scale: 0.25
      refine_mode: sampling
      ...
    weights: model.pdparams        # file name inside the folder (an export: export.json names its files)
    preprocessing: {...}           # what the model expects (range, padding, normalisation)
    provenance:                    # where it came from
      tool: train                  # train | convert_weights | export
      source: configs/bgmv2_tiny.yaml
      iteration: 200
      config_hash: 3f0c…           # training checkpoints: hash of the resolved config (resume check)
      bgmatting_version: 0.1.0

Functions here only read and write cards; what a kind's options mean is the registry's business.
"""
import hashlib
import json
from pathlib import Path

import yaml

from bgmatting.data.io import atomic_path
from bgmatting.errors import UserError

CARD_NAME = "model.yaml"
CARD_FORMAT = 1

#: training-config ``model.type`` → registered model kind
TRAINING_TYPES = {"MattingBase": "mattingbase", "MattingRefine": "mattingrefine", "ViTMatte": "vitmatte"}
#: keys of a training config's ``model`` section that are not model options
TRAINING_ONLY_KEYS = ("type", "pretrained", "init_from")


def config_hash(config: dict) -> str:
    """sha256 (first 16 hex digits) of a resolved config, independent of key order."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_card(folder, card: dict) -> Path:
    """Write ``card`` as ``folder/model.yaml`` atomically; returns its path."""
    path = Path(folder) / CARD_NAME
    with atomic_path(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(dict(card, format=CARD_FORMAT), sort_keys=False), encoding="utf-8")
    return path


def read_card(path) -> dict:
    """Read a card: ``path`` is the ``model.yaml`` itself or a folder holding one.

    Raises:
        UserError: missing, not YAML, not a mapping, unknown format or no ``kind``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CARD_NAME
    if not path.is_file():
        raise UserError(f"no model card {path}")
    try:
        card = yaml.safe_load(path.read_text(encoding="utf-8")[:1_000_000])
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"model card {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("kind"), str):
        raise UserError(f"model card {path}: unknown format {card.get('format') if isinstance(card, dict) else card!r}"
                        f" (expected format {CARD_FORMAT} with a 'kind')")
    if not isinstance(card.get("options", {}), dict):
        raise UserError(f"model card {path}: 'options' must be a mapping")
    return card


def training_card(model_cfg: dict, provenance: dict) -> dict:
    """The card of a training checkpoint from the training config's ``model`` section.

    Args:
        model_cfg: ``cfg["model"]`` (``type`` MattingBase / MattingRefine / ViTMatte and its options).
        provenance: e.g. ``{"tool": "train", "source": config path, "iteration": 200, "config_hash": …}``.
    Returns:
        the card dict (``kind``, ``backbone`` for BGMv2, ``options``, ``weights``, ``provenance``).
    """
    from bgmatting import __version__

    kind = TRAINING_TYPES.get(model_cfg.get("type"))
    if kind is None:
        raise UserError(f"config key model.type: unknown model '{model_cfg.get('type')}' "
                        f"(known: {', '.join(TRAINING_TYPES)})")
    options = {k: v for k, v in model_cfg.items() if k not in TRAINING_ONLY_KEYS}
    card = {"kind": kind}
    if kind != "vitmatte":
        card["backbone"] = options.pop("backbone")
        if kind == "mattingbase":
            options = {}
    card.update(options=options, weights="model.pdparams",
                provenance={**provenance, "bgmatting_version": __version__})
    return card

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
from bgmatting.engine.kinds import get_kind, kind_for_training_type
from bgmatting.errors import UserError

CARD_NAME = "model.yaml"
CARD_FORMAT = 1


def config_hash(config: dict) -> str:
    """sha256 (first 16 hex digits) of a resolved config, independent of key order."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_card(target, card: dict) -> Path:
    """Write ``card`` atomically as ``target/model.yaml`` (``target`` a folder) or as ``target`` itself (a path
    ending in ``.yaml``: a weights file's sidecar); returns the card's path."""
    path = Path(target)
    if path.suffix != ".yaml":
        path = path / CARD_NAME
    with atomic_path(path) as tmp:
        plain = json.loads(json.dumps(dict(card, format=CARD_FORMAT), default=str))  # tuples → lists
        Path(tmp).write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
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
    kind = kind_for_training_type(model_cfg.get("type"))
    return make_card(kind.name, kind.options_from_training(model_cfg), "model.pdparams", provenance)


def make_card(kind: str, options: dict, weights: str, provenance: dict) -> dict:
    """A card: ``kind``, ``backbone`` (when the kind has one), the other ``options``, ``weights``, ``provenance``
    (with this package's version added) and the kind's export pre-processing when it has one."""
    from bgmatting import __version__

    options = dict(options)
    card = {"kind": kind}
    if "backbone" in options:
        card["backbone"] = options.pop("backbone")
    card.update(options=options, weights=weights)
    signature = get_kind(kind).export
    if signature is not None:
        card["preprocessing"] = dict(signature.preprocessing)
    card["provenance"] = {**provenance, "bgmatting_version": __version__}
    return card

"""Where a model's weights and settings are, from any path a user gives as ``--model-checkpoint``.

:func:`locate` accepts:
- a model folder: ``model.yaml`` (the card, :mod:`bgmatting.engine.model_card`) + the weights it names;
- an export folder: ``export.json`` (+ ``model.yaml``) and the static program (``tools/export.py``);
- a training run folder (``tools/train.py --save-dir``): its ``best_model/``, else ``latest/``;
- a training checkpoint folder of an older run (``model.pdparams`` + ``state.json``, no card): the run's
  ``config.yaml`` gives the settings;
- a Hugging Face model folder: ``config.json`` + ``model.safetensors``;
- a weights file (official ``.pth``, the Paddle port's or our ``.pdparams``, ``.safetensors``), with its sidecar
  card when there is one (``NAME.yaml`` beside ``NAME.pdparams``, or a ``model.yaml`` naming the file).
It only finds files; what the weights are is decided by the registry (:mod:`bgmatting.engine.loading`).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bgmatting.engine.model_card import CARD_NAME, read_card, training_card
from bgmatting.errors import UserError

EXPORT_METADATA = "export.json"
RUN_CHECKPOINTS = ("best_model", "latest")
LEGACY_WEIGHTS = "model.pdparams"
HF_WEIGHTS, HF_CONFIG = "model.safetensors", "config.json"


@dataclass
class ModelSource:
    """What a ``--model-checkpoint`` path points at.

    Attributes:
        path: the path as the user gave it (for messages).
        weights: the weights file, or None for an export.
        export_dir: the export folder, or None for weights.
        card: the model card found beside the weights (dict), or None (official checkpoints).
    """

    path: str
    weights: Optional[Path] = None
    export_dir: Optional[Path] = None
    card: Optional[dict] = None
    _arrays: Optional[dict] = field(default=None, repr=False)

    def arrays(self) -> dict:
        """The raw ``{name: numpy array}`` of the weights file, read once (safely, no code runs)."""
        if self._arrays is None:
            from bgmatting.convert.checkpoint_io import load_state_arrays

            self._arrays = load_state_arrays(self.weights)
        return self._arrays


def _run_config_card(run_dir: Path, checkpoint: Path) -> Optional[dict]:
    """The card of an older training checkpoint (no model.yaml) from its run's ``config.yaml``."""
    import yaml

    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return None
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        return None
    return training_card(config["model"], {"tool": "train", "source": str(config_path),
                                           "checkpoint": str(checkpoint)})


def _sidecar(weights: Path) -> Optional[dict]:
    """The card of a weights file: ``NAME.yaml`` beside it, or the folder's ``model.yaml`` when it names it."""
    own = weights.with_suffix(".yaml")
    if own.is_file():
        return read_card(own)
    folder_card = weights.parent / CARD_NAME
    if folder_card.is_file():
        card = read_card(folder_card)
        if card.get("weights") == weights.name:
            return card
    return None


def _from_folder(folder: Path, path: str) -> ModelSource:
    if (folder / EXPORT_METADATA).is_file():
        card = read_card(folder) if (folder / CARD_NAME).is_file() else None
        return ModelSource(path, export_dir=folder, card=card)
    if (folder / CARD_NAME).is_file():
        card = read_card(folder)
        weights = folder / str(card.get("weights", LEGACY_WEIGHTS))
        if not weights.is_file() or weights.parent.resolve() != folder.resolve():
            raise UserError(f"model folder {path}: its card names weights {card.get('weights')!r}, which are not "
                            "in the folder")
        return ModelSource(path, weights=weights, card=card)
    for name in RUN_CHECKPOINTS:
        for candidate in (folder / name, folder / f"{name}.old"):  # .old: a run killed mid-swap
            if (candidate / CARD_NAME).is_file() or (candidate / LEGACY_WEIGHTS).is_file():
                return _from_folder(candidate, path)
    if (folder / LEGACY_WEIGHTS).is_file():
        return ModelSource(path, weights=folder / LEGACY_WEIGHTS, card=_run_config_card(folder.parent, folder))
    if (folder / HF_WEIGHTS).is_file():
        return ModelSource(path, weights=folder / HF_WEIGHTS)
    raise UserError(f"{path} is a folder but holds no model: looked for {CARD_NAME}, {EXPORT_METADATA}, "
                    f"{'/, '.join(RUN_CHECKPOINTS)}/, {LEGACY_WEIGHTS} and {HF_WEIGHTS}")


def locate(path) -> ModelSource:
    """Find the weights (or export) and the card behind a ``--model-checkpoint`` path.

    Raises:
        UserError: nothing there, or a folder that holds no model (naming what was looked for).
    """
    if path is None:
        raise UserError("no checkpoint given")
    text, resolved = str(path), Path(path)
    if resolved.is_dir():
        return _from_folder(resolved, text)
    if resolved.is_file():
        return ModelSource(text, weights=resolved, card=_sidecar(resolved))
    raise UserError(f"checkpoint not found: {text}")

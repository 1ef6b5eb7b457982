"""Write weights together with their model card, atomically: a model folder, or a weights file + sidecar.

- ``DST`` ending in ``.pdparams`` → ``DST`` and ``DST`` with ``.yaml`` (the sidecar card);
- any other ``DST`` → a folder ``DST/`` holding ``model.pdparams`` and ``model.yaml`` (built beside it under a
  hidden name, then renamed: a reader never sees half of it).
"""
import os
import shutil
import tempfile
from pathlib import Path

from bgmatting.engine.model_card import CARD_NAME, write_card
from bgmatting.errors import UserError

WEIGHTS_NAME = "model.pdparams"


def save_model(state: dict, card: dict, dst, overwrite: bool = True) -> Path:
    """Save ``state`` ({name: numpy array}) and ``card`` at ``dst``; returns the weights file's path.

    Raises:
        UserError: ``dst`` exists as a file where a folder is asked for (or the reverse), or exists and
            ``overwrite`` is False.
    """
    from bgmatting.convert import save_state

    dst = Path(dst)
    if dst.suffix == ".pdparams":
        if dst.is_dir():
            raise UserError(f"{dst} is a folder; give a .pdparams file name or another folder")
        sidecar = dst.with_suffix(".yaml")
        save_state(state, dst)
        write_card(sidecar, dict(card, weights=dst.name))
        return dst
    if dst.exists() and (not dst.is_dir() or not overwrite):
        raise UserError(f"{dst} already exists" + ("" if dst.is_dir() else " and is not a folder"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        save_state(state, staging / WEIGHTS_NAME)
        write_card(staging, dict(card, weights=WEIGHTS_NAME))
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dst / WEIGHTS_NAME


__all__ = ["save_model", "WEIGHTS_NAME", "CARD_NAME"]

"""What every training stage shares: its config, where it writes, and the checkpoint it starts from.

A stage runs ``tools/train.py`` with ``--config CONFIG --save-dir SAVE_DIR`` and, when the stage continues
an earlier one, ``--opts model.init_from=<previous stage>/best_model/model.pdparams``. Extra command-line
arguments go to ``tools/train.py`` after these (so ``--save-dir``/``--opts`` given by the user win).
"""
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bgmatting.errors import UserError, cli_main  # noqa: E402

BEST_MODEL = Path("best_model") / "model.pdparams"


@dataclass
class Stage:
    """One training stage.

    Args:
        name: e.g. ``"stage2"``.
        config: YAML config, relative to the repository root.
        save_dir: output folder, relative to the working directory.
        previous: save_dir of the stage whose best model initialises this one, or None.
    """

    name: str
    config: str
    save_dir: str
    previous: Optional[str] = None


def train_arguments(stage: Stage, argv) -> list:
    """The ``tools/train.py`` arguments for ``stage`` followed by the user's ``argv``.

    Raises:
        UserError: the previous stage's best model is missing and the user gave no ``model.init_from``.
    """
    argv = list(argv)
    arguments = ["--config", str(ROOT / stage.config), "--save-dir", stage.save_dir]
    if stage.previous and not any(a.startswith("model.init_from=") for a in argv):
        best = Path(stage.previous) / BEST_MODEL
        if not best.is_file():
            raise UserError(f"{stage.name} starts from the previous stage's best model, not found: {best}; run that "
                            f"stage first or pass --opts model.init_from=PATH")
        arguments += ["--opts", f"model.init_from={best}"]
    return arguments + argv


@cli_main
def run(stage: Stage, argv=None):
    """Run ``stage`` with ``tools/train.py`` (argv defaults to ``sys.argv[1:]``)."""
    from tools.train import main as train_main

    return train_main.__wrapped__(train_arguments(stage, sys.argv[1:] if argv is None else argv))

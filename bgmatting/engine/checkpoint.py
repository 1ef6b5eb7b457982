"""Training checkpoints as folders, written atomically: ``model.pdparams``, ``model.pdopt``, ``state.json``.

A checkpoint folder is first written as ``NAME.tmp`` and then swapped in (the old one is renamed to
``NAME.old`` and removed after), so a run killed at any moment leaves a complete ``latest`` (or
``latest.old``) behind. Optimizer accumulators are stored under the model's *structured* parameter names
(``backbone.conv1.weight_moment1_0``), not Paddle's process-global ones (``conv2d_0.w_0…``), so they load
into a model built in another process or after other models were built.
"""
import json
import shutil
from pathlib import Path

import paddle

from bgmatting.errors import UserError

MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = "model.pdparams", "model.pdopt", "state.json"


def _rename_optimizer_keys(state: dict, model, to_structured: bool) -> dict:
    pairs = [(p.name, name) for name, p in model.named_parameters()]
    mapping = sorted(pairs if to_structured else [(b, a) for a, b in pairs], key=lambda pair: -len(pair[0]))
    renamed = {}
    for key, value in state.items():
        for old, new in mapping:
            if key.startswith(old + "_"):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed


def save_checkpoint(folder, model, optimizer=None, state: dict = None, scaler=None) -> Path:
    """Write ``folder/{model.pdparams, model.pdopt, state.json}`` atomically (folder swap).

    Args:
        model: the (unwrapped) ``paddle.nn.Layer``; optimizer: optional; state: JSON-able dict (iteration,
        metrics…); scaler: optional ``paddle.amp.GradScaler`` whose state goes into state.json.
    """
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    paddle.save(model.state_dict(), str(tmp / MODEL_FILE))
    if optimizer is not None:
        paddle.save(_rename_optimizer_keys(optimizer.state_dict(), model, True), str(tmp / OPTIMIZER_FILE))
    state = dict(state or {})
    if scaler is not None:
        state["scaler"] = {k: float(v) if not isinstance(v, bool) else v for k, v in scaler.state_dict().items()
                           if isinstance(v, (int, float, bool))}
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def find_checkpoint(folder):
    """``folder`` if it holds a complete checkpoint, else its ``.old`` twin left by a kill mid-swap, else None."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / STATE_FILE).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def load_checkpoint(folder, model, optimizer=None, scaler=None) -> dict:
    """Restore model (and optimizer/scaler when given and saved) from a checkpoint folder; returns its state.

    Raises:
        UserError: the folder is not a complete checkpoint.
    """
    found = find_checkpoint(folder)
    if found is None:
        raise UserError(f"--resume-model: not a training checkpoint folder (needs {MODEL_FILE} and "
                        f"{STATE_FILE}): {folder}")
    model.set_state_dict(paddle.load(str(found / MODEL_FILE)))
    state = json.loads((found / STATE_FILE).read_text())
    if optimizer is not None and (found / OPTIMIZER_FILE).is_file():
        optimizer.set_state_dict(_rename_optimizer_keys(paddle.load(str(found / OPTIMIZER_FILE)), model, False))
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return state

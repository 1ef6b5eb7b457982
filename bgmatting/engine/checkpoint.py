"""Training checkpoints as folders, written atomically: ``model.pdparams``, ``model.pdopt``, ``state.json`` and the
model card ``model.yaml`` (:mod:`bgmatting.engine.model_card`).

A checkpoint folder is first written as ``NAME.tmp`` and then swapped in (the old one is renamed to
``NAME.old`` and removed after), so a run killed at any moment leaves a complete ``latest`` (or
``latest.old``) behind. Optimizer accumulators are stored under the model's *structured* parameter names
(``backbone.conv1.weight_moment1_0``), not Paddle's process-global ones (``conv2d_0.w_0…``), so they load
into a model built in another process or after other models were built. Loading checks that the weights and the
optimizer state fit the model and says in one line what does not.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import paddle

from bgmatting.engine.model_card import write_card
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


def save_checkpoint(folder, model, optimizer=None, state: dict = None, scaler=None, card: dict = None) -> Path:
    """Write ``folder/{model.pdparams, model.pdopt, state.json, model.yaml}`` atomically (folder swap).

    Args:
        model: the (unwrapped) ``paddle.nn.Layer``; optimizer: optional; state: JSON-able dict (iteration,
        metrics…); scaler: optional ``paddle.amp.GradScaler`` whose state goes into state.json; card: optional
        model card (:func:`bgmatting.engine.model_card.training_card`) written as ``model.yaml``.
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
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1, default=str))
    if card is not None:
        write_card(tmp, card)
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


def read_state(folder) -> dict:
    """The ``state.json`` of a checkpoint folder (iteration, best metrics, config hash and config…)."""
    return json.loads((Path(folder) / STATE_FILE).read_text())


def load_checkpoint(folder, model, optimizer=None, scaler=None) -> dict:
    """Restore model (and optimizer/scaler when given and saved) from a checkpoint folder; returns its state.

    Raises:
        UserError: the folder is not a complete checkpoint, or its weights or optimizer state do not fit.
    """
    found = find_checkpoint(folder)
    if found is None:
        raise UserError(f"--resume: not a training checkpoint folder (needs {MODEL_FILE} and {STATE_FILE}): {folder}")
    weights = paddle.load(str(found / MODEL_FILE))
    _check_fit(weights, {k: v.shape for k, v in model.state_dict().items()}, found / MODEL_FILE, "the model")
    model.set_state_dict(weights)
    state = read_state(found)
    if optimizer is not None and (found / OPTIMIZER_FILE).is_file():
        saved = paddle.load(str(found / OPTIMIZER_FILE))
        _check_optimizer_fit(saved, model, found / OPTIMIZER_FILE)
        try:
            optimizer.set_state_dict(_rename_optimizer_keys(saved, model, False))
        except (ValueError, TypeError, KeyError, RuntimeError) as error:
            raise UserError(f"optimizer state {found / OPTIMIZER_FILE} does not fit this optimizer "
                            f"({str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}); "
                            "use --fresh, or resume from a checkpoint of this model") from None
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return state


def _shape(value) -> list:
    return list(value.shape) if hasattr(value, "shape") else list(np.shape(value))


def _check_fit(saved: dict, expected: dict, path, what: str) -> None:
    """Raise one UserError line when the tensors in ``saved`` are not exactly ``expected`` ({name: shape})."""
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    wrong = [k for k in expected if k in saved and _shape(saved[k]) != list(expected[k])]
    if not (missing or extra or wrong):
        return
    if wrong:
        detail = f"{wrong[0]} is {_shape(saved[wrong[0]])} there but {list(expected[wrong[0]])} here"
    else:
        detail = f"{missing[0]} is missing" if missing else f"{extra[0]} is not in {what}"
    count = len(missing) + len(extra) + len(wrong)
    raise UserError(f"checkpoint {path} does not fit {what}: {detail} ({count} tensor(s) differ); resume only a "
                    "checkpoint of the same model, or start with --fresh")


def _check_optimizer_fit(saved: dict, model, path) -> None:
    """Raise one UserError line unless every moment in ``saved`` (structured names, as written by
    :func:`save_checkpoint`) has the shape of its parameter of ``model``."""
    shapes = {name: list(p.shape) for name, p in model.named_parameters()}
    for key, value in saved.items():
        if "_moment" not in key:
            continue
        owner = max((name for name in shapes if key.startswith(name + "_")), key=len, default=None)
        if owner is None:
            problem = f"{key} belongs to no parameter"
        elif _shape(value) != shapes[owner]:
            problem = f"the moment of {owner} is {_shape(value)} there but {shapes[owner]} here"
        else:
            continue
        raise UserError(f"optimizer state {path} does not fit the model: {problem}; resume only a checkpoint of the "
                        "same model, or start with --fresh")

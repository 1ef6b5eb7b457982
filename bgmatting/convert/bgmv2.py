"""Official BackgroundMattingV2 checkpoints (PyTorch ``.pth`` or the earlier Paddle port's ``.pdparams``) →
state dicts for :class:`bgmatting.models.MattingRefine` / :class:`MattingBase`.

The module trees are identical, so conversion is renaming only: BatchNorm ``running_mean → _mean``,
``running_var → _variance``, ``num_batches_tracked`` dropped, a DataParallel ``module.`` prefix stripped.
"""
import numpy as np

from bgmatting.errors import UserError

_RENAMES = ((".running_mean", "._mean"), (".running_var", "._variance"))


def rename_torch_keys(arrays: dict) -> dict:
    """Apply the torch → Paddle BatchNorm renames, drop ``num_batches_tracked``, strip ``module.``."""
    out = {}
    for key, value in arrays.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith("module."):
            key = key[len("module."):]
        for old, new in _RENAMES:
            if key.endswith(old):
                key = key[: -len(old)] + new
        out[key] = value
    return out


def detect_bgmv2_backbone(arrays: dict) -> str:
    """The registered backbone (:mod:`bgmatting.models.backbones`) whose key signature the state dict has.

    Raises:
        UserError: the keys are not those of a BackgroundMattingV2 model of a registered backbone.
    """
    from bgmatting.models.backbones import detect_backbone

    return detect_backbone(arrays)


def has_refiner(arrays: dict) -> bool:
    """True when the checkpoint holds refiner weights (a MattingRefine checkpoint)."""
    return any(k.startswith("refiner.") for k in arrays)


def _names(keys, limit=6):
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" … (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_against_model(arrays: dict, expected: dict, what: str) -> None:
    """Raise UserError naming missing keys, unexpected keys and shape mismatches against ``expected``
    (a ``{name: shape}`` dict from the target model)."""
    missing = set(expected) - set(arrays)
    unexpected = set(arrays) - set(expected)
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    mismatched = [f"{k} {list(arrays[k].shape)} vs model {list(expected[k])}"
                  for k in sorted(set(arrays) & set(expected)) if tuple(arrays[k].shape) != tuple(expected[k])]
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched[:4]))
    if problems:
        raise UserError(f"checkpoint does not fit {what}: " + " | ".join(problems))


def convert_bgmv2(arrays: dict, backbone: str = None):
    """Convert a BackgroundMattingV2 state dict.

    Args:
        arrays: ``{name: np.ndarray}`` as read by :func:`bgmatting.convert.checkpoint_io.load_state_arrays`.
        backbone: expected backbone; inferred when None, and checked against the keys when given.
    Returns:
        (state, info): ``state`` = ``{paddle_name: float32/int array}`` that ``model.set_state_dict`` accepts;
        ``info`` = dict(model_type='mattingrefine'|'mattingbase', backbone=..., refine_kernel_size=1|3 (refine
        only), tensors=N, parameters=N).
    Raises:
        UserError: wrong model, wrong backbone, missing/unexpected keys, shape mismatch.
    """
    from bgmatting.models import MattingBase, MattingRefine

    state = rename_torch_keys(arrays)
    found = detect_bgmv2_backbone(state)
    if backbone is not None and backbone != found:
        raise UserError(f"--backbone {backbone} given but the checkpoint holds a {found} model")
    refine = has_refiner(state)
    kernel = int(state["refiner.conv1.weight"].shape[-1]) if "refiner.conv1.weight" in state else None
    if kernel not in (None, 1, 3):
        raise UserError(f"refiner kernel size {kernel} in the checkpoint; BackgroundMattingV2 uses 1 or 3")
    model = MattingRefine(found, refine_kernel_size=kernel) if refine else MattingBase(found)
    model_type = "mattingrefine" if refine else "mattingbase"
    check_against_model(state, {k: v.shape for k, v in model.state_dict().items()}, f"{model_type}({found})")
    state = {k: (v.astype(np.float32) if v.dtype in (np.float16, np.float64) else v) for k, v in state.items()}
    info = dict(model_type=model_type, backbone=found, tensors=len(state),
                **({"refine_kernel_size": kernel} if refine else {}),
                parameters=int(sum(v.size for k, v in state.items() if not k.endswith(("_mean", "_variance")))))
    return state, info

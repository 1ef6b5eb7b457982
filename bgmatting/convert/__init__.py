"""Checkpoint conversion: official PyTorch / Hugging Face / earlier Paddle checkpoints → our Paddle state dicts."""
from bgmatting.convert.checkpoint_io import load_state_arrays

__all__ = ["load_state_arrays", "convert_checkpoint", "save_state"]


def convert_checkpoint(path, backbone=None):
    """Read any supported checkpoint safely and convert it for the model family it holds.

    Args:
        path: checkpoint file (.pth / .safetensors / .pdparams).
        backbone: for BackgroundMattingV2 files, the expected backbone (checked); None to infer.
    Returns:
        (state, info): ``state`` = ``{name: np.ndarray}`` for ``model.set_state_dict``; ``info`` = dict with at
        least ``family`` ('bgmv2' | 'vitmatte'), ``model_type``, ``tensors`` and ``parameters``.
    Raises:
        UserError: unreadable, unsafe or mismatching checkpoint.
    """
    from bgmatting.convert.bgmv2 import convert_bgmv2

    arrays = load_state_arrays(path)
    try:
        from bgmatting.convert import vitmatte
    except ImportError:
        vitmatte = None
    if vitmatte is not None and vitmatte.is_vitmatte_checkpoint(arrays):
        state, info = vitmatte.convert_vitmatte(arrays)
        return state, dict(info, family="vitmatte")
    state, info = convert_bgmv2(arrays, backbone)
    return state, dict(info, family="bgmv2")


def save_state(state: dict, path) -> None:
    """Atomically write ``state`` ({name: np.ndarray}) as a Paddle ``.pdparams`` file."""
    import paddle

    from bgmatting.data.io import atomic_path

    with atomic_path(path) as tmp:
        paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(tmp))

"""Resizing ops shared by the models, with PyTorch's ``align_corners=False`` / ``recompute_scale_factor`` semantics.

Two implementations of each resize give the same numbers (≤ 2e-7 apart): ``F.interpolate`` (the default) and a
gather + lerp form built from ``index_select`` that also runs in Paddle Inference with oneDNN, where every
bilinear/nearest ``interpolate`` fails at run time in Paddle 3.3.1 (Paddle#79749). The exporter switches to the
second inside :func:`gather_resize`. Sizes may be Python ints or 0-D int tensors (dynamic shapes in a static graph).
"""
import contextlib
import math

import paddle
import paddle.nn.functional as F

_GATHER_RESIZE = [False]  # one mutable flag, switched by gather_resize()


@contextlib.contextmanager
def gather_resize(enabled: bool = True):
    """Within this context :func:`resize_bilinear` / :func:`resize_nearest` use gather + lerp (oneDNN-safe).

    Example:
        >>> with gather_resize():
        ...     static_model = paddle.jit.to_static(model, input_spec=specs, full_graph=True)
        ...     paddle.jit.save(static_model, "out/model")
    """
    previous = _GATHER_RESIZE[0]
    _GATHER_RESIZE[0] = enabled
    try:
        yield
    finally:
        _GATHER_RESIZE[0] = previous


def resize_bilinear(x, size):
    """Bilinear resize with half-pixel centres (torch ``align_corners=False``).

    Args:
        x: (B, C, H, W) float tensor.
        size: (h, w) output size, ints or 0-D int tensors.
    Returns:
        (B, C, h, w) tensor.
    """
    if _GATHER_RESIZE[0]:
        return _lerp_axis(_lerp_axis(x, size[0], 2), size[1], 3)
    return F.interpolate(x, size=list(size), mode="bilinear", align_corners=False)


def resize_nearest(x, size):
    """Nearest-neighbour resize, torch's legacy ``nearest`` rule (source index = floor(dst * in / out)).

    Args:
        x: (B, C, H, W) tensor.
        size: (h, w) output size, ints or 0-D int tensors.
    Returns:
        (B, C, h, w) tensor.
    """
    if _GATHER_RESIZE[0]:
        for axis, out in ((2, size[0]), (3, size[1])):
            source = paddle.floor(_positions(out) * _ratio(x, axis, out)).astype("int64")
            x = paddle.index_select(x, _clamp_to_axis(source, x, axis), axis=axis)
        return x
    return F.interpolate(x, size=list(size), mode="nearest")


def _positions(out):
    return paddle.arange(out, dtype="float32")


def _float(value):
    """A Python int or a 0-D int tensor → 0-D float32 tensor."""
    return paddle.full([], value, "float32") if isinstance(value, int) else value.astype("float32")


def _ratio(x, axis, out):
    """in / out of one axis as float32 (torch's scale for ``align_corners=False`` with an explicit size).

    Uses ``x.shape`` (ints where static) rather than ``paddle.shape``, whose values come out permuted under
    oneDNN when the graph has fixed sizes (index out of range in Paddle 3.3.1).
    """
    return _float(x.shape[axis]) / _float(out)


def _clamp_to_axis(index, x, axis):
    """min(index, size - 1) for an int64 index tensor along ``axis`` of ``x``."""
    size = x.shape[axis]
    if isinstance(size, int):
        return paddle.clip(index, max=size - 1)
    return paddle.minimum(index, size.astype("int64") - 1)


def _lerp_axis(x, out, axis):
    """Linear resize of one axis: src = max((dst + 0.5) · in / out − 0.5, 0), lerp between floor and floor + 1."""
    source = paddle.clip((_positions(out) + 0.5) * _ratio(x, axis, out) - 0.5, min=0.0)
    low = paddle.floor(source)
    weight_shape = [1, 1, 1, 1]
    weight_shape[axis] = -1
    weight = (source - low).reshape(weight_shape)
    low = low.astype("int64")
    high = _clamp_to_axis(low + 1, x, axis)
    first = paddle.index_select(x, low, axis=axis)
    return first + (paddle.index_select(x, high, axis=axis) - first) * weight


def scaled_size(height, width, scale):
    """Output size of scaling by ``scale`` as torch's ``recompute_scale_factor=True`` computes it (floor).

    ``height``/``width`` are ints, or 0-D int tensors in a static graph with dynamic shapes (then tensors return).
    """
    if isinstance(height, int) and isinstance(width, int):
        return int(math.floor(height * scale)), int(math.floor(width * scale))
    return tuple(paddle.floor(paddle.to_tensor(side).astype("float64") * scale).astype("int64")
                 for side in (height, width))


def zero_pad(x, axis: int, before: int = 0, after: int = 0):
    """Zero-pad one axis (same values as ``F.pad`` with zeros), built from ``concat``.

    Why: ``F.pad`` on a 4-D channels-last tensor gives wrong shapes or crashes under Paddle Inference with oneDNN,
    and paddle2onnx 2.1 writes ``pad3d``'s fill value from uninitialised memory (Paddle 3.3.1).
    Input: any-rank tensor; ``before``/``after`` ≥ 0 Python ints. Output: the padded tensor (``x`` if both are 0).
    """
    parts = [x]
    for amount, position in ((before, 0), (after, len(parts) + 1)):
        if amount:
            repeats = [1] * x.ndim
            repeats[axis] = amount
            zeros = paddle.zeros_like(paddle.slice(x, axes=[axis], starts=[0], ends=[1])).tile(repeats)
            parts.insert(position, zeros)
    return paddle.concat(parts, axis=axis) if len(parts) > 1 else x

"""Resizing ops shared by the models, with PyTorch's ``align_corners=False`` / ``recompute_scale_factor`` semantics.

Two implementations of each resize give the same numbers (≤ 2e-7 apart): ``F.interpolate`` (the default) and a
form that also runs in Paddle Inference with oneDNN, where every bilinear/nearest ``interpolate`` fails at run time
in Paddle 3.3.1 (Paddle#79749): bilinear as ``trilinear`` over a depth-1 axis (no oneDNN kernel, so the native one
runs; one op instead of the slice/stack/concat chains this replaced, which took ~70 % of the run time), nearest as
repeat (integer up-scaling) or ``index_select``. The exporter switches to the second inside :func:`gather_resize`.
Sizes may be Python ints or 0-D int tensors (dynamic shapes in a static graph).
"""
import contextlib
import math

import paddle
import paddle.nn.functional as F

_GATHER_RESIZE = [False]  # one mutable flag, switched by gather_resize()


@contextlib.contextmanager
def gather_resize(enabled: bool = True):
    """Within this context :func:`resize_bilinear` / :func:`resize_nearest` use the oneDNN-safe forms.

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


def gather_resize_enabled() -> bool:
    """True inside :func:`gather_resize` (i.e. while tracing the graph meant for Paddle Inference + oneDNN)."""
    return _GATHER_RESIZE[0]


def resize_bilinear(x, size):
    """Bilinear resize with half-pixel centres (torch ``align_corners=False``).

    Args:
        x: (B, C, H, W) float tensor.
        size: (h, w) output size, ints or 0-D int tensors.
    Returns:
        (B, C, h, w) tensor.
    """
    return _resize(x, size, linear=True)


def resize_nearest(x, size):
    """Nearest-neighbour resize, torch's legacy ``nearest`` rule (source index = floor(dst * in / out)).

    Args:
        x: (B, C, H, W) tensor.
        size: (h, w) output size, ints or 0-D int tensors.
    Returns:
        (B, C, h, w) tensor.
    """
    return _resize(x, size, linear=False)


def _resize(x, size, linear: bool):
    if _GATHER_RESIZE[0]:  # exporting for oneDNN: bilinear/nearest interpolate fail there (Paddle#79749)
        return _trilinear(x, size) if linear else _nearest(x, size)
    return F.interpolate(x, size=list(size), mode="bilinear" if linear else "nearest", align_corners=False)


def _trilinear(x, size):
    """Bilinear resize as a trilinear one over a depth-1 axis: the same half-pixel formula (exact to float32
    rounding), and ``trilinear_interp`` has no oneDNN kernel, so Paddle Inference runs its native CPU kernel instead
    of failing (Paddle#79749 hits only bilinear/nearest). One op, no full-size intermediate copies."""
    out = F.interpolate(x.unsqueeze(2), size=[1, size[0], size[1]], mode="trilinear", align_corners=False,
                        data_format="NCDHW")
    return out.squeeze(2)


@paddle.jit.not_to_static  # plain Python decisions on static sizes
def _nearest(x, size):
    """Nearest resize per axis: an integer up-scaling (the refiner's ×2 on patches) repeats each pixel with
    unsqueeze + tile + reshape; other ratios gather (``index_select``)."""
    for axis, out in ((2, size[0]), (3, size[1])):
        length = _size(x, axis)
        if isinstance(length, int) and isinstance(out, int) and out % length == 0:
            factor = out // length
            if factor > 1:
                repeats = [1] * (x.ndim + 1)
                repeats[axis + 1] = factor
                shape = [-1] + list(x.shape[1:])
                shape[axis] = out
                x = paddle.tile(x.unsqueeze(axis + 1), repeats).reshape(shape)
        else:
            x = _nearest_axis(x, out, axis)
    return x


def _nearest_axis(x, out, axis):
    source = paddle.floor(_positions(out) * _ratio(x, axis, out)).astype("int64")
    return paddle.index_select(x, clamp_to_axis(source, x, axis), axis=axis)


def _positions(out):
    return paddle.arange(out, dtype="float32")


def _size(x, axis):
    """Length of ``axis``: an int when static, else a 0-D int tensor (static graph with dynamic sizes).

    Prefers ``x.shape`` because ``paddle.shape`` values come out permuted under oneDNN when the graph has fixed
    sizes (index out of range in Paddle 3.3.1); a dynamic length shows there as -1 (or as a tensor under dy2static).
    """
    size = x.shape[axis]
    if isinstance(size, int) and size < 0:
        return paddle.shape(x)[axis]
    return size


def _float(value):
    """A Python int or a 0-D int tensor → 0-D float32 tensor."""
    return paddle.full([], value, "float32") if isinstance(value, int) else value.astype("float32")


def _ratio(x, axis, out):
    """in / out of one axis as float32 (torch's scale for ``align_corners=False`` with an explicit size)."""
    return _float(_size(x, axis)) / _float(out)


def clamp_to_axis(index, x, axis, low: bool = False):
    """min(index, size - 1) (and max(·, 0) with ``low``) for an int64 index tensor along ``axis`` of ``x`` (static
    or dynamic size). Clamped in float32 (exact below 2**24): ``clip`` of int64 tensors gives wrong values under
    Paddle Inference with oneDNN (3.3.1)."""
    size = _size(x, axis)
    value = index.astype("float32")
    if isinstance(size, int):
        value = paddle.clip(value, min=0.0 if low else None, max=float(size - 1))
    else:
        value = paddle.minimum(value, size.astype("float32") - 1)
        if low:
            value = paddle.maximum(value, paddle.zeros_like(value))
    return value.astype("int64")


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

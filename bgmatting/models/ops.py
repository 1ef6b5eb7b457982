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
    if _GATHER_RESIZE[0]:  # exporting for oneDNN: F.interpolate fails there (Paddle#79749)
        for axis, out in ((2, size[0]), (3, size[1])):
            x = _integer_ratio_axis(x, axis, out, linear=linear)
        return x
    return F.interpolate(x, size=list(size), mode="bilinear" if linear else "nearest", align_corners=False)


@paddle.jit.not_to_static  # plain Python decisions on static sizes; dy2static mangles its early returns
def _integer_ratio_axis(x, axis, out, linear: bool):
    """Resize one axis. With static sizes in an integer ratio (the usual case at fixed input sizes: 1/4, ×2, ×4, ×8)
    only slices, scalar multiplies and an interleave are used, which oneDNN runs fast; otherwise gather + lerp."""
    size = _size(x, axis)
    if not (isinstance(size, int) and isinstance(out, int)):
        return _lerp_axis(x, out, axis) if linear else _nearest_axis(x, out, axis)
    if size == out:
        return x
    if size == 1:  # e.g. ASPP's pooled branch: a broadcast (zero-length slices below would break oneDNN)
        repeats = [1] * x.ndim
        repeats[axis] = out
        return paddle.tile(x, repeats)
    if size % out == 0:
        step = size // out
        if linear and step % 2 == 0:  # source (j + 0.5)·step − 0.5 lies halfway between two pixels
            return 0.5 * (_strided(x, axis, step // 2 - 1, step) + _strided(x, axis, step // 2, step))
        return _strided(x, axis, (step - 1) // 2 if linear else 0, step)
    if out % size == 0:
        return _upsample_integer(x, axis, out // size, linear)
    return _lerp_axis(x, out, axis) if linear else _nearest_axis(x, out, axis)


def _strided(x, axis, start, step):
    return paddle.strided_slice(x, axes=[axis], starts=[start], ends=[x.shape[axis]], strides=[step])


def _upsample_integer(x, axis, factor, linear):
    """×factor along ``axis``: output phase r of pixel i is x[i] (nearest) or the lerp of x[i] and its neighbour
    at offset d = (r + 0.5)/factor − 0.5 (borders replicated, as torch's clamping does); phases interleaved."""
    size = x.shape[axis]
    if linear:
        previous = paddle.concat([paddle.slice(x, [axis], [0], [1]), paddle.slice(x, [axis], [0], [size - 1])], axis)
        following = paddle.concat([paddle.slice(x, [axis], [1], [size]), paddle.slice(x, [axis], [size - 1], [size])],
                                  axis)
    phases = []
    for r in range(factor):
        offset = (r + 0.5) / factor - 0.5
        if not linear:
            phases.append(x)
        elif offset < 0:
            phases.append(x * (1 + offset) + previous * -offset)
        else:
            phases.append(x * (1 - offset) + following * offset)
    shape = [0] + list(x.shape[1:])  # 0 = keep the (possibly dynamic) batch
    shape[axis] = size * factor
    return paddle.stack(phases, axis=axis + 1).reshape(shape)


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


def clamp_to_axis(index, x, axis):
    """min(index, size - 1) for an int64 index tensor along ``axis`` of ``x`` (static or dynamic size)."""
    size = _size(x, axis)
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
    high = clamp_to_axis(low + 1, x, axis)
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

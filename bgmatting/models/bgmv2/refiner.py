"""The BackgroundMattingV2 refiner: re-predicts alpha/foreground on the 4×4 patches with the largest error."""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from bgmatting.models.ops import _float as _as_float
from bgmatting.models.ops import _size as _length
from bgmatting.models.ops import clamp_to_axis, gather_resize_enabled, resize_bilinear, resize_nearest, zero_pad

REFINE_MODES = ("full", "sampling", "thresholding")


def pad_sides(x, padding: int):
    """Zero-pad (B, C, H, W) by ``padding`` on all four sides: ``F.pad`` in dygraph; in a static graph the
    concat form (:func:`~bgmatting.models.ops.zero_pad`), since paddle2onnx writes ``pad3d``'s fill value from
    uninitialised memory."""
    if paddle.in_dynamic_mode():
        return F.pad(x, [padding] * 4)
    return zero_pad(zero_pad(x, 2, padding, padding), 3, padding, padding)
PATCH_CROP_METHODS = ("unfold", "roi_align", "gather")
PATCH_REPLACE_METHODS = ("scatter_nd", "scatter_element")


def _window_length(length: int, out: int, size: int, coords_step: int) -> int:
    """The most input pixels (low .. high of the bilinear taps) that ``size`` consecutive output coordinates
    starting at any multiple of ``coords_step`` minus the padding need, computed with the graph's float32 formula
    over every start (so the window is exact, not a bound)."""
    import numpy as np

    padding = (size - coords_step) // 2
    ratio = np.float32(length) / np.float32(out)
    starts = np.arange(0, out, coords_step, dtype=np.int64) - padding
    coords = (starts[:, None] + np.arange(size)).astype(np.float32)
    source = np.maximum((coords + np.float32(0.5)) * ratio - np.float32(0.5), np.float32(0))
    low = np.minimum(np.floor(source), length - 1)
    high = np.minimum(low + 1, length - 1)
    return int(min((high[:, -1] - low[:, 0]).max() + 1, length))


class Refiner(nn.Layer):
    """Refiner with the official options and parameter names (``conv1..conv4``, ``bn1..bn3``).

    Args:
        mode: ``"full"`` (refine everywhere with dense convs; for debugging), ``"sampling"`` (the
            ``sample_pixels`` pixels with the largest error, as 4×4 patches) or ``"thresholding"`` (patches whose
            error > ``threshold``).
        sample_pixels: pixels to refine in sampling mode; at most all H/4·W/4 patches are taken.
        threshold: error threshold in [0, 1] for thresholding mode.
        kernel_size: 1 or 3.
        prevent_oversampling: in sampling mode drop selected patches whose error is 0.
        patch_crop_method: ``"unfold"``, ``"roi_align"`` or ``"gather"``: identical results; ``gather`` also
            works in static graphs.
        patch_replace_method: ``"scatter_nd"`` or ``"scatter_element"``: identical results; both avoid in-place
            assignment on views (wrong in Paddle 3.3.1).
    Input:
        src, bgr: (B, 3, H, W) in [0, 1], H and W divisible by 4.
        pha: (B, 1, Hc, Wc) coarse alpha; fgr: (B, 3, Hc, Wc) coarse foreground residual;
        err: (B, 1, Hc, Wc) coarse error in [0, 1]; hid: (B, 32, Hc, Wc) hidden features.
    Output:
        pha: (B, 1, H, W) alpha (unclamped); fgr: (B, 3, H, W) foreground residual;
        ref: (B, 1, H/4, W/4) float, 1 where a 4×4 patch was refined.
    Example:
        >>> refiner = Refiner("sampling", 80_000, 0.1)
        >>> pha, fgr, ref = refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
    """

    def __init__(self, mode: str, sample_pixels: int, threshold: float, kernel_size: int = 3,
                 prevent_oversampling: bool = True, patch_crop_method: str = "unfold",
                 patch_replace_method: str = "scatter_nd"):
        super().__init__()
        for value, allowed, name in ((mode, REFINE_MODES, "refine_mode"), (kernel_size, (1, 3), "refine_kernel_size"),
                                     (patch_crop_method, PATCH_CROP_METHODS, "refine_patch_crop_method"),
                                     (patch_replace_method, PATCH_REPLACE_METHODS, "refine_patch_replace_method")):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.kernel_size = kernel_size
        self.prevent_oversampling = prevent_oversampling
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method
        channels = [32, 24, 16, 12, 4]
        self.conv1 = nn.Conv2D(channels[0] + 6 + 4, channels[1], kernel_size, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(channels[1])
        self.conv2 = nn.Conv2D(channels[1], channels[2], kernel_size, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(channels[2])
        self.conv3 = nn.Conv2D(channels[2] + 6, channels[3], kernel_size, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(channels[3])
        self.conv4 = nn.Conv2D(channels[3], channels[4], kernel_size)
        self.relu = nn.ReLU()

    def forward(self, src, bgr, pha, fgr, err, hid):
        height, width = src.shape[2:]
        half, quarter = (height // 2, width // 2), (height // 4, width // 4)
        src_bgr = paddle.concat([src, bgr], axis=1)
        if self.mode == "full":
            return self._refine_full(src_bgr, pha, fgr, hid, half, (height, width), quarter)
        ref = self.select_refinement_regions(resize_bilinear(err, quarter))
        idx = paddle.nonzero(ref.squeeze(1))
        out = resize_bilinear(paddle.concat([pha, fgr], axis=1), (height, width))
        if not paddle.in_dynamic_mode():  # static graph: no branch on the patch count, see _with_dummy_patch
            idx, weight = self._with_dummy_patch(idx)
            if isinstance(_length(src, 2), int) and isinstance(_length(src, 3), int) or not gather_resize_enabled():
                patches = self._refine_patches_static(src, bgr, paddle.concat([hid, pha, fgr], axis=1), half, idx)
                out = self.add_patch_delta(out, patches, idx, weight)
            else:  # Paddle Inference graph with dynamic sizes: its index arithmetic comes out wrong under oneDNN
                patches = self._refine_patches(src_bgr, pha, fgr, hid, half, idx)
                out = self.replace_patch(out, patches, idx, weight)
        elif idx.shape[0] > 0:
            patches = self._refine_patches(src_bgr, pha, fgr, hid, half, idx)
            out = self.replace_patch(out, patches, idx)
        return out[:, :1], out[:, 1:], ref

    @staticmethod
    def _with_dummy_patch(idx):
        """Append patch (0, 0, 0) with weight 0 so that at least one patch is always refined (Paddle Inference
        with oneDNN crashes on zero patches) without a data-dependent branch; its result is written with weight 0.

        Input: idx (P, 3) int64. Output: idx (P + 1, 3); weight (P + 1,) float32, 1 for real patches, 0 for the dummy.
        """
        count = paddle.shape(idx)[0]
        idx = paddle.concat([idx, paddle.zeros([1, 3], dtype=idx.dtype)], axis=0)
        weight = (paddle.arange(count + 1, dtype="int64") < count).astype("float32")
        return idx, weight

    def _refine_patches(self, src_bgr, pha, fgr, hid, half, idx):
        pad_half, pad_full = (3, 2) if self.kernel_size == 3 else (0, 0)
        x = resize_bilinear(paddle.concat([hid, pha, fgr], axis=1), half)
        y = resize_bilinear(src_bgr, half)
        x = paddle.concat([self.crop_patch(x, idx, 2, pad_half), self.crop_patch(y, idx, 2, pad_half)], axis=1)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        side = 8 if self.kernel_size == 3 else 4
        x = resize_nearest(x, (side, side))
        x = paddle.concat([x, self.crop_patch(src_bgr, idx, 4, pad_full)], axis=1)
        x = self.relu(self.bn3(self.conv3(x)))
        return self.conv4(x)

    def _refine_patches_static(self, src, bgr, coarse, half, idx):
        """:meth:`_refine_patches` computed from the patches' own pixels (the exported graph's path).

        No half-resolution or zero-padded full-size tensor is made: each patch's bilinear up-sampling of the coarse
        features is two small matmuls with per-patch interpolation matrices on a k×k window of ``coarse``
        (:meth:`_resize_windows`); its half-resolution image is the 2×2 mean of a full-resolution window (the
        half-pixel bilinear ×1/2); context outside the image is 0 as after zero padding. Same values as
        :meth:`_refine_patches` to float32 rounding.

        Input: src, bgr (B, 3, H, W); coarse (B, 36, Hc, Wc) = hid, pha, fgr; half (H/2, W/2); idx (P, 3).
        Output: (P, 4, 4, 4) refined patches.
        """
        pad_half, pad_full = (3, 2) if self.kernel_size == 3 else (0, 0)
        size_half = 2 + 2 * pad_half  # the half-resolution patch with context
        size_full = 4 + 2 * pad_full
        x = self._resize_windows(coarse, idx, half, 2, pad_half)
        window = 2 * size_half  # full-resolution rows 4r - 2·pad_half … of the same patch
        top = idx[:, 1] * 4 - 2 * pad_half
        pad_units = (2 * pad_half + 3) // 4  # window columns start at 4·(col − pad_units) + shift
        shift = 4 * pad_units - 2 * pad_half  # even
        offset = 2 * pad_half - pad_full  # the full-resolution patch inside the window
        halves, fulls = [], []
        for image in (src, bgr):  # per image, small results only: no window-sized concat, mask or slice copies
            crop = self._gather_image_windows(image, idx[:, 0], top, idx[:, 2] - pad_units, window)
            halves.append(F.avg_pool2d(crop, 2, 2)[:, :, :, shift // 2:shift // 2 + size_half])
            fulls.append(crop[:, :, offset:offset + size_full, shift + offset:shift + offset + size_full])
        # zero context outside the image (as after zero padding); the 2×2 means of an inside half-resolution pixel
        # read only inside pixels (even sides, even window starts), so masking after the mean is exact
        height, width = _length(src, 2), _length(src, 3)
        half_mask = self._inside(idx[:, 1] * 2 - pad_half, idx[:, 2] * 2 - pad_half, size_half, *half)
        full_mask = self._inside(idx[:, 1] * 4 - pad_full, idx[:, 2] * 4 - pad_full, size_full, height, width)
        y = paddle.concat(halves, axis=1) * half_mask.tile([1, 6, 1, 1])  # same shapes: a fast oneDNN multiply
        full = paddle.concat(fulls, axis=1) * full_mask.tile([1, 6, 1, 1])
        x = paddle.concat([x, y], axis=1)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        side = 8 if self.kernel_size == 3 else 4
        x = resize_nearest(x, (side, side))
        x = paddle.concat([x, full], axis=1)
        x = self.relu(self.bn3(self.conv3(x)))
        return self.conv4(x)

    @staticmethod
    def _inside(top, left, size, height, width):
        """(P, 1, size, size) float32: 1 where rows top + i, cols left + j lie inside (height, width)."""
        offsets = paddle.arange(size, dtype="int64")
        rows, cols = top.unsqueeze(1) + offsets, left.unsqueeze(1) + offsets
        inside_rows = ((rows >= 0) & (rows < height)).astype("float32")
        inside_cols = ((cols >= 0) & (cols < width)).astype("float32")
        # an outer product as a batched matmul: the broadcast multiply is ~50 ns/element under oneDNN
        return paddle.matmul(inside_rows.unsqueeze(2), inside_cols.unsqueeze(1)).unsqueeze(1)

    @staticmethod
    def _gather_windows(x, batch, top, left, size: int):
        """(P, C, size, size) windows of x (B, C, H, W) at rows top + i, cols left + j (clamped into x), gathered
        channels-last: one gather row of C values per pixel (Paddle's gather pays per row, not per byte).

        batch, top, left: (P,) int64."""
        c = x.shape[1]
        height, width = _length(x, 2), _length(x, 3)
        offsets = paddle.arange(size, dtype="int64")
        rows = clamp_to_axis(top.unsqueeze(1) + offsets, x, 2, low=True)  # (P, size)
        cols = clamp_to_axis(left.unsqueeze(1) + offsets, x, 3, low=True)  # (P, size)
        # Index arithmetic in this exact form: some other broadcast forms (a 4-D add where both operands broadcast,
        # (P, 1, 1) + (P, size, 1)) give wrong values under oneDNN in Paddle 3.3.1; the tests pin this one.
        spatial = (rows * width).unsqueeze(2) + cols.unsqueeze(1)  # (P, size, size)
        pixels = spatial.reshape([-1, size * size]) + (batch * (height * width)).reshape([-1, 1])
        table = x.transpose([0, 2, 3, 1]).reshape([-1, c])
        crop = paddle.gather(table, pixels.flatten()).reshape([-1, size, size, c])
        return crop.transpose([0, 3, 1, 2])

    @staticmethod
    def _gather_image_windows(x, batch, top, unit_left, size: int):
        """As :meth:`_gather_windows` for a full-resolution image (few channels, many pixels): gathered in units of
        4 horizontal pixels of one channel (W is a multiple of 4), 4× fewer gather rows: (P, C, size, 4·units),
        columns ``4·unit_left + j``, units = size / 4 + 1. Pixels outside x hold clamped values (callers mask them).

        batch, top, unit_left: (P,) int64."""
        c = x.shape[1]
        height, width = _length(x, 2), _length(x, 3)
        units = size // 4 + 1
        offsets = paddle.arange(size, dtype="int64")
        rows = clamp_to_axis(top.unsqueeze(1) + offsets, x, 2, low=True)  # (P, size)
        unit_cols = (unit_left.unsqueeze(1) + paddle.arange(units, dtype="int64")).astype("float32")  # (P, units)
        row_units = _as_float(width) / 4
        unit_cols = paddle.maximum(paddle.minimum(unit_cols, paddle.zeros_like(unit_cols) + (row_units - 1)),
                                   paddle.zeros_like(unit_cols)).astype("int64")  # float clamps (see clamp_to_axis)
        planes = batch.reshape([-1, 1]) * c + paddle.arange(c, dtype="int64").reshape([1, c])  # (P, C)
        row_ids = (planes.unsqueeze(2) * height + rows.unsqueeze(1)).reshape([-1, c * size, 1])  # (P, C·size, 1)
        unit_ids = row_ids * row_units.astype("int64") + unit_cols.unsqueeze(1)  # (P, C·size, units)
        return paddle.gather(x.reshape([-1, 4]), unit_ids.flatten()).reshape([-1, c, size, units * 4])

    def _resize_windows(self, x, idx, out_size, stride: int, padding: int):
        """Patches of ``resize_bilinear(x, out_size)`` zero-padded by ``padding`` and cropped at ``idx`` (stride
        ``stride`` in the resized grid), from x's own pixels: (P, C, O, O), O = stride + 2·padding.

        Per patch and axis, the O output coordinates need x's pixels in a window of k ≤ floor((O - 1)·in/out) + 2;
        an (O, k) matrix holds their bilinear weights (torch's half-pixel rule, borders clamped), 0 for rows outside
        the resized image; output = A_rows · window · A_colsᵀ.
        """
        size = stride + 2 * padding
        kronecker = not gather_resize_enabled()  # ONNX trace (and dygraph): weights as (P, k, O), see below
        # one window size for both axes (square windows): the larger of the two (they differ on thin images)
        k = max(self._window_size(x, 2, out_size[0], size, stride),
                self._window_size(x, 3, out_size[1], size, stride))
        windows = []
        for axis in (2, 3):
            coords = idx[:, axis - 1:axis] * stride + (paddle.arange(size, dtype="int64") - padding)  # (P, O)
            windows.append(self._axis_weights(coords, x, axis, out_size[axis - 2], k, kronecker))
        (top, rows), (left, cols) = windows
        c = x.shape[1]
        crop = self._gather_windows(x, idx[:, 0], top, left, k)  # (P, C, k, k)
        if kronecker:  # one matmul per patch with rows ⊗ cols, no transposes of the resized windows (they were
            # ~15 % of a 4K onnxruntime run)
            kron = rows.reshape([-1, k, 1, size, 1]) * cols.reshape([-1, 1, k, 1, size])
            # (P, k, k, O, O): the weight of window pixel (r, j) in output pixel (o1, o2)
            z = paddle.matmul(crop.reshape([-1, c, k * k]), kron.reshape([-1, k * k, size * size]))  # (P, C, O·O)
            return z.reshape([-1, c, size, size])
        # Paddle Inference: plain 3-D batched matmuls (broadcasts, as in the product above, come out wrong under
        # oneDNN in Paddle Inference 3.3.1)
        z = paddle.matmul(crop.reshape([-1, c * k, k]), cols, transpose_y=True)  # (P, C·k, O): columns resized
        z = z.reshape([-1, c, k, size]).transpose([0, 2, 1, 3]).reshape([-1, k, c * size])
        z = paddle.matmul(rows, z)  # (P, O, C·O): rows resized
        return z.reshape([-1, size, c, size]).transpose([0, 2, 1, 3])

    @staticmethod
    def _window_size(x, axis: int, out, size: int, stride: int) -> int:
        """The window k that ``size`` resized coordinates along ``axis`` of x (resized to ``out``) need."""
        length = _length(x, axis)
        if isinstance(length, int) and isinstance(out, int):
            return _window_length(length, out, size, stride)
        return size + 2  # dynamic sizes: the refiner only up-samples (in ≤ out), where O + 2 always covers it

    @staticmethod
    def _axis_weights(coords, x, axis: int, out, k: int, transposed: bool = False):
        """(window start (P,), weights (P, O, k) — (P, k, O) if ``transposed`` —) for resizing ``axis`` of x to
        length ``out`` at ``coords`` (P, O) from windows of k pixels (slots past the axis's end get weight 0)."""
        length = _length(x, axis)
        # float32 throughout (exact for coordinates): int64 clip/min/max are wrong under oneDNN (Paddle 3.3.1)
        ratio = _as_float(length) / _as_float(out)
        last = _as_float(length) - 1
        source = paddle.clip((coords.astype("float32") + 0.5) * ratio - 0.5, min=0.0)
        low = source.astype("int64").astype("float32")  # floor (source ≥ 0); source - floor(source) is wrong there
        expand = 1 if transposed else 2  # the axis of the k window slots
        fraction = (source - low).unsqueeze(expand)
        low = paddle.minimum(low, paddle.zeros_like(low) + last)
        high = paddle.minimum(low + 1, paddle.zeros_like(low) + last)
        start = paddle.maximum(paddle.minimum(low[:, :1], paddle.zeros_like(low[:, :1]) + (last + 1 - k)),
                               paddle.zeros_like(low[:, :1]))
        slots = paddle.arange(k, dtype="float32").reshape([1, k, 1] if transposed else [1, 1, k])
        weights = ((low - start).unsqueeze(expand) == slots).astype("float32") * (1 - fraction) \
            + ((high - start).unsqueeze(expand) == slots).astype("float32") * fraction
        inside = ((coords >= 0) & (coords < out)).astype("float32").unsqueeze(expand)
        start = start.astype("int64")
        return start[:, 0], weights * inside

    def add_patch_delta(self, x, y, idx, weight):
        """Write 4×4 patches back as ``x + scatter_add(weight · (y − x's patch))``: no padded copy of x, and the
        dummy patch (weight 0) adds 0 wherever it lands. Same result as :meth:`replace_patch`.

        Input: x (B, C, H, W); y (P, C, 4, 4); idx (P, 3); weight (P,) in {0, 1}. Output: (B, C, H, W).
        """
        b, c, h, w = x.shape
        s = y.shape[2]
        flat = x.flatten()
        pattern = (paddle.arange(c, dtype="int64").reshape([c, 1, 1]) * h * w
                   + paddle.arange(s, dtype="int64").reshape([1, s, 1]) * w
                   + paddle.arange(s, dtype="int64").reshape([1, 1, s])).reshape([1, c * s * s])
        corner = (idx[:, 0] * c * h * w + idx[:, 1] * s * w + idx[:, 2] * s).reshape([-1, 1])
        pixels = (corner + pattern).flatten()  # 2-D broadcast (see _gather_windows)
        current = paddle.gather(flat, pixels).reshape([-1, c, s, s])
        delta = (y - current) * weight.reshape([-1, 1, 1, 1])
        if gather_resize_enabled():  # the Paddle Inference graph
            return paddle.scatter_nd_add(flat, pixels.unsqueeze(1), delta.flatten()).reshape([b, c, h, w])
        # the ONNX trace: paddle2onnx writes scatter_nd_add as a zero tensor of x's size + ScatterND + Add (three
        # full-size passes, ~10 % of a 4K run); put_along_axis(reduce="add") is one ScatterElements on x itself
        return paddle.put_along_axis(flat, pixels, delta.flatten(), axis=0, reduce="add").reshape([b, c, h, w])

    def _refine_full(self, src_bgr, pha, fgr, hid, half, full, quarter):
        x = resize_bilinear(paddle.concat([hid, pha, fgr], axis=1), half)
        y = resize_bilinear(src_bgr, half)
        if self.kernel_size == 3:
            x, y = pad_sides(x, 3), pad_sides(y, 3)
        x = self.relu(self.bn1(self.conv1(paddle.concat([x, y], axis=1))))
        x = self.relu(self.bn2(self.conv2(x)))
        if self.kernel_size == 3:
            x = resize_nearest(x, (full[0] + 4, full[1] + 4))
            y = pad_sides(src_bgr, 2)
        else:
            x, y = resize_nearest(x, full), src_bgr
        x = self.relu(self.bn3(self.conv3(paddle.concat([x, y], axis=1))))
        x = self.conv4(x)
        ref = paddle.ones([src_bgr.shape[0], 1, *quarter], dtype=src_bgr.dtype)
        return x[:, :1], x[:, 1:], ref

    def select_refinement_regions(self, err):
        """Choose the patches to refine.

        Input: err (B, 1, h, w) quarter-resolution error in [0, 1].
        Output: ref (B, 1, h, w) float, 1 = refine the 4×4 full-resolution patch there.
        """
        if self.mode == "thresholding":
            return (err > self.threshold).astype(err.dtype)
        b, _, h, w = err.shape
        flat = err.reshape([b, h * w])
        k = self.sample_pixels // 16
        k = min(k, h * w) if isinstance(h * w, int) else paddle.minimum(paddle.to_tensor(k, "int64"), h * w)
        ref = paddle.zeros_like(flat)
        if self.sample_pixels // 16 > 0:
            top = paddle.topk(flat, k, axis=1, sorted=False)[1]
            ref = paddle.put_along_axis(ref, top, paddle.ones_like(top, dtype=flat.dtype), axis=1)
        if self.prevent_oversampling:
            ref = ref * (flat > 0).astype(flat.dtype)
        return ref.reshape([b, 1, h, w])

    def crop_patch(self, x, idx, size: int, padding: int):
        """Crop the patches at ``idx``.

        Input: x (B, C, H, W); idx (P, 3) int64 rows of (batch, row, col) in patch units; size = patch stride
        and centre size; padding = context added on each side.
        Output: (P, C, size + 2·padding, size + 2·padding).

        ``"unfold"`` crops through ``Tensor.unfold`` only where no gradient flows back: Paddle 3.3.1's backward of
        ``unfold`` (overlapping windows, then ``gather_nd``) drops most of the gradient, so in training the same
        windows are gathered (identical values; the gradient reaches ``x``, e.g. the base network's features).
        """
        if not paddle.in_dynamic_mode() and not gather_resize_enabled():  # wrong under oneDNN at fixed sizes
            return self._crop_unpadded(x, idx, size, padding)
        if padding:
            x = pad_sides(x, padding)
        out = size + 2 * padding
        if self.patch_crop_method == "unfold" and paddle.in_dynamic_mode() and x.stop_gradient:  # dygraph-only
            grid = x.transpose([0, 2, 3, 1]).unfold(1, out, size).unfold(2, out, size)
            return paddle.gather_nd(grid, idx)
        if self.patch_crop_method == "roi_align":
            from paddle.vision.ops import roi_align

            boxes = idx[:, 1:].astype(x.dtype).flip(-1) * size - 0.5
            boxes = paddle.concat([boxes, boxes + out], axis=1)
            boxes_num = paddle.bincount(idx[:, 0], minlength=x.shape[0]).astype("int32")
            return roi_align(x, boxes, boxes_num, out, spatial_scale=1.0, sampling_ratio=1, aligned=False)
        return paddle.gather(x.flatten(), self.pixel_indices(x.shape, idx, size, padding).flatten()).reshape(
            [-1, x.shape[1], out, out])

    @staticmethod
    def _crop_unpadded(x, idx, size: int, padding: int):
        """:meth:`crop_patch` for the ONNX trace: gathers from ``x`` itself, context outside ``x`` reads 0, so no
        padded copy of the (half- or full-resolution) tensor is made. Same shapes and values as crop_patch.
        (Paddle Inference with oneDNN computes it wrongly at fixed sizes, so that graph keeps the padded crop.)"""
        _, c, h, w = x.shape
        out = size + 2 * padding
        offsets = paddle.arange(out, dtype="int64") - padding
        rows, cols = idx[:, 1:2] * size + offsets, idx[:, 2:3] * size + offsets  # (P, out) each
        inside = (((rows >= 0) & (rows < h)).astype(x.dtype).unsqueeze(2)
                  * ((cols >= 0) & (cols < w)).astype(x.dtype).unsqueeze(1)).unsqueeze(1)  # (P, 1, out, out)
        rows = clamp_to_axis(rows.clip(min=0), x, 2).reshape([-1, 1, out, 1])
        cols = clamp_to_axis(cols.clip(min=0), x, 3).reshape([-1, 1, 1, out])
        planes = idx[:, 0].reshape([-1, 1, 1, 1]) * c + paddle.arange(c, dtype="int64").reshape([1, c, 1, 1])
        pixels = (planes * h + rows) * w + cols
        return paddle.gather(x.flatten(), pixels.flatten()).reshape([-1, c, out, out]) * inside

    def replace_patch(self, x, y, idx, weight=None):
        """Write 4×4 patches back.

        Input: x (B, C, H, W); y (P, C, 4, 4); idx (P, 3) as in :meth:`crop_patch`; weight: None, or (P,) float
        in {0, 1}: patches of weight 0 are not written (they may repeat a written index); given a weight, the
        flat ``scatter`` overwrite is used whatever ``patch_replace_method`` says (the static-graph path).
        Output: (B, C, H, W) with the patches at ``idx`` replaced by ``y`` (a new tensor; ``x`` is not modified).
        """
        b, c, h, w = x.shape
        s = y.shape[2]
        if weight is not None:  # static graph: a flat overwrite; weight-0 patches write into a trash slot
            pixels = self.pixel_indices(x.shape, idx, s, 0)
            trash = paddle.zeros_like(pixels) + x.numel().astype(pixels.dtype)
            pixels = paddle.where(weight.reshape([-1, 1, 1, 1]) > 0, pixels, trash).flatten()
            flat = paddle.concat([x.flatten(), paddle.zeros([1], x.dtype)])
            return paddle.scatter(flat, pixels, y.flatten(), overwrite=True)[:-1].reshape([b, c, h, w])
        if self.patch_replace_method == "scatter_element":
            pixels = self.pixel_indices(x.shape, idx, s, 0).flatten()
            return paddle.scatter(x.flatten(), pixels, y.flatten(), overwrite=True).reshape([b, c, h, w])
        grid = x.reshape([b, c, h // s, s, w // s, s]).transpose([0, 2, 4, 1, 3, 5])
        mask = paddle.scatter_nd(idx, paddle.ones([idx.shape[0], 1, 1, 1], x.dtype), [b, h // s, w // s, 1, 1, 1])
        grid = grid * (1 - mask) + paddle.scatter_nd(idx, y, [b, h // s, w // s, c, s, s])
        return grid.transpose([0, 3, 1, 4, 2, 5]).reshape([b, c, h, w])

    @staticmethod
    def pixel_indices(shape, idx, size: int, padding: int):
        """Flat indices into ``x.flatten()`` of every pixel of every patch.

        Input: shape (B, C, H, W) of x; idx (P, 3). Output: (P, C, O, O) int64, O = size + 2·padding.
        """
        _, c, h, w = shape
        o = size + 2 * padding
        channel = paddle.arange(c, dtype="int64").reshape([c, 1, 1]) * h * w
        rows = paddle.arange(o, dtype="int64").reshape([1, o, 1]) * w
        cols = paddle.arange(o, dtype="int64").reshape([1, 1, o])
        corner = idx[:, 0] * c * h * w + idx[:, 1] * size * w + idx[:, 2] * size
        return corner.reshape([-1, 1, 1, 1]) + (channel + rows + cols).unsqueeze(0)

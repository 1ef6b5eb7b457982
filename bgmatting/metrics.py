"""Matting metrics by the DIM convention (the MATLAB code of Deep Image Matting used by the official
BackgroundMattingV2 ``eval/`` and by the ViTMatte paper), plus the existing Paddle port's SAD/MSE variant.

All functions take alphas as arrays of shape (H, W): float in [0, 1], or uint8 in [0, 255] (divided by 255).
The region is the trimap's unknown band (``trimap == 128``) when a trimap is given, else the whole image.

Standard convention (``"standard"``), per image:

- SAD  = Σ_region |α̂ − α| / 1000
- MSE  = mean_region (α̂ − α)², reported ×1e3
- Grad = Σ_region (|∇G α̂'| − |∇G α'|)² / 1000, α' = ``mat2gray``(α) (min-max normalised), ∇G = first
  derivative of a Gaussian (σ = 1.4) built as in ``gaussgradient.m``, replicate borders
- Conn = Σ_region |φ(α̂) − φ(α)| / 1000, thresholds 0:0.1:1, largest 4-connected component, θ = 0.15
- FG MSE = mean over RGB of mean_region (F̂·m − F·m)², m = (α > 0), reported ×1e3

Paddle-port convention (``"paddle-port"``, zackzhao1/BackgroundMattingV2-paddle ``eval.py``): SAD = 2·SAD
and MSE = 2·1e3·Σ_region Δ² / (n + 1), n = #region pixels; no Grad/Conn. Hence, image by image,
``SAD_port = 2·SAD`` and ``MSE_port = 2·MSE·n/(n+1)``.

An empty region gives 0 for every metric (the MATLAB code would divide by zero).

Example:
    >>> import numpy as np
    >>> from bgmatting.metrics import alpha_metrics
    >>> gt = np.zeros((8, 8), np.float32); gt[2:6, 2:6] = 1
    >>> alpha_metrics(gt, gt)["sad"]
    0.0
"""
import math

import cv2
import numpy as np

UNKNOWN = 128
GRAD_SIGMA = 1.4
CONN_STEP = 0.1
CONN_THETA = 0.15

CONVENTIONS = {
    "standard": (
        "DIM convention: region = trimap==128; SAD = sum|d|/1000; MSE = mean(d^2)*1e3; "
        "Grad = sum((|dG a_pred|-|dG a_gt|)^2)/1000 on mat2gray alphas, sigma 1.4; "
        "Conn = sum|phi_pred-phi_gt|/1000, thresholds 0:0.1:1, theta 0.15, 4-connectivity; "
        "FG MSE = mean over RGB of mean(((F_pred-F_gt)*(a_gt>0))^2)*1e3"
    ),
    "paddle-port": (
        "BackgroundMattingV2-paddle convention: region = trimap==128; SAD = 2*sum|d|/1000; "
        "MSE = 2*1e3*sum(d^2)/(n+1); no Grad/Conn/FG MSE"
    ),
}

METRIC_NAMES = {"standard": ("sad", "mse", "grad", "conn"), "paddle-port": ("sad", "mse")}


def _as_unit(alpha) -> np.ndarray:
    """float32 alpha: uint8 → /255 (as MATLAB's ``single(a)/255``), float as is. Sums accumulate in float64."""
    alpha = np.asarray(alpha)
    if alpha.dtype == np.uint8:
        return alpha.astype(np.float32) / np.float32(255.0)
    return alpha.astype(np.float32, copy=False)


def _region_sum(values: np.ndarray, trimap) -> float:
    """Σ of ``values`` over the region, accumulated in float64."""
    return float(np.sum(values, where=region_mask(trimap, values.shape), dtype=np.float64))


def region_mask(trimap, shape) -> np.ndarray:
    """Boolean (H, W) mask of the pixels a metric counts: ``trimap == 128``, or everything when trimap is None."""
    if trimap is None:
        return np.ones(shape[:2], bool)
    trimap = np.asarray(trimap)
    if trimap.shape[:2] != tuple(shape[:2]):
        raise ValueError(f"trimap shape {trimap.shape} does not match alpha shape {tuple(shape)}")
    return trimap == UNKNOWN


def _check_pair(pred, gt):
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be equal-shape (H, W) arrays, got {pred.shape} and {gt.shape}")


def sad(pred, gt, trimap=None) -> float:
    """Sum of absolute differences over the region, / 1000.

    Args:
        pred, gt: alphas (H, W), float in [0, 1] or uint8.
        trimap: uint8 (H, W) with 128 = unknown, or None for the whole image.
    Returns:
        float ≥ 0.
    """
    pred, gt = _as_unit(pred), _as_unit(gt)
    _check_pair(pred, gt)
    return _region_sum(np.abs(pred - gt), trimap) / 1000.0


def mse(pred, gt, trimap=None) -> float:
    """Mean squared difference over the region (raw, not ×1e3; 0 for an empty region).

    Args:
        pred, gt: alphas (H, W), float in [0, 1] or uint8.
        trimap: uint8 (H, W) with 128 = unknown, or None for the whole image.
    Returns:
        float in [0, 1].
    """
    pred, gt = _as_unit(pred), _as_unit(gt)
    _check_pair(pred, gt)
    pixels = int(np.count_nonzero(region_mask(trimap, gt.shape)))
    return _region_sum(np.square(pred - gt), trimap) / pixels if pixels else 0.0


def gauss_gradient_kernels(sigma: float = GRAD_SIGMA, epsilon: float = 1e-2):
    """The two 1-D factors of ``gaussgradient.m``'s x-derivative kernel ``hx = outer(gauss, dgauss) / ‖·‖``.

    ``halfsize = ceil(σ·sqrt(−2·ln(sqrt(2π)·σ·ε)))`` (4 for σ = 1.4, so 9 taps). The y kernel is ``hx.T``.

    Returns:
        (gauss, dgauss): float64 arrays (2·halfsize+1,), each L2-normalised, so that
        ``np.outer(gauss, dgauss)`` equals ``gaussgradient.m``'s ``hx`` (rows = y, columns = x).
    """
    halfsize = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    u = np.arange(-halfsize, halfsize + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -u * gauss / sigma**2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def mat2gray(image) -> np.ndarray:
    """MATLAB ``mat2gray``: min-max normalise to [0, 1] (a constant image is clipped to [0, 1] instead).

    Returns:
        float32 (H, W) in [0, 1].
    """
    image = _as_unit(image)
    low, high = float(image.min()), float(image.max())
    if high > low:
        return ((image - np.float32(low)) * np.float32(1.0 / (high - low))).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


def gradient_magnitude(image, sigma: float = GRAD_SIGMA) -> np.ndarray:
    """|∇G image| with ``gaussgradient.m``'s filters (convolution, replicate borders), computed in float32.

    Args:
        image: float32 (H, W).
    Returns:
        float32 (H, W) ≥ 0.
    """
    gauss, dgauss = gauss_gradient_kernels(sigma)
    # Convolution = correlation with the flipped kernel; both factors flip (gauss is even, dgauss odd).
    gauss, dgauss = gauss[::-1].astype(np.float32), dgauss[::-1].astype(np.float32)
    gx = cv2.sepFilter2D(image, cv2.CV_32F, dgauss, gauss, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(image, cv2.CV_32F, gauss, dgauss, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def grad(pred, gt, trimap=None, sigma: float = GRAD_SIGMA) -> float:
    """Gradient error: Σ_region (|∇G mat2gray(pred)| − |∇G mat2gray(gt)|)² / 1000.

    Args:
        pred, gt: alphas (H, W), float in [0, 1] or uint8.
        trimap: uint8 (H, W) with 128 = unknown, or None for the whole image.
    Returns:
        float ≥ 0.
    """
    pred, gt = _as_unit(pred), _as_unit(gt)
    _check_pair(pred, gt)
    region = region_mask(trimap, gt.shape)
    # The filters reach `halfsize` pixels: the region's bounding box plus that margin gives the same sums.
    box = bounding_box(region, margin=len(gauss_gradient_kernels(sigma)[0]) // 2)
    if box is None:
        return 0.0
    pred, gt, region = mat2gray(pred)[box], mat2gray(gt)[box], region[box]
    error = np.square(gradient_magnitude(pred, sigma) - gradient_magnitude(gt, sigma))
    return float(np.sum(error, where=region, dtype=np.float64) / 1000.0)


def bounding_box(mask: np.ndarray, margin: int = 0):
    """(row slice, column slice) of the smallest box holding every True pixel of ``mask``, grown by ``margin``
    pixels on each side and clipped to the image; None when ``mask`` is all False.

    Args:
        mask: bool (H, W).
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    height, width = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, height)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, width)))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 4-connected component of ``mask`` (all False when ``mask`` is empty).

    Ties go to the component MATLAB's ``bwconncomp`` + ``max`` picks: the first in column-major order.

    Args:
        mask: bool (H, W).
    Returns:
        bool (H, W).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4,
                                                               ltype=cv2.CV_32S)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = np.flatnonzero(areas == areas.max()) + 1
    if best.size > 1:
        column_major = labels.T.ravel()
        best = column_major[np.argmax(np.isin(column_major, best))]
    else:
        best = best[0]
    return labels == best


def connectivity_levels(pred: np.ndarray, gt: np.ndarray, step: float = CONN_STEP) -> np.ndarray:
    """``l_map`` of ``compute_connectivity_error.m``: per pixel, the threshold t_{k−1} before the first
    threshold t_k at which it is outside the largest 4-connected component of (pred ≥ t_k) & (gt ≥ t_k);
    1 if it never is.

    Thresholds are k·step (exactly k/10 for step 0.1, so an 8-bit alpha of 51/255 counts as ≥ 0.2, as in
    MATLAB's single-precision comparison). Cropping to the bounding box of the first mask changes nothing:
    components and their column-major order are the same inside it.

    Args:
        pred, gt: float32 (H, W) in [0, 1].
    Returns:
        float32 (H, W) in [0, 1].
    """
    steps = int(round(1.0 / step))
    # Every thresholded mask lies inside the first one, so work in its bounding box; outside it l = 0.
    box = bounding_box((pred >= 1 / steps) & (gt >= 1 / steps))
    first_exit = np.zeros(pred.shape, np.uint8)  # k − 1 of the first threshold k the pixel is left out
    if box is not None:
        pred, gt = pred[box], gt[box]
        inside = np.full(pred.shape, steps, np.uint8)
        for k in range(1, steps + 1):
            omega = largest_component((pred >= k / steps) & (gt >= k / steps))
            np.putmask(inside, (inside == steps) & ~omega, k - 1)
        first_exit[box] = inside
    return first_exit.astype(np.float32) / np.float32(steps)


def conn(pred, gt, trimap=None, step: float = CONN_STEP, theta: float = CONN_THETA) -> float:
    """Connectivity error: Σ_region |φ(pred) − φ(gt)| / 1000 with φ(a) = 1 − d·[d ≥ θ], d = a − l_map.

    Args:
        pred, gt: alphas (H, W), float in [0, 1] or uint8.
        trimap: uint8 (H, W) with 128 = unknown, or None for the whole image.
    Returns:
        float ≥ 0.
    """
    pred, gt = _as_unit(pred), _as_unit(gt)
    _check_pair(pred, gt)
    levels = connectivity_levels(pred, gt, step)
    if trimap is not None:  # only the region's pixels (a band is a few % of the image)
        region = region_mask(trimap, gt.shape)
        pred, gt, levels = pred[region], gt[region], levels[region]
    pred_d, gt_d = pred - levels, gt - levels
    # |φ(pred) − φ(gt)| = |gt_d·[gt_d ≥ θ] − pred_d·[pred_d ≥ θ]|
    difference = np.where(gt_d >= theta, gt_d, 0.0) - np.where(pred_d >= theta, pred_d, 0.0)
    return float(np.abs(difference).sum(dtype=np.float64) / 1000.0)


def fgr_mse(pred_fgr, gt_fgr, gt_alpha, trimap=None) -> float:
    """Foreground MSE as BackgroundMattingV2's ``benchmark.m``: mean over RGB of the region MSE of the
    foregrounds masked by ``gt_alpha > 0`` (raw, not ×1e3).

    Args:
        pred_fgr, gt_fgr: (H, W, 3) float in [0, 1] or uint8.
        gt_alpha: (H, W) alpha (float in [0, 1] or uint8).
        trimap: uint8 (H, W) with 128 = unknown, or None for the whole image.
    Returns:
        float in [0, 1].
    """
    pred_fgr, gt_fgr = _as_unit(pred_fgr), _as_unit(gt_fgr)
    if pred_fgr.shape != gt_fgr.shape or pred_fgr.ndim != 3:
        raise ValueError(f"pred and gt foregrounds must be equal-shape (H, W, 3), got {pred_fgr.shape}, {gt_fgr.shape}")
    region = region_mask(trimap, gt_fgr.shape) & (_as_unit(gt_alpha) > 0)  # masked pixels add 0
    pixels = int(np.count_nonzero(region_mask(trimap, gt_fgr.shape)))
    if not pixels:
        return 0.0
    squared = np.square(pred_fgr - gt_fgr)
    # mean over channels of (Σ_region Δ_c² / n) = Σ_region,c Δ² / (n·C)
    return float(np.sum(squared, where=region[:, :, None], dtype=np.float64) / (pixels * squared.shape[2]))


def alpha_metrics(pred, gt, trimap=None, convention: str = "standard") -> dict:
    """The reported alpha metrics of one image under a convention (see the module docstring).

    Args:
        pred, gt: alphas (H, W), float in [0, 1] or uint8.
        trimap: uint8 (H, W) with 128 = unknown, or None for the whole image.
        convention: ``"standard"`` → keys sad, mse (×1e3), grad, conn; ``"paddle-port"`` → sad, mse.
    Returns:
        dict of floats, plus ``pixels`` = number of region pixels.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; choose from {sorted(CONVENTIONS)}")
    pixels = int(region_mask(trimap, np.shape(gt)).sum())
    if convention == "paddle-port":
        pred_u, gt_u = _as_unit(pred), _as_unit(gt)
        _check_pair(pred_u, gt_u)
        squared = ((pred_u - gt_u) ** 2)[region_mask(trimap, gt_u.shape)].sum()
        return {"sad": 2.0 * sad(pred_u, gt_u, trimap), "mse": float(2.0 * 1e3 * squared / (pixels + 1)),
                "pixels": pixels}
    return {"sad": sad(pred, gt, trimap), "mse": mse(pred, gt, trimap) * 1e3, "grad": grad(pred, gt, trimap),
            "conn": conn(pred, gt, trimap), "pixels": pixels}

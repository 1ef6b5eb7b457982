"""Metrics: hand-computed cases, invariances, and loop re-implementations of the DIM MATLAB definitions."""
import math
from collections import deque

import numpy as np
import pytest

from bgmatting import metrics


def _random_case(seed, shape=(12, 15)):
    rng = np.random.default_rng(seed)
    gt = np.clip(rng.random(shape) * 1.6 - 0.3, 0, 1).astype(np.float32)
    pred = np.clip(gt + rng.normal(0, 0.2, shape), 0, 1).astype(np.float32)
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), size=shape)
    return pred, gt, trimap


# ----------------------------------------------------------------------------------------------- SAD / MSE
def _hand_case():
    gt = np.zeros((4, 4), np.float32)
    pred = np.zeros((4, 4), np.float32)
    pred[0, 0] = pred[0, 1] = 0.5  # unknown pixels
    pred[3, 3] = 1.0  # a known pixel: counted only for the whole image
    trimap = np.zeros((4, 4), np.uint8)
    trimap[0, :] = 128  # 4 unknown pixels
    return pred, gt, trimap


def test_sad_and_mse_hand_computed():
    pred, gt, trimap = _hand_case()
    assert metrics.sad(pred, gt, trimap) == pytest.approx((0.5 + 0.5) / 1000)
    assert metrics.sad(pred, gt) == pytest.approx((0.5 + 0.5 + 1.0) / 1000)
    assert metrics.mse(pred, gt, trimap) == pytest.approx((0.25 + 0.25) / 4)
    assert metrics.mse(pred, gt) == pytest.approx((0.25 + 0.25 + 1.0) / 16)
    report = metrics.alpha_metrics(pred, gt, trimap)
    assert report["mse"] == pytest.approx(125.0)  # reported ×1e3
    assert report["pixels"] == 4


def test_paddle_port_hand_computed():
    pred, gt, trimap = _hand_case()
    port = metrics.alpha_metrics(pred, gt, trimap, convention="paddle-port")
    assert set(port) == {"sad", "mse", "pixels"}
    assert port["sad"] == pytest.approx(2 * 1.0 / 1000)
    assert port["mse"] == pytest.approx(2 * 1000 * 0.5 / (4 + 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paddle_port_relation_to_standard(seed):
    pred, gt, trimap = _random_case(seed)
    standard = metrics.alpha_metrics(pred, gt, trimap)
    port = metrics.alpha_metrics(pred, gt, trimap, convention="paddle-port")
    n = int((trimap == 128).sum())
    assert port["sad"] == pytest.approx(2 * standard["sad"], rel=1e-9)
    assert port["mse"] == pytest.approx(2 * standard["mse"] * n / (n + 1), rel=1e-6)


def test_uint8_inputs_are_divided_by_255():
    pred, gt, trimap = _random_case(3)
    pred8, gt8 = (pred * 255).round().astype(np.uint8), (gt * 255).round().astype(np.uint8)
    as_float = metrics.alpha_metrics(pred8.astype(np.float32) / 255, gt8.astype(np.float32) / 255, trimap)
    as_uint8 = metrics.alpha_metrics(pred8, gt8, trimap)
    assert as_uint8 == pytest.approx(as_float)
    assert as_uint8["sad"] > 0


@pytest.mark.parametrize("convention", ["standard", "paddle-port"])
def test_perfect_prediction_scores_zero(convention):
    _, gt, trimap = _random_case(4)
    for region in (trimap, None):
        values = metrics.alpha_metrics(gt, gt.copy(), region, convention=convention)
        assert all(values[name] == 0 for name in metrics.METRIC_NAMES[convention])


def test_empty_region_scores_zero_without_nan():
    pred, gt, _ = _random_case(5)
    all_known = np.full(gt.shape, 255, np.uint8)
    values = metrics.alpha_metrics(pred, gt, all_known)
    assert values == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "pixels": 0}


def test_metrics_grow_with_the_error_and_are_symmetric():
    _, gt, trimap = _random_case(6)
    small = np.clip(gt + 0.05, 0, 1)
    large = np.clip(gt + 0.3, 0, 1)
    assert metrics.sad(small, gt, trimap) < metrics.sad(large, gt, trimap)
    assert metrics.mse(small, gt, trimap) < metrics.mse(large, gt, trimap)
    pred, gt, trimap = _random_case(7)
    for fn in (metrics.sad, metrics.mse, metrics.grad):
        assert fn(pred, gt, trimap) == pytest.approx(fn(gt, pred, trimap), rel=1e-6)


def test_unknown_convention_and_shape_mismatch_are_rejected():
    pred, gt, trimap = _random_case(8)
    with pytest.raises(ValueError, match="convention"):
        metrics.alpha_metrics(pred, gt, trimap, convention="matlab")
    with pytest.raises(ValueError, match="equal-shape"):
        metrics.sad(pred[:-1], gt, None)
    with pytest.raises(ValueError, match="trimap shape"):
        metrics.sad(pred, gt, trimap[:-1])


# ----------------------------------------------------------------------------------------------- Grad
def _gaussgradient_reference(image, sigma=1.4):
    """gaussgradient.m with loops: hx(i,j) = gauss(i−c)·dgauss(j−c), normalised; imfilter 'replicate','conv'."""
    epsilon = 1e-2
    halfsize = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    size = 2 * halfsize + 1

    def gauss(x):
        return math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))

    def dgauss(x):
        return -x * gauss(x) / (sigma * sigma)

    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - halfsize) * dgauss(j - halfsize)
    hx /= math.sqrt((np.abs(hx) ** 2).sum())
    hy = hx.T
    height, width = image.shape
    gx = np.zeros_like(image, dtype=np.float64)
    gy = np.zeros_like(image, dtype=np.float64)
    for y in range(height):
        for x in range(width):
            for i in range(size):
                for j in range(size):
                    # convolution: out(y, x) = Σ h(i, j)·in(y − (i − c), x − (j − c)), borders replicated
                    yy = min(max(y - (i - halfsize), 0), height - 1)
                    xx = min(max(x - (j - halfsize), 0), width - 1)
                    gx[y, x] += hx[i, j] * image[yy, xx]
                    gy[y, x] += hy[i, j] * image[yy, xx]
    return gx, gy


def _grad_reference(pred, gt, trimap):
    def mat2gray(a):
        a = a.astype(np.float64)
        return (a - a.min()) / (a.max() - a.min())

    px, py = _gaussgradient_reference(mat2gray(pred))
    tx, ty = _gaussgradient_reference(mat2gray(gt))
    error = (np.sqrt(px**2 + py**2) - np.sqrt(tx**2 + ty**2)) ** 2
    return (error * (trimap == 128)).sum() / 1000


def test_gauss_gradient_kernel_has_nine_taps_and_unit_norm():
    # halfsize = ceil(1.4·sqrt(−2·ln(sqrt(2π)·1.4·0.01))) = ceil(3.62) = 4
    gauss, dgauss = metrics.gauss_gradient_kernels(1.4)
    assert gauss.shape == dgauss.shape == (9,)
    hx = np.outer(gauss, dgauss)
    assert (hx**2).sum() == pytest.approx(1.0)
    assert np.allclose(hx, -hx[:, ::-1])  # odd along x
    assert np.allclose(hx, hx[::-1, :])  # even along y


@pytest.mark.parametrize("seed", [0, 1])
def test_grad_matches_loop_reference(seed):
    pred, gt, trimap = _random_case(seed, shape=(9, 11))
    expected = _grad_reference(pred, gt, trimap)
    assert expected > 0
    assert metrics.grad(pred, gt, trimap) == pytest.approx(expected, rel=1e-4)


def test_grad_with_a_band_trimap_matches_loop_reference():
    # a region far from the borders: the implementation filters only its bounding box + the filter reach
    pred, gt, _ = _random_case(11, shape=(16, 18))
    trimap = np.zeros(gt.shape, np.uint8)
    trimap[7:9, 6:10] = 128
    expected = _grad_reference(pred, gt, trimap)
    assert expected > 0
    assert metrics.grad(pred, gt, trimap) == pytest.approx(expected, rel=1e-4)


def test_grad_ignores_affine_changes_of_the_prediction():
    # mat2gray normalises each alpha, so a·gt + b (a > 0) has the same normalised gradients as gt.
    _, gt, trimap = _random_case(9)
    scaled = 0.5 * gt + 0.2
    assert metrics.sad(scaled, gt, trimap) > 0
    assert metrics.grad(scaled, gt, trimap) == pytest.approx(0.0, abs=1e-9)


def test_grad_of_a_constant_prediction_equals_the_gt_gradient_energy():
    _, gt, trimap = _random_case(10)
    constant = np.full_like(gt, 0.7)
    gt_magnitude = metrics.gradient_magnitude(metrics.mat2gray(gt))
    expected = float((gt_magnitude.astype(np.float64) ** 2 * (trimap == 128)).sum() / 1000)
    assert metrics.grad(constant, gt, trimap) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------------------------- Conn
def _components_column_major(mask):
    """4-connected components labelled in MATLAB bwconncomp order (scan in column-major order)."""
    height, width = mask.shape
    labels = np.zeros(mask.shape, int)
    sizes = []
    for x in range(width):
        for y in range(height):
            if mask[y, x] and labels[y, x] == 0:
                sizes.append(0)
                queue = deque([(y, x)])
                labels[y, x] = len(sizes)
                while queue:
                    cy, cx = queue.popleft()
                    sizes[-1] += 1
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and labels[ny, nx] == 0:
                            labels[ny, nx] = len(sizes)
                            queue.append((ny, nx))
    return labels, sizes


def _conn_reference(pred, gt, trimap, step=0.1, theta=0.15):
    """compute_connectivity_error.m with explicit loops (pred, gt as uint8, compared in single precision)."""
    pred = pred.astype(np.float32) / np.float32(255)
    gt = gt.astype(np.float32) / np.float32(255)
    thresholds = [np.float32(k / 10) for k in range(11)]
    l_map = -np.ones(pred.shape)
    for ii in range(1, len(thresholds)):
        labels, sizes = _components_column_major((pred >= thresholds[ii]) & (gt >= thresholds[ii]))
        omega = np.zeros(pred.shape, bool)
        if sizes:
            omega = labels == int(np.argmax(sizes)) + 1  # argmax: first maximum, as MATLAB's max
        for y in range(pred.shape[0]):
            for x in range(pred.shape[1]):
                if l_map[y, x] == -1 and not omega[y, x]:
                    l_map[y, x] = float(thresholds[ii - 1])
    l_map[l_map == -1] = 1
    loss = 0.0
    for y in range(pred.shape[0]):
        for x in range(pred.shape[1]):
            pd, gd = float(pred[y, x]) - l_map[y, x], float(gt[y, x]) - l_map[y, x]
            pred_phi = 1 - pd * (pd >= theta)
            gt_phi = 1 - gd * (gd >= theta)
            if trimap[y, x] == 128:
                loss += abs(pred_phi - gt_phi)
    return loss / 1000


def test_conn_hand_computed_hole():
    # gt = 1 1 1 1, pred = 1 1 0 1: components of the intersection {0,1} (kept) and {3} (dropped at t=0.1),
    # so l = 1 1 0 0; φ_pred = 1 1 1 0, φ_gt = 1 1 0 0 → Σ|Δφ| = 1 → 0.001.
    gt = np.ones((1, 4), np.float32)
    pred = np.array([[1, 1, 0, 1]], np.float32)
    assert metrics.conn(pred, gt) == pytest.approx(0.001, abs=1e-9)


def test_conn_tie_goes_to_the_first_component_in_column_major_order():
    # A = (0, 2) and B = (2, 0) tie (1 px each) at t = 0.1; MATLAB keeps B (first in column-major order),
    # so l_B = 0.1 (B leaves at t = 0.2), l_A = 0: B adds |(1 − 0.1) − 0| = 0.9 since 0.18 − 0.1 < θ; A adds 0.
    # Keeping A instead would give l_B = 0 and |(1 − 0) − (0.18 − 0)| = 0.82.
    gt = np.zeros((3, 3), np.float32)
    pred = np.zeros((3, 3), np.float32)
    gt[0, 2] = pred[0, 2] = 1.0
    gt[2, 0], pred[2, 0] = 1.0, 0.18
    assert metrics.conn(pred, gt) == pytest.approx(0.0009, abs=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_conn_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (10, 13)
    # few grey levels and blocky shapes make several components and ties at many thresholds
    levels = np.array([0, 25, 51, 102, 153, 204, 230, 255], np.uint8)
    gt = levels[rng.integers(0, len(levels), size=(5, 7))].repeat(2, 0).repeat(2, 1)[: shape[0], : shape[1]]
    pred = np.where(rng.random(shape) < 0.3, levels[rng.integers(0, len(levels), size=shape)], gt)
    trimap = np.where(rng.random(shape) < 0.7, 128, 0).astype(np.uint8)
    expected = _conn_reference(pred, gt, trimap)
    assert expected > 0
    assert metrics.conn(pred, gt, trimap) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_conn_with_empty_margins_matches_loop_reference():
    # a subject away from the borders: the implementation crops to the first mask's bounding box
    rng = np.random.default_rng(7)
    levels = np.array([0, 51, 102, 153, 204, 255], np.uint8)
    gt = np.zeros((14, 17), np.uint8)
    pred = np.zeros((14, 17), np.uint8)
    gt[3:11, 4:12] = levels[rng.integers(1, len(levels), size=(8, 8))]
    pred[3:11, 4:12] = np.where(rng.random((8, 8)) < 0.4, levels[rng.integers(0, len(levels), size=(8, 8))],
                                gt[3:11, 4:12])
    pred[0, 16] = 255  # a lone predicted pixel outside the gt: never in the intersection, l = 0
    trimap = np.full(gt.shape, 128, np.uint8)
    expected = _conn_reference(pred, gt, trimap)
    assert expected > 0
    assert metrics.conn(pred, gt, trimap) == pytest.approx(expected, rel=1e-6)
    level_map = metrics.connectivity_levels(pred / np.float32(255), gt / np.float32(255))
    assert level_map[0, 16] == 0 and level_map[:3].max() == 0


def test_conn_exact_threshold_boundary_counts_as_reached():
    # 51/255 = 0.2 exactly: the pixel is in the intersection at t = 0.2 (as MATLAB single comparison).
    gt = np.array([[255, 51]], np.uint8)
    pred = np.array([[255, 51]], np.uint8)
    levels = metrics.connectivity_levels(pred.astype(np.float32) / 255, gt.astype(np.float32) / 255)
    assert levels[0, 1] == pytest.approx(0.2)


# ----------------------------------------------------------------------------------------------- FG MSE
def test_fgr_mse_counts_only_pixels_with_gt_alpha_in_the_region():
    gt_alpha = np.array([[0.0, 0.5], [1.0, 1.0]], np.float32)
    trimap = np.array([[128, 128], [128, 0]], np.uint8)
    gt_fgr = np.zeros((2, 2, 3), np.float32)
    pred_fgr = np.zeros((2, 2, 3), np.float32)
    pred_fgr[0, 0] = 1.0  # gt alpha 0: masked out
    pred_fgr[1, 1] = 1.0  # known region: not counted
    pred_fgr[0, 1, 0] = 0.5  # counted in the red channel only: (0.25 / 3 px) / 3 channels
    assert metrics.fgr_mse(pred_fgr, gt_fgr, gt_alpha, trimap) == pytest.approx(0.25 / 3 / 3)
    assert metrics.fgr_mse(gt_fgr, gt_fgr, gt_alpha, trimap) == 0.0

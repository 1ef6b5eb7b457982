"""Losses: hand-computed values, zero for a perfect prediction, gradients reaching every predicted output."""
import math
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import paddle

from bgmatting import losses


def _t(array):
    return paddle.to_tensor(np.asarray(array, np.float32))


def _step_edge():
    """4×4 image, columns 0-1 are 0 and columns 2-3 are 1, shape (1, 1, 4, 4)."""
    return _t(np.tile([0.0, 0.0, 1.0, 1.0], (4, 1))[None, None])


def test_sobel_is_kornia_normalized_with_replicate_padding():
    magnitude = losses.sobel(_step_edge()).numpy()[0, 0]
    # columns 1 and 2 see 0 on the left and 1 on the right: (1 + 2 + 1)/8 = 0.5; columns 0 and 3 see a flat
    # neighbourhood thanks to replicate padding, so only sqrt(eps) remains.
    expected_row = [math.sqrt(1e-6), math.sqrt(0.25 + 1e-6), math.sqrt(0.25 + 1e-6), math.sqrt(1e-6)]
    np.testing.assert_allclose(magnitude, np.tile(expected_row, (4, 1)), rtol=1e-5)
    loss = losses.sobel_l1(_step_edge(), paddle.zeros([1, 1, 4, 4])).item()
    assert loss == pytest.approx(2 * (math.sqrt(0.25 + 1e-6) - math.sqrt(1e-6)) / 4, rel=1e-5)


def test_gradient_penalty_uses_unnormalized_sobel_with_zero_padding():
    ones = paddle.ones([1, 1, 3, 3])
    corner = np.zeros((1, 1, 3, 3), np.float32)
    corner[0, 0, 0, 0] = 1
    # at the top-left corner of a constant 1 image the zero padding leaves rows 0 (weight 2) and 1 (weight 1)
    # on the right: gx = 3, and likewise gy = 3; with pred = true only the 0.01 smoothness term remains.
    assert losses.gradient_penalty(ones, ones, _t(corner)).item() == pytest.approx(0.01 * 6)
    centre = np.zeros((1, 1, 3, 3), np.float32)
    centre[0, 0, 1, 1] = 1
    assert losses.gradient_penalty(ones, ones, _t(centre)).item() == pytest.approx(0.0)
    assert losses.gradient_penalty(ones, ones, _t(corner), penalty=0.0).item() == 0.0


def test_laplacian_ignores_constant_offsets_and_keeps_the_finest_band():
    rng = np.random.default_rng(0)
    true = _t(rng.random((2, 1, 64, 64)))
    assert losses.laplacian_l1(true, true).item() == 0.0
    # a constant offset lives only in the low-pass residual, which the pyramid does not include
    assert losses.laplacian_l1(true + 0.3, true).item() == pytest.approx(0.0, abs=1e-6)
    # a ±a checkerboard is killed by the binomial blur, so it all lands in level 0 (weight 1): a / 5 levels
    i, j = np.indices((64, 64))
    checker = _t(0.2 * (-1.0) ** (i + j))[None, None]
    assert losses.laplacian_l1(checker, paddle.zeros([1, 1, 64, 64])).item() == pytest.approx(0.2 / 5, rel=1e-5)


def test_masked_fgr_and_err_terms_by_hand():
    true_pha = _t(np.array([[[[0.0, 0.5], [1.0, 0.0]]]]))
    true_fgr = paddle.zeros([1, 3, 2, 2])
    pred_fgr = paddle.full([1, 3, 2, 2], 0.5)
    # 2 of 4 pixels have alpha != 0, error 0.5 there: mean over 12 elements = 0.5 * 6 / 12
    assert losses.masked_fgr_l1(pred_fgr, true_fgr, true_pha).item() == pytest.approx(0.25)
    pred_pha = true_pha + 0.1
    assert losses.err_mse(paddle.zeros([1, 1, 2, 2]), pred_pha, true_pha).item() == pytest.approx(0.01)
    assert losses.err_mse(paddle.full([1, 1, 2, 2], 0.1), pred_pha, true_pha).item() == pytest.approx(0.0, abs=1e-12)


def test_region_l1_is_the_mean_over_the_region():
    pred, true = paddle.ones([1, 1, 2, 2]), paddle.zeros([1, 1, 2, 2])
    pred_values = _t([[[[1.0, 0.0], [0.0, 0.0]]]])
    unknown = _t([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert losses.region_l1(pred_values, true, unknown).item() == pytest.approx(0.5)
    assert losses.region_l1(pred, true, 1 - unknown).item() == pytest.approx(1.0)
    assert losses.region_l1(pred, true, paddle.zeros([1, 1, 2, 2])).item() == 0.0


def _random_inputs(rng, shape, channels=1):
    return _t(rng.random((shape[0], channels) + shape[1:]))


def _leaves(*arrays):
    tensors = [_t(a) for a in arrays]
    for tensor in tensors:
        tensor.stop_gradient = False
    return tensors


def test_base_loss_zero_when_perfect_and_gradients_reach_pha_fgr_err():
    rng = np.random.default_rng(1)
    true_pha, true_fgr = _random_inputs(rng, (2, 64, 64)), _random_inputs(rng, (2, 64, 64), 3)
    weights = {"pha_laplacian": 1.0}
    total, terms = losses.base_loss(true_pha, true_fgr, paddle.zeros_like(true_pha), true_pha, true_fgr, weights)
    assert total.item() == pytest.approx(0.0, abs=1e-6) and set(terms) == {
        "pha_l1", "pha_sobel", "pha_laplacian", "fgr_l1", "err_mse"}
    pha, fgr, err = _leaves(rng.random((2, 1, 64, 64)), rng.random((2, 3, 64, 64)), rng.random((2, 1, 64, 64)))
    total, _ = losses.base_loss(pha, fgr, err, true_pha, true_fgr, weights)
    total.backward()
    for tensor in (pha, fgr, err):
        assert tensor.grad is not None and float(tensor.grad.abs().sum()) > 0


def test_base_loss_weights_scale_terms():
    rng = np.random.default_rng(2)
    pha, fgr, err = (_random_inputs(rng, (1, 8, 8), c) for c in (1, 3, 1))
    true_pha, true_fgr = _random_inputs(rng, (1, 8, 8)), _random_inputs(rng, (1, 8, 8), 3)
    total, terms = losses.base_loss(pha, fgr, err, true_pha, true_fgr, {"pha_sobel": 0.0, "fgr_l1": 2.0})
    expected = terms["pha_l1"] + 2.0 * terms["fgr_l1"] + terms["err_mse"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_refine_loss_zero_when_perfect_and_gradients_reach_every_output():
    # constant ground truth: the coarse ground truth and its upsampling equal the full-size one exactly
    true_pha, true_fgr = paddle.full([1, 1, 16, 16], 0.6), paddle.full([1, 3, 16, 16], 0.3)
    coarse_pha, coarse_fgr = paddle.full([1, 1, 4, 4], 0.6), paddle.full([1, 3, 4, 4], 0.3)
    total, terms = losses.refine_loss(true_pha, true_fgr, coarse_pha, coarse_fgr, paddle.zeros([1, 1, 4, 4]),
                                      true_pha, true_fgr)
    assert total.item() == pytest.approx(0.0, abs=1e-6) and len(terms) == 7
    rng = np.random.default_rng(3)
    outputs = _leaves(rng.random((1, 1, 16, 16)), rng.random((1, 3, 16, 16)), rng.random((1, 1, 4, 4)),
                      rng.random((1, 3, 4, 4)), rng.random((1, 1, 4, 4)))
    total, _ = losses.refine_loss(*outputs, _random_inputs(rng, (1, 16, 16)), _random_inputs(rng, (1, 16, 16), 3))
    total.backward()
    for tensor in outputs:
        assert tensor.grad is not None and float(tensor.grad.abs().sum()) > 0


def test_vitmatte_loss_zero_when_perfect_on_flat_alpha_and_differentiable():
    unknown = _t(np.pad(np.ones((32, 32)), 16)[None, None])
    flat = paddle.full([1, 1, 64, 64], 0.5)
    total, terms = losses.vitmatte_loss(flat, flat, unknown)
    assert total.item() == pytest.approx(0.0, abs=1e-6) and len(terms) == 4
    (pred,) = _leaves(np.random.default_rng(4).random((1, 1, 64, 64)))
    total, _ = losses.vitmatte_loss(pred, flat, unknown)
    total.backward()
    assert float(pred.grad.abs().sum()) > 0


def test_laplacian_fits_matches_what_the_pyramid_accepts():
    for side in (46, 48, 62, 63, 64, 65):
        fits = losses.laplacian_fits(side)
        image = paddle.zeros([1, 1, side, side])
        try:
            losses.laplacian_l1(image, image)
            ran = True
        except ValueError:
            ran = False
        assert fits == ran, side
    assert losses.laplacian_fits(64) and not losses.laplacian_fits(48)

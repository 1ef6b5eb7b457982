"""Training-step parity with the official PyTorch BackgroundMattingV2 (PyPI ``BackgroundMattingV2==1.0``).

The same randomised MattingRefine (converted to ours), the same batch (src, bgr, true pha, true fgr), train mode
(BatchNorm on batch statistics on both sides, ASPP dropout off on both sides so the step is deterministic), float64
on both sides (in float32, BatchNorm over a 2-image batch with random weights amplifies rounding to ~1e-2 in the
deepest gradients, on both sides alike, hiding what is compared): the
official ``train_refine.py`` loss — written here in torch from its formula — and ours (the trainer's
:func:`bgmatting.engine.trainer.compute_loss`) agree in value, per term, and in the gradients of parameters in
every module (backbone first conv, ASPP, decoder, every refiner conv and BatchNorm). The refiner runs in sampling
mode (the training mode) on the same patches on both sides, and in full mode.

This caught Paddle 3.3.1's ``Tensor.unfold`` backward (the official ``unfold`` patch crop) dropping most of the
refiner's gradient to the base network: the base gradients were ~0.5 % off in eval mode and the hidden features
(used only by the refiner) got almost no training signal.
"""
import numpy as np
import paddle
import pytest
import torch
import torch.nn.functional as TF

from bgmatting.engine import build
from bgmatting.engine.trainer import compute_loss
from bgmatting.config import TRAIN_DEFAULTS
from tests.bgmv2_reference import reference_model
from tests.test_bgmv2_parity import convert_with_cli

HEIGHT, WIDTH = 128, 160
SAMPLE_PIXELS = 1600  # 100 of the 32 x 40 = 1280 quarter-resolution patches per image
LOSS_WEIGHTS = {"pha_l1": 1.0, "pha_sobel": 1.0, "pha_laplacian": 0.0, "fgr_l1": 1.0, "err_mse": 1.0}
#: parameters whose gradients are compared (official names; ours are the same)
PARAMETERS = ["backbone.features.0.0.weight", "backbone.features.17.conv.2.weight", "aspp.project.0.weight",
              "decoder.conv1.weight", "decoder.conv4.weight", "decoder.conv4.bias",
              "refiner.conv1.weight", "refiner.bn1.weight", "refiner.conv2.weight", "refiner.bn2.bias",
              "refiner.conv3.weight", "refiner.bn3.weight", "refiner.conv4.weight", "refiner.conv4.bias"]


# ---------------------------------------------------------------- the official loss, written from its formula
def _t_resize(x, size):
    return TF.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _t_sobel(x):
    """kornia 0.4.1 ``sobel``: |∇x| with the Sobel kernels / 8, replicate padding, sqrt(gx² + gy² + 1e-6)."""
    b, c, h, w = x.shape
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype) / 8
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    g = TF.conv2d(TF.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt(g[:, :1] ** 2 + g[:, 1:] ** 2 + 1e-6).reshape(b, c, h, w)


def official_refine_loss(pha, fgr, pha_sm, fgr_sm, err_sm, true_pha, true_fgr):
    """``train_refine.compute_loss``: L1 alpha + L1 Sobel alpha (both scales), masked L1 foreground (both scales),
    MSE of the up-sampled error map against |up(pha_sm) − true pha|. Returns a dict of the seven terms."""
    true_pha_sm, true_fgr_sm = _t_resize(true_pha, pha_sm.shape[2:]), _t_resize(true_fgr, fgr_sm.shape[2:])
    mask, mask_sm = (true_pha != 0).to(pha.dtype), (true_pha_sm != 0).to(pha.dtype)
    full = true_pha.shape[2:]
    return {"pha_l1": TF.l1_loss(pha, true_pha), "pha_l1_sm": TF.l1_loss(pha_sm, true_pha_sm),
            "pha_sobel": TF.l1_loss(_t_sobel(pha), _t_sobel(true_pha)),
            "pha_sobel_sm": TF.l1_loss(_t_sobel(pha_sm), _t_sobel(true_pha_sm)),
            "fgr_l1": TF.l1_loss(fgr * mask, true_fgr * mask),
            "fgr_l1_sm": TF.l1_loss(fgr_sm * mask_sm, true_fgr_sm * mask_sm),
            "err_mse": TF.mse_loss(_t_resize(err_sm, full), (_t_resize(pha_sm, full) - true_pha).abs())}


# ----------------------------------------------------------------------------------------------- the batch
def training_batch(seed=0, batch=2):
    """A matting batch with structure: a soft blob, thin strands at partial opacity, textured fgr, an
    imperfect plate (noise + exposure). Returns float64 torch tensors (src, bgr, pha, fgr), NCHW in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH].astype(np.float32)
    phas = []
    for _ in range(batch):
        cy, cx = rng.uniform(0.4, 0.6) * HEIGHT, rng.uniform(0.4, 0.6) * WIDTH
        blob = np.clip((28.0 - np.hypot(yy - cy, xx - cx)) / 4.0, 0, 1)
        strands = np.zeros_like(blob)
        for _ in range(8):
            angle, opacity = rng.uniform(0, np.pi), rng.uniform(0.3, 0.9)
            distance = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
            strands = np.maximum(strands, opacity * np.clip(1.2 - distance, 0, 1) * (np.hypot(yy - cy, xx - cx) < 55))
        phas.append(np.maximum(blob, strands))
    pha = np.stack(phas)[:, None]
    fgr = rng.uniform(0.2, 0.9, (batch, 3, 1, 1)) + 0.1 * rng.standard_normal((batch, 3, HEIGHT, WIDTH))
    bgr = rng.uniform(0.1, 0.9, (batch, 3, 1, 1)) + 0.05 * np.sin(xx / 7.0 + yy / 11.0)
    fgr, bgr = np.clip(fgr, 0, 1), np.clip(bgr, 0, 1)
    src = fgr * pha + bgr * (1 - pha)
    plate = np.clip(bgr * 1.05 + 0.01 * rng.standard_normal(bgr.shape), 0, 1)
    return [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in (src, plate, pha, fgr)]


# -------------------------------------------------------------------------------------------- the models
def _dropout_off(torch_model, ours):
    for module in torch_model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    for layer in ours.sublayers():
        if isinstance(layer, paddle.nn.Dropout):
            layer.eval()


@pytest.fixture(scope="module")
def model_pair(tmp_path_factory):
    torch_model = reference_model("mattingrefine", "mobilenetv2", seed=4, refine_sample_pixels=SAMPLE_PIXELS).double()
    ours = build.build_model({**TRAIN_DEFAULTS["model"], "type": "MattingRefine", "backbone": "mobilenetv2",
                              "refine_sample_pixels": SAMPLE_PIXELS})  # as the trainer builds it
    ours.set_state_dict(convert_with_cli(torch_model, tmp_path_factory.mktemp("ckpt"), "mobilenetv2"))
    ours.to(dtype="float64")
    return torch_model, ours


def step_both(torch_model, ours, mode, batch):
    """One train-mode forward + backward on both sides → (official terms, our terms, official grads, our grads,
    official ref_sm, our ref_sm); numbers as float64 NumPy."""
    for refiner in (torch_model.refiner, ours.refiner):
        refiner.mode = mode
    torch_model.train()
    ours.train()
    _dropout_off(torch_model, ours)
    src, bgr, pha, fgr = batch
    torch_model.zero_grad()
    outputs = torch_model(src.clone(), bgr.clone())
    terms = official_refine_loss(*outputs[:5], pha, fgr)
    sum(terms.values()).backward()
    expected_grads = {name: p.grad.numpy() for name, p in torch_model.named_parameters()
                      if name in PARAMETERS}
    expected_terms = {name: float(value.detach()) for name, value in terms.items()}
    expected_terms["loss"] = float(sum(terms.values()))

    ours.clear_gradients()
    ours_outputs = ours(*(paddle.to_tensor(t.numpy()) for t in (src, bgr)))
    total, our_terms = compute_loss(ours_outputs, paddle.to_tensor(pha.numpy()), paddle.to_tensor(fgr.numpy()),
                                    LOSS_WEIGHTS)
    total.backward()
    got_grads = {name: p.grad.numpy() for name, p in ours.named_parameters() if name in PARAMETERS}
    got_terms = {name: float(value) for name, value in our_terms.items()}
    got_terms["loss"] = float(total)
    return (expected_terms, got_terms, expected_grads, got_grads, outputs[5].detach().numpy(),
            ours_outputs[5].numpy())


def relative_difference(expected, got):
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))


@pytest.mark.parametrize("mode, crop", [("sampling", None), ("sampling", "unfold"), ("full", None)],
                         ids=["sampling", "sampling-unfold", "full"])
def test_training_step_matches_official(model_pair, mode, crop):
    """crop None: the patch crop the trainer builds the model with; "unfold": the official default."""
    torch_model, ours = model_pair
    trainers = ours.refiner.patch_crop_method
    ours.refiner.patch_crop_method = crop or trainers
    try:
        expected_terms, got_terms, expected_grads, got_grads, expected_ref, got_ref = step_both(
            torch_model, ours, mode, training_batch())
    finally:
        ours.refiner.patch_crop_method = trainers
    np.testing.assert_array_equal(got_ref, expected_ref)  # the same patches refined
    if mode == "sampling":
        assert got_ref.sum() == 2 * SAMPLE_PIXELS // 16
    assert set(got_terms) == set(expected_terms)
    for name, value in expected_terms.items():
        assert got_terms[name] == pytest.approx(value, rel=1e-6), name
    assert set(got_grads) == set(PARAMETERS)
    for name in PARAMETERS:
        assert np.linalg.norm(expected_grads[name]) > 0, name  # every compared parameter is really trained
        assert relative_difference(expected_grads[name], got_grads[name]) < 1e-4, name


def test_every_module_has_its_learning_rate(model_pair):
    """The optimiser's groups hold every parameter once (BatchNorm statistics too: Adam skips those, they take no
    gradient), the refiner's at its own rate."""
    _, ours = model_pair
    rates = {"backbone": 5e-5, "aspp": 5e-5, "decoder": 1e-4, "refiner": 3e-4}
    groups = build.parameter_groups(ours, rates)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in ours.parameters())
    refiner_ids = {id(p) for p in ours.refiner.parameters()}
    refiner_group = next(g for g in groups if {id(p) for p in g["params"]} == refiner_ids)
    assert refiner_group["learning_rate"] == 3e-4

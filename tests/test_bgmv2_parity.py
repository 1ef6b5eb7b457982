"""Parity with the official PyTorch BackgroundMattingV2: random reference weights → .pth → our converter CLI →
our model; same inputs (batch 2, H ≠ W, sides not multiples of 16) → outputs within 1e-4, identical ref_sm."""

import numpy as np
import paddle
import pytest
import torch

from bgmatting.models import MattingBase, MattingRefine
from tests.bgmv2_reference import reference_model
from tests.conftest import run_script

BACKBONES = ["mobilenetv2", "resnet50", "resnet101"]
HEIGHT, WIDTH = 72, 104
SAMPLE_PIXELS = 1600  # 100 of the 18x26 = 468 quarter-resolution patches
OUTPUTS = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]


def convert_with_cli(model, tmp_path, name):
    src, dst = tmp_path / f"{name}.pth", tmp_path / f"{name}.pdparams"
    torch.save(model.state_dict(), src)
    done = run_script("tools/convert_weights.py", "--src", src, "--dst", dst)
    assert done.returncode == 0, done.stderr
    return paddle.load(str(dst))


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    src = torch.rand(2, 3, HEIGHT, WIDTH, generator=g)
    bgr = (src + 0.3 * torch.rand(2, 3, HEIGHT, WIDTH, generator=g)).clamp(0, 1)
    return src, bgr


@pytest.fixture(scope="module", params=[(b, k) for b in BACKBONES for k in (3, 1)], ids=lambda p: f"{p[0]}-k{p[1]}")
def model_pair(request, tmp_path_factory):
    backbone, kernel = request.param
    torch_model = reference_model("mattingrefine", backbone, seed=kernel, refine_kernel_size=kernel,
                                  refine_sample_pixels=SAMPLE_PIXELS)
    ours = MattingRefine(backbone, refine_kernel_size=kernel, refine_sample_pixels=SAMPLE_PIXELS)
    ours.set_state_dict(convert_with_cli(torch_model, tmp_path_factory.mktemp("ckpt"), backbone))
    ours.eval()
    return torch_model, ours


def set_mode(torch_model, ours, mode, threshold=0.1):
    for refiner in (torch_model.refiner, ours.refiner):
        refiner.mode, refiner.threshold = mode, threshold


def run_both(torch_model, ours, inputs):
    src, bgr = inputs
    with torch.no_grad():
        expected = [t.numpy() for t in torch_model(src, bgr)]
    with paddle.no_grad():
        got = [t.numpy() for t in ours(paddle.to_tensor(src.numpy()), paddle.to_tensor(bgr.numpy()))]
    return dict(zip(OUTPUTS, expected)), dict(zip(OUTPUTS, got))


def assert_parity(expected, got):
    for name in OUTPUTS:
        assert got[name].shape == expected[name].shape, name
        if name == "ref_sm":
            np.testing.assert_array_equal(got[name], expected[name])
        else:
            assert np.abs(got[name] - expected[name]).max() <= 1e-4, name


@pytest.mark.parametrize("mode", ["full", "sampling", "thresholding"])
def test_refine_parity(model_pair, inputs, mode):
    torch_model, ours = model_pair
    with torch.no_grad():
        err_sm = torch_model(*inputs)[4].numpy()
    set_mode(torch_model, ours, mode, threshold=float(np.median(err_sm)))  # about half the patches
    expected, got = run_both(torch_model, ours, inputs)
    assert_parity(expected, got)
    selected = expected["ref_sm"].sum()
    if mode == "sampling":
        assert selected == 2 * SAMPLE_PIXELS // 16  # the refiner really ran on patches
    elif mode == "thresholding":
        assert 0 < selected < expected["ref_sm"].size


@pytest.mark.parametrize("crop", ["unfold", "roi_align", "gather"])
@pytest.mark.parametrize("replace", ["scatter_nd", "scatter_element"])
def test_patch_methods_agree_with_reference(model_pair, inputs, crop, replace):
    torch_model, ours = model_pair
    set_mode(torch_model, ours, "sampling")
    ours.refiner.patch_crop_method, ours.refiner.patch_replace_method = crop, replace
    try:
        expected, got = run_both(torch_model, ours, inputs)
    finally:
        ours.refiner.patch_crop_method, ours.refiner.patch_replace_method = "unfold", "scatter_nd"
    assert_parity(expected, got)


def test_no_patch_selected_and_all_patches(model_pair, inputs):
    torch_model, ours = model_pair
    set_mode(torch_model, ours, "thresholding", threshold=1.0)  # err <= 1 everywhere → nothing to refine
    expected, got = run_both(torch_model, ours, inputs)
    assert expected["ref_sm"].sum() == 0
    assert_parity(expected, got)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_base_parity(backbone, inputs, tmp_path):
    torch_model = reference_model("mattingbase", backbone, seed=3)
    ours = MattingBase(backbone)
    ours.set_state_dict(convert_with_cli(torch_model, tmp_path, backbone))
    ours.eval()
    src, bgr = inputs
    src, bgr = src[:, :, :36, :52], bgr[:, :, :36, :52]
    with torch.no_grad():
        expected = [t.numpy() for t in torch_model(src, bgr)]
    with paddle.no_grad():
        got = [t.numpy() for t in ours(paddle.to_tensor(src.numpy()), paddle.to_tensor(bgr.numpy()))]
    for name, e, g in zip(["pha", "fgr", "err", "hid"], expected, got):
        assert g.shape == e.shape
        assert np.abs(g - e).max() <= 1e-4, name

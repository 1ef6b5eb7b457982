"""Behaviour of our BackgroundMattingV2 port beyond parity: selection rules, patch writing, input checks."""
import numpy as np
import paddle
import pytest

from bgmatting.errors import UserError
from bgmatting.models import MattingBase, MattingRefine
from bgmatting.models.bgmv2.refiner import Refiner


def quarter_error(height=6, width=8, zero_rows=3, seed=0):
    rng = np.random.default_rng(seed)
    err = rng.uniform(0.05, 1.0, size=(2, 1, height, width)).astype("float32")
    err[:, :, :zero_rows] = 0.0
    return paddle.to_tensor(err)


def test_prevent_oversampling_drops_zero_error_patches():
    err = quarter_error()
    everything = 16 * err.shape[2] * err.shape[3]
    ref = Refiner("sampling", everything, 0.1, prevent_oversampling=True).select_refinement_regions(err).numpy()
    np.testing.assert_array_equal(ref, (err.numpy() > 0).astype("float32"))
    ref = Refiner("sampling", everything, 0.1, prevent_oversampling=False).select_refinement_regions(err).numpy()
    assert ref.min() == 1.0


def test_sampling_takes_the_largest_errors_and_at_most_all_patches():
    err = quarter_error(zero_rows=0)
    ref = Refiner("sampling", 16 * 5, 0.1).select_refinement_regions(err).numpy()
    for b in range(2):
        flat = err.numpy()[b].ravel()
        np.testing.assert_array_equal(np.flatnonzero(ref[b].ravel()), np.sort(np.argsort(-flat)[:5]))
    ref = Refiner("sampling", 10**9, 0.1).select_refinement_regions(err).numpy()
    assert ref.min() == 1.0  # the official code crashes here (topk k > number of patches)


def test_thresholding_selects_errors_above_threshold():
    err = quarter_error(zero_rows=0)
    ref = Refiner("thresholding", 0, 0.5).select_refinement_regions(err).numpy()
    np.testing.assert_array_equal(ref, (err.numpy() > 0.5).astype("float32"))


@pytest.mark.parametrize("method", ["scatter_nd", "scatter_element"])
def test_replace_patch_writes_exact_values_and_leaves_input_alone(method):
    refiner = Refiner("sampling", 0, 0.1, patch_replace_method=method)
    image = paddle.rand([2, 3, 8, 12])
    before = image.numpy().copy()
    patches = paddle.rand([2, 3, 4, 4])
    idx = paddle.to_tensor([[0, 1, 2], [1, 0, 0]], dtype="int64")
    out = refiner.replace_patch(image, patches, idx).numpy()
    expected = before.copy()
    expected[0, :, 4:8, 8:12] = patches.numpy()[0]
    expected[1, :, 0:4, 0:4] = patches.numpy()[1]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(image.numpy(), before)


@pytest.mark.parametrize("method", ["unfold", "roi_align", "gather"])
def test_crop_patch_takes_padded_windows(method):
    refiner = Refiner("sampling", 0, 0.1, patch_crop_method=method)
    image = paddle.rand([2, 2, 8, 12])
    idx = paddle.to_tensor([[1, 1, 2]], dtype="int64")
    out = refiner.crop_patch(image, idx, 4, 2).numpy()
    padded = np.pad(image.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    np.testing.assert_allclose(out[0], padded[1, :, 4:12, 8:16], atol=1e-6)


@pytest.mark.parametrize("method", ["unfold", "roi_align", "gather"])
def test_crop_patch_gradient_sums_over_overlapping_windows(method):
    """The refiner's loss reaches the base network through crop_patch: the gradient of each input pixel is the
    sum over every window that holds it (overlapping 8×8 windows at stride 2, as the refiner crops)."""
    refiner = Refiner("sampling", 0, 0.1, patch_crop_method=method)
    rng = np.random.default_rng(0)
    image = paddle.to_tensor(rng.standard_normal((2, 3, 12, 16)).astype("float32"), stop_gradient=False)
    idx = np.array([[0, 1, 1], [0, 1, 2], [0, 2, 1], [1, 0, 0], [1, 4, 6]])
    weights = rng.standard_normal((len(idx), 3, 8, 8)).astype("float32")
    (refiner.crop_patch(image, paddle.to_tensor(idx), 2, 3) * paddle.to_tensor(weights)).sum().backward()
    expected = np.zeros((2, 3, 12 + 6, 16 + 6), "float32")
    for weight, (b, row, col) in zip(weights, idx):
        expected[b, :, 2 * row:2 * row + 8, 2 * col:2 * col + 8] += weight
    np.testing.assert_allclose(image.grad.numpy(), expected[:, :, 3:-3, 3:-3], atol=1e-5)


def test_input_checks_raise_clear_errors():
    model = MattingRefine("mobilenetv2")
    with pytest.raises(UserError, match="same shape"):
        model(paddle.rand([1, 3, 64, 64]), paddle.rand([1, 3, 64, 68]))
    with pytest.raises(UserError, match="divisible by 4"):
        model(paddle.rand([1, 3, 66, 64]), paddle.rand([1, 3, 66, 64]))
    with pytest.raises(UserError, match=r"\(B, 3, H, W\)"):
        MattingBase("mobilenetv2")(paddle.rand([1, 4, 64, 64]), paddle.rand([1, 4, 64, 64]))
    with pytest.raises(ValueError, match="backbone_scale"):
        MattingRefine("mobilenetv2", backbone_scale=0.75)
    with pytest.raises(ValueError, match="refine_mode"):
        MattingRefine("mobilenetv2", refine_mode="everything")
    with pytest.raises(UserError, match="unknown backbone"):
        MattingBase("vgg16")


def test_outputs_have_input_size_and_valid_ranges():
    model = MattingRefine("mobilenetv2", backbone_scale=0.5, refine_sample_pixels=400)
    model.eval()
    src, bgr = paddle.rand([1, 3, 44, 60]), paddle.rand([1, 3, 44, 60])
    pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = model(src, bgr)
    assert pha.shape == [1, 1, 44, 60] and fgr.shape == [1, 3, 44, 60]
    assert pha_sm.shape == [1, 1, 22, 30] and ref_sm.shape == [1, 1, 11, 15]
    for t in (pha, fgr, pha_sm, fgr_sm, err_sm):
        assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0


def test_paddleseg_backbone_runs_and_loads_imagenet_weights(tmp_path):
    from paddleseg.cvlibs import manager

    imagenet = manager.BACKBONES["ResNet50_vd"](output_stride=16)  # a 3-channel ImageNet-style backbone
    paddle.save(imagenet.state_dict(), str(tmp_path / "resnet50_vd_imagenet.pdparams"))
    model = MattingRefine("resnet50_vd", refine_sample_pixels=400,
                          backbone_pretrained=str(tmp_path / "resnet50_vd_imagenet.pdparams"))
    loaded = model.backbone.body.state_dict()
    for key, value in imagenet.state_dict().items():
        if not key.startswith("conv1_1.") or "_conv." not in key:  # the 6-channel first conv cannot load
            np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())
    model.eval()
    outputs = model(paddle.rand([1, 3, 48, 64]), paddle.rand([1, 3, 48, 64]))
    assert outputs[0].shape == [1, 1, 48, 64] and outputs[5].shape == [1, 1, 12, 16]

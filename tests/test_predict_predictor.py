"""Predictor: output conventions, padding without resizing, checkpoint checks, parity with the official pipeline."""
import numpy as np
import paddle
import pytest
import torch
import torch.nn.functional as TF

from bgmatting.engine.predictor import Predictor
from bgmatting.errors import UserError
from bgmatting.models import MattingBase, MattingRefine
from tests.bgmv2_reference import reference_model

HEIGHT, WIDTH = 61, 83  # neither side a multiple of 4
SAMPLE_PIXELS = 16 * 200  # 200 of the 16x21 patches (the official refiner fails when asked for more than exist)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    bgr = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return src, bgr


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    """An official-format .pth (torch.save of a randomised reference MattingRefine) and the torch model."""
    model = reference_model("mattingrefine", "mobilenetv2", seed=1, refine_sample_pixels=SAMPLE_PIXELS)
    path = tmp_path_factory.mktemp("ckpt") / "pytorch_mobilenetv2.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_outputs_have_input_size_and_ranges(images):
    src, bgr = images
    for model_type in ("mattingbase", "mattingrefine"):
        paddle.seed(7)  # random weights whose error map is not all zero, whatever ran before
        out = Predictor(model_type, "mobilenetv2")(src=src, bgr=bgr)
        assert set(out) == {"pha", "fgr", "err", "ref"}
        assert out["pha"].shape == out["err"].shape == out["ref"].shape == (HEIGHT, WIDTH)
        assert out["fgr"].shape == (HEIGHT, WIDTH, 3)
        for key in ("pha", "fgr", "err"):
            assert out[key].dtype == np.float32 and 0.0 <= out[key].min() and out[key].max() <= 1.0
        assert set(np.unique(out["ref"])) <= {0.0, 1.0}
    assert out["ref"].max() == 1.0  # the refiner refined something
    assert Predictor("mattingbase", "mobilenetv2")(src=src, bgr=bgr)["ref"].max() == 0.0


def test_multiple_of_4_input_goes_to_the_model_untouched(images):
    src, bgr = (image[:60, :80] for image in images)
    paddle.seed(3)
    model = MattingBase("mobilenetv2")
    model.eval()
    out = Predictor("mattingbase", "mobilenetv2", model=model)(src=src, bgr=bgr)
    to_tensor = lambda a: paddle.to_tensor(a.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)  # noqa: E731
    with paddle.no_grad():
        pha, fgr, err, _ = model(to_tensor(src), to_tensor(bgr))
    np.testing.assert_allclose(out["pha"], pha.numpy()[0, 0], atol=1e-6)
    np.testing.assert_allclose(out["fgr"], fgr.numpy()[0].transpose(1, 2, 0), atol=1e-6)
    np.testing.assert_allclose(out["err"], err.numpy()[0, 0], atol=1e-6)


def test_float_input_equals_uint8_input(images):
    src, bgr = images
    predictor = Predictor("mattingbase", "mobilenetv2")
    a = predictor(src=src, bgr=bgr)["pha"]
    b = predictor(src=src.astype(np.float32) / 255.0, bgr=bgr.astype(np.float64) / 255.0)["pha"]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_official_checkpoint_matches_official_pipeline(images, official_checkpoint):
    """The official inference_images.py: model(src, bgr) on the (padded) input, err bilinear- and ref nearest-
    upsampled with torch; our Predictor reading the same .pth must agree after cropping."""
    path, torch_model = official_checkpoint
    src, bgr = images
    predictor = Predictor("mattingrefine", "mobilenetv2", checkpoint=path, refine_sample_pixels=SAMPLE_PIXELS)
    out = predictor(src=src, bgr=bgr)

    pad = lambda a: np.pad(a, ((0, 3), (0, 1), (0, 0)), mode="edge")  # 61x83 -> 64x84  # noqa: E731
    to_torch = lambda a: torch.from_numpy(pad(a).astype(np.float32).transpose(2, 0, 1)[None] / 255.0)  # noqa: E731
    with torch.no_grad():
        pha, fgr, _, _, err, ref = torch_model(to_torch(src), to_torch(bgr))
        err = TF.interpolate(err, (64, 84), mode="bilinear", align_corners=False)
        ref = TF.interpolate(ref, (64, 84), mode="nearest")
    crop = lambda t: t[0].numpy().transpose(1, 2, 0)[:HEIGHT, :WIDTH].squeeze()  # noqa: E731
    assert 0 < ref.sum() < ref.numel()
    np.testing.assert_allclose(out["pha"], crop(pha), atol=2e-4)
    np.testing.assert_allclose(out["fgr"], crop(fgr), atol=2e-4)
    np.testing.assert_allclose(out["err"], crop(err), atol=2e-4)
    np.testing.assert_array_equal(out["ref"], crop(ref))


def test_refine_checkpoint_also_serves_mattingbase(images, official_checkpoint):
    path, torch_model = official_checkpoint
    src, bgr = (image[:60, :80] for image in images)
    out = Predictor("mattingbase", "mobilenetv2", checkpoint=path)(src=src, bgr=bgr)
    to_torch = lambda a: torch.from_numpy(a.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)  # noqa: E731
    with torch.no_grad():
        x = torch_model.backbone(torch.cat([to_torch(src), to_torch(bgr)], dim=1))
        raw = torch_model.decoder(torch_model.aspp(x[0]), *x[1:])
    np.testing.assert_allclose(out["pha"], raw[0, 0].clamp(0, 1).numpy(), atol=2e-4)


def test_checkpoint_of_another_backbone_is_refused(official_checkpoint):
    with pytest.raises(UserError, match="holds a mobilenetv2 model but --model-backbone is resnet50"):
        Predictor("mattingrefine", "resnet50", checkpoint=official_checkpoint[0])


def test_base_checkpoint_for_refine_is_refused(tmp_path):
    paddle.seed(0)
    path = tmp_path / "base.pdparams"
    paddle.save(MattingBase("mobilenetv2").state_dict(), str(path))
    with pytest.raises(UserError, match="no refiner weights"):
        Predictor("mattingrefine", "mobilenetv2", checkpoint=path)


def test_refiner_kernel_mismatch_is_refused(official_checkpoint):
    with pytest.raises(UserError, match="kernel size 3 but --model-refine-kernel-size is 1"):
        Predictor("mattingrefine", "mobilenetv2", refine_kernel_size=1, checkpoint=official_checkpoint[0])


@pytest.mark.parametrize("content", [b"", b"hello, not weights", b"\x89PNG\r\n\x1a\n" + bytes(50)])
def test_not_a_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match=str(path)):
        Predictor("mattingrefine", "mobilenetv2", checkpoint=path)


def test_our_pdparams_round_trip(images, tmp_path):
    src, bgr = images
    paddle.seed(5)
    model = MattingRefine("mobilenetv2")
    path = tmp_path / "model.pdparams"
    paddle.save(model.state_dict(), str(path))
    expected = Predictor("mattingrefine", "mobilenetv2", model=model)(src=src, bgr=bgr)["pha"]
    loaded = Predictor("mattingrefine", "mobilenetv2", checkpoint=path)(src=src, bgr=bgr)["pha"]
    np.testing.assert_array_equal(loaded, expected)


def test_bad_arrays_are_refused(images):
    src, bgr = images
    predictor = Predictor("mattingbase", "mobilenetv2")
    with pytest.raises(UserError, match="src is 83x61 but the plate is 82x61"):
        predictor(src=src, bgr=bgr[:, :82])
    with pytest.raises(UserError, match="needs a clean plate"):
        predictor(src=src)
    with pytest.raises(UserError, match=r"\(H, W, 3\)"):
        predictor(src=src[:, :, 0], bgr=bgr[:, :, 0])

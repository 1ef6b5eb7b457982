"""Export → load → run round trips: Paddle Inference (oneDNN) and onnxruntime agree with dygraph within 1e-4 for
BackgroundMattingV2 (mobilenetv2, with refined patches and with none) and a tiny ViTMatte; the Predictor backends."""
import numpy as np
import paddle
import pytest

from bgmatting.engine.backends import OnnxRuntime, PaddleInferenceRuntime
from bgmatting.engine.predictor import Predictor
from bgmatting.errors import UserError
from bgmatting.engine.exporting import export_kind
from bgmatting.models import MattingRefine, ViTMatte

TOLERANCE = 1e-4
RUNTIMES = {"inference": PaddleInferenceRuntime, "onnx": OnnxRuntime}
OUTPUTS = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
TINY_VIT = dict(size="small", backbone=dict(embed_dim=64, num_heads=2, depth=4, window_block_indexes=[0, 2],
                                             residual_block_indexes=[1, 3], window_size=3, img_size=64,
                                             pretrain_img_size=48),
                convstream_out=(8, 16, 24), fusion_out=(32, 16, 12, 8))


def tiny_refine(mode, threshold=0.1):
    """mobilenetv2 MattingRefine, random weights; the error channel is centred on 0.5 and damped so the error map
    varies inside (0, 1) (random weights alone give err clipped to 0 or 1: ties among the sampled patches)."""
    paddle.seed(3)
    model = MattingRefine("mobilenetv2", refine_mode=mode, refine_sample_pixels=1600, refine_threshold=threshold)
    weight, bias = model.decoder.conv4.weight.numpy(), model.decoder.conv4.bias.numpy()
    weight[4] *= 0.1
    bias[4] = 0.5
    model.decoder.conv4.weight.set_value(weight)
    model.decoder.conv4.bias.set_value(bias)
    model.eval()
    return model


def images(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.random((batch, 3, height, width), dtype=np.float32)
    bgr = np.clip(src + 0.3 * rng.random(src.shape, dtype=np.float32) - 0.15, 0, 1).astype(np.float32)
    return src, bgr


def dygraph(model, *inputs):
    with paddle.no_grad():
        out = model(*[paddle.to_tensor(x) for x in inputs])
    return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]


@pytest.fixture(scope="module")
def refine_exports(tmp_path_factory):
    """(model, export dir) for sampling (patches refined), thresholding at 1.0 (no patch: err ≤ 1), and sampling
    exported at a fixed 64x96 (integer-ratio resizes instead of gather + lerp)."""
    exports = {}
    for name, mode, threshold, size in (("sampling", "sampling", 0.1, None), ("none", "thresholding", 1.0, None),
                                        ("fixed", "sampling", 0.1, (64, 96))):
        model = tiny_refine(mode, threshold)
        directory = tmp_path_factory.mktemp(name)
        export_kind(model, "mattingrefine", directory, {"backbone": "mobilenetv2"}, input_size=size, onnx=True)
        exports[name] = model, directory
    return exports


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", ["sampling", "none", "fixed"])
def test_bgmv2_runtimes_agree_with_dygraph(refine_exports, runtime, case):
    model, directory = refine_exports[case]
    run = RUNTIMES[runtime](directory, cpu_threads=2)
    shapes = ((2, 64, 96),) if case == "fixed" else ((2, 72, 104), (1, 64, 48))  # dynamic: any batch/H/W
    for shape in shapes:
        inputs = images(*shape)
        expected, got = dygraph(model, *inputs), run(*inputs)
        refined = expected[5].sum()
        assert (refined > 0) == (case != "none")
        assert 0 < expected[4].min() and expected[4].max() < 1  # no clipped errors: no ties in the sampling
        for name, want, have in zip(OUTPUTS, expected, got):
            assert have.shape == want.shape, name
            assert np.abs(have - want).max() < TOLERANCE, name
        np.testing.assert_array_equal(got[5], expected[5])


@pytest.fixture(scope="module")
def vitmatte_export(tmp_path_factory):
    paddle.seed(5)
    model = ViTMatte(**TINY_VIT)
    model.eval()
    directory = tmp_path_factory.mktemp("vitmatte")
    metadata = export_kind(model, "vitmatte", directory, {"size": "small"}, input_size=(64, 96), onnx=True)
    return model, directory, metadata


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_vitmatte_runtimes_agree_with_dygraph(vitmatte_export, runtime):
    model, directory, metadata = vitmatte_export
    assert metadata["inputs"] == [{"name": "pixel_values", "shape": [None, 4, 64, 96]}]
    run = RUNTIMES[runtime](directory, cpu_threads=2)
    pixel_values = np.random.default_rng(1).uniform(-1, 1, (2, 4, 64, 96)).astype(np.float32)
    (expected,), (got,) = dygraph(model, pixel_values), run(pixel_values)
    assert got.shape == (2, 1, 64, 96)
    assert np.abs(got - expected).max() < TOLERANCE
    with pytest.raises(UserError, match=r"pixel_values must have shape \[None, 4, 64, 96\].*--input-size"):
        run(pixel_values[:, :, :32])


def test_onnx_runtime_needs_the_onnx_file(tmp_path):
    export_kind(tiny_refine("sampling"), "mattingrefine", tmp_path, {"backbone": "mobilenetv2"})
    assert not (tmp_path / "model.onnx").exists()
    with pytest.raises(UserError, match="no model.onnx; export with --onnx"):
        OnnxRuntime(tmp_path)
    with pytest.raises(UserError, match="takes 2 inputs"):
        PaddleInferenceRuntime(tmp_path)(images(1, 8, 8)[0])


@pytest.mark.parametrize("backend", ["inference", "onnx"])
def test_predictor_backends_match_dygraph(refine_exports, tmp_path, backend):
    """Predictor(backend=...) on an export directory and on a checkpoint (exported on the fly) = dygraph."""
    model, directory = refine_exports["sampling"]
    checkpoint = tmp_path / "model.pdparams"
    paddle.save(model.state_dict(), str(checkpoint))
    options = dict(model_type="mattingrefine", backbone="mobilenetv2", refine_mode="sampling",
                   refine_sample_pixels=1600)
    rng = np.random.default_rng(2)
    src = rng.integers(0, 256, (70, 101, 3), dtype=np.uint8)  # padded to 72x104 and cropped back
    bgr = np.clip(src.astype(int) + rng.integers(-40, 40, src.shape), 0, 255).astype(np.uint8)
    expected = Predictor(**options, checkpoint=str(checkpoint))(src, bgr)
    assert expected["ref"].sum() > 0
    for source in (str(directory), str(checkpoint)):
        got = Predictor(**options, checkpoint=source, backend=backend, cpu_threads=1)(src, bgr)
        for name in ("pha", "fgr", "err", "ref"):
            assert got[name].shape == expected[name].shape
            assert np.abs(got[name] - expected[name]).max() < TOLERANCE, (source, name)


def test_predictor_rejects_an_export_of_another_backbone(refine_exports):
    _, directory = refine_exports["sampling"]
    with pytest.raises(UserError, match="holds a mobilenetv2 model but --model-backbone is resnet50"):
        Predictor("mattingrefine", "resnet50", checkpoint=str(directory), backend="inference")


@pytest.mark.parametrize("backend", ["inference", "onnx"])
def test_predictor_runs_a_vitmatte_export(vitmatte_export, backend):
    """Predictor("vitmatte", checkpoint=EXPORT_DIR, backend=...) = the dygraph Predictor on the same model; an image
    whose padded size differs from the export's fixed size is refused."""
    model, directory, _ = vitmatte_export
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (64, 90, 3), dtype=np.uint8)  # padded to 64x96, the export's size
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), (64, 90))
    expected = Predictor("vitmatte", model=model)(image, trimap=trimap)["pha"]
    got = Predictor("vitmatte", checkpoint=str(directory), backend=backend, cpu_threads=1)(image, trimap=trimap)["pha"]
    assert got.shape == (64, 90)
    assert np.abs(got - expected).max() < TOLERANCE
    with pytest.raises(UserError, match="fixed-size export"):
        Predictor("vitmatte", checkpoint=str(directory), backend=backend)(image[:, :60], trimap=trimap[:, :60])  # padded to 64x64


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("scale,kernel_size,size", [(0.125, 3, (64, 96)), (0.125, 3, (68, 100)), (0.5, 1, (44, 60)),
                                                    (0.25, 1, (None, None))])
def test_refiner_patch_path_other_ratios_agree_with_dygraph(tmp_path, runtime, scale, kernel_size, size):
    """The exported refiner computes its patches from the coarse features (per-patch interpolation matrices) and
    the full-resolution image (2×2 means): ratios coarse → half of 4 (4K settings), 4.25, 1 and 2 with kernel 1,
    fixed and dynamic sizes, patches at the borders included."""
    paddle.seed(7)
    model = MattingRefine("mobilenetv2", backbone_scale=scale, refine_sample_pixels=10 ** 6,  # every patch
                          refine_kernel_size=kernel_size)
    weight, bias = model.decoder.conv4.weight.numpy(), model.decoder.conv4.bias.numpy()
    weight[4] *= 0.1
    bias[4] = 0.5
    model.decoder.conv4.weight.set_value(weight)
    model.decoder.conv4.bias.set_value(bias)
    model.eval()
    fixed = size if size[0] is not None else None
    export_kind(model, "mattingrefine", tmp_path, {"backbone": "mobilenetv2"}, input_size=fixed,
                onnx=runtime == "onnx")
    inputs = images(2, *(size if fixed else (52, 76)))
    expected, got = dygraph(model, *inputs), RUNTIMES[runtime](tmp_path, cpu_threads=1)(*inputs)
    ref = expected[5]
    assert ref.sum() > 0 and ref[..., 0, :].sum() > 0 and ref[..., -1].sum() > 0  # border patches refined
    for name, want, have in zip(OUTPUTS, expected, got):
        assert np.abs(have - want).max() < TOLERANCE, name

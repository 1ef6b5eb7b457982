"""Export building blocks (oneDNN/ONNX-safe resize and pad, the refiner's static write-back) and the export and
predict CLIs: files, metadata, --check, --backend, and one clear error line per bad input."""
import json

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from bgmatting.data.io import read_alpha, write_image
from bgmatting.errors import UserError
from bgmatting.export import load_metadata
from bgmatting.models import MattingBase
from bgmatting.models.bgmv2.refiner import Refiner
from bgmatting.models.ops import gather_resize, resize_bilinear, resize_nearest, zero_pad
from tests.conftest import run_script, save_random_model


@pytest.mark.parametrize("size_in,size_out", [((37, 53), (100, 77)), ((72, 104), (18, 26)), ((270, 480), (1080, 1920)),
                                              ((4, 4), (8, 8)), ((36, 52), (76, 108))])
def test_gather_resize_matches_interpolate(size_in, size_out):
    x = paddle.to_tensor(np.random.default_rng(0).random((2, 3, *size_in), dtype=np.float32))
    bilinear = F.interpolate(x, size=list(size_out), mode="bilinear", align_corners=False).numpy()
    nearest = F.interpolate(x, size=list(size_out), mode="nearest").numpy()
    with gather_resize():
        assert np.abs(resize_bilinear(x, size_out).numpy() - bilinear).max() < 2e-6
        np.testing.assert_array_equal(resize_nearest(x, size_out).numpy(), nearest)
    assert np.abs(resize_bilinear(x, size_out).numpy() - bilinear).max() == 0  # the switch is scoped


def test_zero_pad_matches_f_pad():
    x = paddle.rand([2, 3, 4, 5])
    np.testing.assert_array_equal(zero_pad(zero_pad(x, 2, 3, 1), 3, 2, 0).numpy(),
                                  F.pad(x, [2, 0, 3, 1]).numpy())
    assert zero_pad(x, 1) is x


def test_weighted_replace_skips_the_dummy_patch_even_on_a_written_index():
    x = paddle.to_tensor(np.arange(2 * 8 * 8, dtype=np.float32).reshape([1, 2, 8, 8]))
    idx = paddle.to_tensor([[0, 1, 0], [0, 1, 0]], dtype="int64")  # a real patch and a dummy on the same place
    y = paddle.to_tensor(np.stack([np.full((2, 4, 4), -1.0), np.full((2, 4, 4), 99.0)]).astype(np.float32))
    out = Refiner("sampling", 64, 0.1).replace_patch(x, y, idx, paddle.to_tensor([1.0, 0.0])).numpy()
    expected = x.numpy().copy()
    expected[0, :, 4:8, 0:4] = -1.0
    np.testing.assert_array_equal(out, expected)


def test_load_metadata_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_metadata(tmp_path / "missing")
    with pytest.raises(UserError, match="not an export directory"):
        load_metadata(tmp_path)
    (tmp_path / "export.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_metadata(tmp_path)
    (tmp_path / "export.json").write_text(json.dumps({"format": 99, "model_type": "mattingbase"}))
    with pytest.raises(UserError, match="unknown export format 99"):
        load_metadata(tmp_path)


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    return save_random_model(tmp_path_factory, MattingBase)


@pytest.fixture(scope="module")
def exported(base_checkpoint, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("export") / "mbv2"
    done = run_script("tools/export.py", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                    "--model-path", base_checkpoint, "--save-dir", save_dir, "--check")
    assert done.returncode == 0, done.stderr
    return save_dir, done.stdout


def test_export_cli_writes_program_and_metadata_and_checks(exported):
    save_dir, stdout = exported
    assert {p.name for p in save_dir.iterdir()} == {"model.json", "model.pdiparams", "export.json", "model.yaml"}
    metadata = json.loads((save_dir / "export.json").read_text())
    assert metadata["model_type"] == "mattingbase" and metadata["options"] == {"backbone": "mobilenetv2"}
    assert metadata["inputs"] == [{"name": "src", "shape": [None, 3, None, None]},
                                  {"name": "bgr", "shape": [None, 3, None, None]}]
    assert metadata["outputs"] == ["pha", "fgr", "err", "hid"]
    difference = float(stdout.split("check inference: max |difference| vs dygraph = ")[1].split()[0])
    assert difference < 1e-4


def test_predict_cli_inference_backend_matches_dygraph(exported, base_checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (45, 62, 3), dtype=np.uint8)
    write_image(tmp_path / "src.png", src)
    write_image(tmp_path / "bgr.png", np.clip(src.astype(int) + 30, 0, 255).astype(np.uint8))
    alphas = {}
    for backend, checkpoint in (("dygraph", base_checkpoint), ("inference", exported[0])):
        done = run_script("predict.py", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                        "--model-checkpoint", checkpoint, "--src", tmp_path / "src.png", "--bgr", tmp_path / "bgr.png",
                        "--output-dir", tmp_path / backend, "--output-types", "pha", "--backend", backend,
                        "--cpu-threads", "1")
        assert done.returncode == 0, done.stderr
        alphas[backend] = read_alpha(next((tmp_path / backend / "pha").iterdir()))
    assert alphas["dygraph"].shape == (45, 62)
    assert np.abs(alphas["inference"] - alphas["dygraph"]).max() <= 1 / 255  # 8-bit PNGs: at most one level


@pytest.mark.parametrize("args,message", [
    (["--model-type", "mattingbase", "--model-path", "missing.pth"], "checkpoint not found: missing.pth"),
    (["--model-type", "vitmatte", "--model-path", "CKPT"], "give --input-size H W"),
    (["--model-type", "vitmatte", "--model-path", "CKPT", "--input-size", "100", "64"], "positive multiples of 32"),
    (["--model-type", "mattingbase", "--model-path", "CKPT", "--model-backbone", "resnet50"],
     "holds a mobilenetv2 model but --model-backbone is resnet50"),
    (["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-path", "CKPT"],
     "has no refiner weights"),
])
def test_export_cli_bad_input_one_line(base_checkpoint, tmp_path, args, message):
    args = [str(base_checkpoint) if a == "CKPT" else a for a in args]
    done = run_script("tools/export.py", *args, "--save-dir", tmp_path / "out")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


def test_export_cli_save_dir_is_a_file(base_checkpoint, tmp_path):
    (tmp_path / "file").write_text("x")
    done = run_script("tools/export.py", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                    "--model-path", base_checkpoint, "--save-dir", tmp_path / "file")
    assert done.returncode == 2 and "exists and is not a directory" in done.stderr


def test_predict_cli_rejects_zero_threads(tmp_path):
    done = run_script("predict.py", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                    "--model-checkpoint", "x", "--src", "x", "--bgr", "x", "--output-dir", tmp_path / "o",
                    "--output-types", "pha", "--cpu-threads", "0")
    assert done.returncode == 2 and done.stderr.strip() == "error: --cpu-threads must be >= 1, got 0"


def test_benchmark_cli_times_both_sides_and_reports_flops():
    done = run_script("tools/benchmark.py", "--model-backbone", "mobilenetv2", "--resolution", "128x96",
                    "--sample-pixels", "1600", "--backend", "dygraph", "--threads", "1", "--warmup", "0",
                    "--repeats", "2", "--compare-torch", "--markdown")
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stdout.splitlines() if l.startswith("mobilenetv2-128x96"))
    ours = float(line.split("ours median ")[1].split(" ms")[0])
    theirs = float(line.split("torch median ")[1].split(" ms")[0])
    ratio = float(line.split("ratio ours/torch ")[1].split()[0])
    rounding = ratio * (0.5 / ours + 0.5 / theirs) + 0.006  # medians are printed in whole ms, the ratio to 0.01
    assert ours > 0 and theirs > 0 and abs(ratio - ours / theirs) <= rounding
    assert float(line.split(" | ")[-1].split(" GFLOP")[0]) > 0  # counted by torch on the reference forward
    assert "| mobilenetv2-128x96 | 128x96 | dygraph | 1 |" in done.stdout


@pytest.mark.parametrize("args,message", [(["--resolution", "1921x1080"], "positive multiples of 4"),
                                          (["--resolution", "hd"], "WIDTHxHEIGHT"),
                                          (["--threads", "0"], "--threads and --repeats must be >= 1"),
                                          (["--preset", "vitmatte-s-4k", "hd-resnet50"], "times ViTMatte alone")])
def test_benchmark_cli_bad_input_one_line(args, message):
    done = run_script("tools/benchmark.py", *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_benchmark_vitmatte_memory_mode_reports_time_and_peak_rss():
    done = run_script("tools/benchmark.py", "--vitmatte-memory", "128x96", "96x64", "--backend", "dygraph")
    assert done.returncode == 0, done.stderr
    lines = [l for l in done.stdout.splitlines() if l.startswith("vitmatte-s ")]
    assert [l.split(":")[0] for l in lines] == ["vitmatte-s 128x96", "vitmatte-s 96x64"]
    assert "48 tokens" in lines[0] and "24 tokens" in lines[1]  # (128/16)*(96/16) and (96/16)*(64/16)
    for line in lines:
        assert float(line.split("peak RSS ")[1].split(" MB")[0]) > 100  # a fresh process holding Paddle


def test_benchmark_4k_vitmatte_preset_is_the_memory_measurement_at_3840x2160(monkeypatch):
    import tools.benchmark as benchmark

    calls = []
    monkeypatch.setattr(benchmark, "vitmatte_memory", lambda *args: calls.append(args))
    benchmark.main(["--preset", "vitmatte-s-4k", "--backend", "onnx", "--threads", "2"])
    benchmark.main(["--vitmatte-memory", "64x64", "--preset", "vitmatte-s-4k"])  # both: both measured
    assert calls == [(["3840x2160"], "onnx", 2), (["64x64", "3840x2160"], "inference", 2)]


def test_benchmark_vitmatte_memory_on_a_runtime_times_the_cached_run():
    """First process exports into a fresh cache, the second runs from it (the tool refuses a second export)."""
    done = run_script("tools/benchmark.py", "--vitmatte-memory", "96x64", "--backend", "inference", "--threads", "1")
    assert done.returncode == 0, done.stderr
    (line,) = [l for l in done.stdout.splitlines() if l.startswith("vitmatte-s ")]
    assert line.startswith("vitmatte-s 96x64: 24 tokens") and "inference 1 thread(s)" in line, line
    first = float(line.split("first run (export) ")[1].split(" s")[0])
    cached = float(line.split("cached run ")[1].split(" s")[0])
    assert first > cached > 0  # the export is in the first process only
    assert float(line.split("peak RSS ")[1].split(" MB")[0]) > 100


def test_fold_batch_norms_removes_every_batch_norm_and_keeps_the_outputs():
    from bgmatting.export import fold_batch_norms
    from bgmatting.models import MattingRefine

    paddle.seed(1)
    model = MattingRefine("mobilenetv2", refine_sample_pixels=1600)
    rng = np.random.default_rng(0)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):  # non-trivial statistics, or folding would change nothing
            n = layer._mean.shape[0]
            layer._mean.set_value(rng.normal(0, 0.1, n).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.weight.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
    model.eval()
    folded = fold_batch_norms(model)
    assert not [l for l in folded.sublayers() if isinstance(l, paddle.nn.BatchNorm2D)]
    assert len([l for l in model.sublayers() if isinstance(l, paddle.nn.BatchNorm2D)]) == 63  # the original intact
    src, bgr = paddle.rand([1, 3, 64, 96]), paddle.rand([1, 3, 64, 96])
    with paddle.no_grad():
        for want, got in zip(model(src, bgr), folded(src, bgr)):
            assert float((want - got).abs().max()) < 1e-5


def test_pad_conv_channels_widens_odd_convolutions_and_keeps_the_outputs():
    from bgmatting.export import fold_batch_norms, pad_conv_channels
    from bgmatting.models import MattingRefine

    paddle.seed(2)
    model = MattingRefine("mobilenetv2", refine_sample_pixels=1600)
    model.eval()
    folded = fold_batch_norms(model)
    padded = pad_conv_channels(folded)

    def dense_inputs(layer):
        return sorted(c.weight.shape[1] for c in layer.sublayers()
                      if isinstance(c, paddle.nn.Conv2D) and c._groups == 1)

    before, after = dense_inputs(folded), dense_inputs(padded)
    # the decoder's last conv (48 + 6 image channels) and the refiner's conv1 (36 + 6) and conv3 (16 + 6)
    assert [c for c in before if c > 16 and c % 8] == [22, 42, 54]
    assert [c for c in after if c > 16 and c % 8] == []
    from collections import Counter

    assert len(after) == len(before) and Counter(after) - Counter(before) == Counter([32, 48, 64])
    assert 6 in after and 12 in after  # small inputs (an image, the refiner's conv4) are left as they are
    src, bgr = paddle.rand([1, 3, 64, 96]), paddle.rand([1, 3, 64, 96])
    with paddle.no_grad():
        for want, got in zip(folded(src, bgr), padded(src, bgr)):
            assert float((want - got).abs().max()) < 1e-5


def test_onnx_export_has_no_convolution_off_the_blocked_layout(tmp_path_factory, tmp_path):
    import onnx

    from bgmatting.models import MattingRefine

    checkpoint = save_random_model(tmp_path_factory, MattingRefine)
    done = run_script("tools/export.py", "--model-type", "mattingrefine", "--model-backbone", "mobilenetv2",
                      "--model-path", checkpoint, "--input-size", "64", "96", "--save-dir", tmp_path / "e", "--onnx")
    assert done.returncode == 0, done.stderr
    graph = onnx.load(str(tmp_path / "e" / "model.onnx")).graph
    weights = {init.name: init.dims for init in graph.initializer}  # paddle2onnx writes weights as Constant nodes
    weights.update({node.output[0]: node.attribute[0].t.dims for node in graph.node if node.op_type == "Constant"})
    convs = [weights[node.input[1]] for node in graph.node if node.op_type == "Conv" and node.input[1] in weights]
    assert len(convs) > 50
    dense = [dims[1] for dims in convs if dims[1] > 16]  # input channels per group; depthwise convs have 1
    assert all(channels % 8 == 0 for channels in dense), sorted(set(dense))

"""ViTMatte and the bgmv2+vitmatte cascade on the default runtime (onnxruntime / Paddle Inference): equal to dygraph
within 1e-4 (padded sizes, the chunked-attention / tiled-decoder high-resolution path), one cached export per padded
size reused by a later Predictor and rebuilt for other options, and the cascade's two parts exported separately."""
import json

import numpy as np
import pytest

from bgmatting.data.io import read_image
from bgmatting.engine import export_cache
from bgmatting.engine.kinds import get_kind
from bgmatting.engine.predictor import Predictor, default_backend
from bgmatting.pipeline.extras import with_guide_outputs
from tests.test_cascade import base_checkpoint, pairs  # noqa: F401  (fixtures)
from tests.test_export_cache import cache  # noqa: F401  (fixture: a fresh export cache)
from tests.test_vitmatte_predict import checkpoint, photo_and_trimap  # noqa: F401  (fixture)

TOLERANCE = 1e-4


def export_shapes(root):
    """The input shape of every cache entry's export."""
    return sorted(json.loads((e / "export.json").read_text())["inputs"][0]["shape"][2:]
                  for e in root.iterdir() if not e.name.startswith("."))


def alpha(predictor, size, seed=0):
    image, trimap = photo_and_trimap(seed, size)
    return predictor(image, trimap=trimap)["pha"]


def test_vitmatte_and_the_cascade_default_to_the_fastest_runtime():
    assert default_backend(get_kind("vitmatte")) == "onnx"
    assert default_backend(get_kind("bgmv2+vitmatte")) == "onnx"
    assert default_backend(get_kind("vitmatte"), model=object()) == "dygraph"  # training's model in memory


@pytest.mark.parametrize("backend", ["onnx", "inference"])
def test_runtimes_equal_dygraph_on_padded_and_unpadded_sizes(cache, checkpoint, backend):
    dygraph = Predictor("vitmatte", checkpoint=str(checkpoint))
    fast = Predictor("vitmatte", checkpoint=str(checkpoint), backend=backend, cpu_threads=1)
    for size in ((45, 61), (64, 96)):  # padded inside to 64 x 64; 64 x 96 needs no padding
        got, want = alpha(fast, size), alpha(dygraph, size)
        assert got.shape == size and np.abs(got - want).max() < TOLERANCE
        assert want.std() > 1e-3  # an image-dependent alpha, not a constant both sides agree on
    assert export_shapes(cache) == [[64, 64], [64, 96]]


def test_one_export_per_padded_size_reused_by_the_next_run_and_rebuilt_for_other_options(cache, checkpoint):
    first = Predictor("vitmatte", checkpoint=str(checkpoint), backend=None, cpu_threads=1)
    assert first.backend == "onnx"
    expected = {size: alpha(first, size) for size in ((45, 61), (50, 64))}  # both padded to 64 x 64
    assert export_cache.stats == {"built": 1, "reused": 0, "rebuilt": 0}
    second = Predictor("vitmatte", checkpoint=str(checkpoint), backend=None, cpu_threads=1)  # a later run
    for size, want in expected.items():
        np.testing.assert_array_equal(alpha(second, size), want)
    assert export_cache.stats == {"built": 1, "reused": 1, "rebuilt": 0}  # read from disk, not exported
    alpha(second, (70, 61))  # 96 x 64: another padded size, another export
    chunked = Predictor("vitmatte", checkpoint=str(checkpoint), backend=None, cpu_threads=1, attention_chunk_size=7)
    alpha(chunked, (45, 61))  # same size, other options: not the cached graph
    assert export_cache.stats["built"] == 3 and export_shapes(cache) == [[64, 64], [64, 64], [96, 64]]


@pytest.mark.parametrize("backend", ["onnx", "inference"])
def test_high_resolution_path_through_the_runtime_equals_dygraph(cache, checkpoint, backend):
    """Chunked attention and the tiled decoder are unrolled into the exported graph (fixed size): same alpha."""
    bounded = dict(attention_chunk_size=7, decoder_tile_size=32, decoder_tile_overlap=64)
    size = (70, 100)  # padded to 96 x 128: 48 tokens in the global block (7 chunks), 3 x 4 decoder tiles
    want = alpha(Predictor("vitmatte", checkpoint=str(checkpoint), **bounded), size, seed=1)
    got = alpha(Predictor("vitmatte", checkpoint=str(checkpoint), backend=backend, cpu_threads=1, **bounded), size,
                seed=1)
    assert np.abs(got - want).max() < TOLERANCE
    plain = alpha(Predictor("vitmatte", checkpoint=str(checkpoint), backend=backend, cpu_threads=1), size, seed=1)
    assert np.abs(plain - want).max() < TOLERANCE
    programs = {}
    for entry in (e for e in cache.iterdir() if not e.name.startswith(".")):
        options = json.loads((entry / "export.json").read_text())["options"]
        programs[options["attention_chunk_size"]] = (entry / "model.json").read_text()
    # the chunked graph slices the score matrix: several softmax ops per global block instead of one
    assert programs[7].count('.softmax"') > programs[None].count('.softmax"')


def test_cascade_on_the_default_runtime_equals_dygraph(cache, pairs, base_checkpoint, checkpoint):  # noqa: F811
    src, bgr = read_image(pairs / "src/0000.png"), read_image(pairs / "bgr/0000.png")
    options = dict(model_type="bgmv2+vitmatte", backbone="mobilenetv2", checkpoint=str(base_checkpoint),
                   vitmatte_checkpoint=str(checkpoint), coarse_model_type="mattingbase", trimap_band=3,
                   trimap_low=0.1, trimap_high=0.9)
    dygraph = with_guide_outputs(Predictor(**options), ["trimap"])
    fast = Predictor(**options, backend=None, cpu_threads=1)
    assert fast.backend == "onnx" and sorted(fast.runner.exports) == ["bgmv2", "vitmatte"]
    got, want = with_guide_outputs(fast, ["trimap"])(src, bgr=bgr), dygraph(src, bgr=bgr)
    for name in ("pha", "fgr", "err", "ref"):
        assert got[name].shape == want[name].shape and np.abs(got[name] - want[name]).max() < TOLERANCE, name
    np.testing.assert_array_equal(got["trimap"], want["trimap"])  # the automatic trimap, read on the runtime
    assert len(np.unique(want["trimap"])) >= 2  # not a constant trimap both sides would agree on anyway
    kinds = sorted(json.loads((e / "export.json").read_text())["model_type"]
                   for e in cache.iterdir() if not e.name.startswith("."))
    assert kinds == ["mattingbase", "vitmatte"]  # each part exported on its own


def test_cascade_runtime_errors_name_the_problem(cache, base_checkpoint):  # noqa: F811
    from bgmatting.errors import UserError

    with pytest.raises(UserError, match="needs --model-vitmatte-checkpoint"):
        Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(base_checkpoint), coarse_model_type="mattingbase",
                  backend="onnx")
    with pytest.raises(UserError, match="not a ViTMatte checkpoint"):
        Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(base_checkpoint),
                  vitmatte_checkpoint=str(base_checkpoint), coarse_model_type="mattingbase", backend="onnx")
    with pytest.raises(UserError, match="trimap thresholds"):
        Predictor("bgmv2+vitmatte", "mobilenetv2", trimap_low=0.9, trimap_high=0.5, backend="onnx")


def test_predict_on_a_folder_of_mixed_sizes_exports_once_per_padded_size_and_never_again(cache, checkpoint,
                                                                                        tmp_path):
    """Two predict.py processes with default flags: the first exports 64 x 64 (two photos) and 96 x 64, the second
    finds both in the cache and leaves them untouched."""
    from bgmatting.data.io import write_image
    from tests.conftest import run_script

    for index, size in enumerate(((45, 61), (50, 64), (70, 61))):
        image, trimap = photo_and_trimap(index, size)
        write_image(tmp_path / "src" / f"{index}.png", image)
        write_image(tmp_path / "trimap" / f"{index}.png", trimap)
    stamps, outputs = [], []
    for run in range(2):
        done = run_script("predict.py", "--model-type", "vitmatte", "--model-checkpoint", checkpoint, "--src",
                          tmp_path / "src", "--trimap", tmp_path / "trimap", "--output-types", "pha", "--output-dir",
                          tmp_path / f"out{run}", "--cpu-threads", "1")
        assert done.returncode == 0, done.stderr
        assert export_shapes(cache) == [[64, 64], [96, 64]]
        stamps.append({p: p.stat().st_mtime_ns for p in cache.rglob("*")})
        outputs.append([p.read_bytes() for p in sorted((tmp_path / f"out{run}" / "pha").iterdir())])
    assert stamps[0] == stamps[1] and outputs[0] == outputs[1] and len(outputs[0]) == 3

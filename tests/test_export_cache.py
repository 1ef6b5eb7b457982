"""The export cache (bgmatting/engine/export_cache.py) and the fast default backend: a second run does not export
again, changed options or another size policy give a new export, a corrupt entry is rebuilt (never used), concurrent
builders agree, outputs equal dygraph within 1e-4, and ``backend=None``/``"auto"`` picks the fastest installed
runtime."""
import json
import os

import numpy as np
import paddle
import pytest

from bgmatting.engine import backends, export_cache
from bgmatting.engine.kinds import get_kind
from bgmatting.engine.model_source import locate
from bgmatting.engine.predictor import Predictor, default_backend
from bgmatting.export import export_model
from tests.conftest import run_script
from tests.test_backends import TOLERANCE, tiny_refine

OPTIONS = dict(model_type="mattingrefine", backbone="mobilenetv2", refine_mode="sampling", refine_sample_pixels=1600)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(export_cache.ENVIRONMENT_VARIABLE, str(root))
    monkeypatch.setattr(export_cache, "stats", {"built": 0, "reused": 0, "rebuilt": 0})
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pdparams"
    paddle.save(tiny_refine("sampling").state_dict(), str(path))
    return path


def photo(height, width, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return src, np.clip(src.astype(int) + rng.integers(-40, 40, src.shape), 0, 255).astype(np.uint8)


def entries(root):
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def assert_same(got, expected):
    for name in ("pha", "fgr", "err", "ref"):
        assert got[name].shape == expected[name].shape
        assert np.abs(got[name] - expected[name]).max() < TOLERANCE, name


def test_second_run_reuses_the_export_and_changed_options_export_again(cache, checkpoint, capsys):
    src, bgr = photo(70, 101)
    expected = Predictor(**OPTIONS, checkpoint=str(checkpoint))(src, bgr)
    first = Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="onnx", cpu_threads=1)
    assert_same(first(src, bgr), expected)
    assert export_cache.stats == {"built": 1, "reused": 0, "rebuilt": 0}
    (entry,) = entries(cache)
    assert {"model.json", "model.pdiparams", "model.onnx", "export.json", "cache.json"} <= \
        {p.name for p in entry.iterdir()}
    assert json.loads((entry / "export.json").read_text())["inputs"][0]["shape"] == [None, 3, 72, 104]  # padded size
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}

    second = Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="onnx", cpu_threads=1)
    assert_same(second(src, bgr), expected)
    assert export_cache.stats == {"built": 1, "reused": 1, "rebuilt": 0}
    assert entries(cache) == [entry] and {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps
    assert_same(second(*photo(48, 64, seed=1)), Predictor(**OPTIONS, checkpoint=str(checkpoint))(*photo(48, 64, 1)))
    assert export_cache.stats["built"] == 2 and len(entries(cache)) == 2  # another size: a fixed export of its own

    Predictor(**{**OPTIONS, "refine_sample_pixels": 800}, checkpoint=str(checkpoint), backend="onnx")(src, bgr)
    assert export_cache.stats["built"] == 3 and len(entries(cache)) == 3  # another option: another export
    Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="inference")(src, bgr)
    assert export_cache.stats["built"] == 4 and len(entries(cache)) == 4  # another runtime: another export
    err = capsys.readouterr().err
    assert err.count(f"bgmatting: export cache {cache}") == 1  # the location, once per process


def test_changed_weights_export_again(cache, checkpoint, tmp_path):
    src, bgr = photo(40, 48)
    Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="onnx")(src, bgr)
    other = tmp_path / "other.pdparams"
    model = tiny_refine("sampling")
    model.refiner.conv4.bias.set_value(model.refiner.conv4.bias.numpy() + 0.25)
    paddle.save(model.state_dict(), str(other))
    got = Predictor(**OPTIONS, checkpoint=str(other), backend="onnx")(src, bgr)
    assert export_cache.stats["built"] == 2
    assert_same(got, Predictor(**OPTIONS, checkpoint=str(other))(src, bgr))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_a_corrupt_entry_is_rebuilt_not_used(cache, checkpoint, damage):
    src, bgr = photo(40, 48)
    expected = Predictor(**OPTIONS, checkpoint=str(checkpoint))(src, bgr)
    Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="onnx")(src, bgr)
    (entry,) = entries(cache)
    target = entry / ("model.onnx" if damage != "manifest" else "cache.json")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # same size, one byte changed
        target.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "delete":
        target.unlink()
    else:
        target.write_text("{not json")
    got = Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="onnx")(src, bgr)
    assert export_cache.stats == {"built": 2, "reused": 0, "rebuilt": 1}
    assert entries(cache) == [entry] and export_cache.entry_is_valid(entry, json.loads(
        (entry / "cache.json").read_text())["key"])
    assert_same(got, expected)


@pytest.mark.parametrize("runtime", ["inference", "onnx"])
def test_runtimes_export_per_fixed_size_then_one_dynamic(cache, checkpoint, monkeypatch, runtime):
    monkeypatch.setattr(backends, "MAX_FIXED_SIZES", 1)
    predictor = Predictor(**OPTIONS, checkpoint=str(checkpoint), backend=runtime, cpu_threads=1)
    reference = Predictor(**OPTIONS, checkpoint=str(checkpoint))
    for size in ((64, 96), (48, 64), (64, 96), (40, 52)):
        images = photo(*size)
        assert_same(predictor(*images), reference(*images))
    shapes = sorted(str(json.loads((e / "export.json").read_text())["inputs"][0]["shape"]) for e in entries(cache))
    assert shapes == ["[None, 3, 64, 96]", "[None, 3, None, None]"]  # 48x64 and 40x52 share the dynamic export
    assert export_cache.stats["built"] == 2


def test_key_depends_on_code_weights_options_size_and_runtime(monkeypatch):
    base = dict(weights="file:abc", kind="mattingrefine", options={"backbone": "mobilenetv2"}, input_size=None,
                runtime="onnx")
    name = export_cache.entry_name(export_cache.key_fields(**base))
    for change in (dict(weights="file:abd"), dict(options={"backbone": "resnet50"}), dict(input_size=(64, 96)),
                   dict(runtime="inference"), dict(kind="mattingbase")):
        assert export_cache.entry_name(export_cache.key_fields(**{**base, **change})) != name, change
    monkeypatch.setattr(export_cache, "code_digest", lambda: "other code")  # an entry of other export code: stale
    assert export_cache.entry_name(export_cache.key_fields(**base)) != name


def test_concurrent_builders_of_one_key_agree(cache):
    """Another process renames its build into place while this one builds: this one's is dropped, theirs used."""
    from bgmatting.engine.exporting import export_kind

    fields = export_cache.key_fields("state:x", "mattingrefine", {}, None, "inference")

    def write(folder):
        export_kind(tiny_refine("sampling"), "mattingrefine", folder, {"backbone": "mobilenetv2"})

    def racing_build(folder):
        write(folder)
        export_cache.cached_export(fields, write)  # the other builder wins the rename

    entry = export_cache.cached_export(fields, racing_build)
    assert entries(cache) == [entry] and export_cache.entry_is_valid(entry, fields)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    assert export_cache.stats["built"] == 1


def test_auto_picks_the_fastest_installed_runtime(cache, checkpoint, tmp_path, monkeypatch):
    refine = get_kind("mattingrefine")
    assert default_backend(refine) == "onnx"  # measured fastest here (RUNTIME_PREFERENCE)
    assert default_backend(refine, model=object()) == "dygraph"  # training / a model in memory
    assert default_backend(refine, device="gpu") == "dygraph"
    assert default_backend(get_kind("bgmv2+vitmatte")) == "onnx"  # its parts exported separately
    assert default_backend(get_kind("vitmatte")) == "onnx"  # one cached export per padded size
    export_model(tiny_refine("sampling"), refine.export, "mattingrefine", tmp_path / "exp", {"backbone": "mobilenetv2"})
    assert default_backend(refine, source=locate(tmp_path / "exp")) == "inference"  # that export has no model.onnx
    src, bgr = photo(40, 48)
    for backend in (None, "auto"):
        predictor = Predictor(**OPTIONS, checkpoint=str(checkpoint), backend=backend)
        assert predictor.backend == "onnx"
        assert_same(predictor(src, bgr), Predictor(**OPTIONS, checkpoint=str(checkpoint))(src, bgr))
    monkeypatch.setattr(backends, "runtime_available", lambda name: name == "inference")
    import bgmatting.engine.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "runtime_available", lambda name: name == "inference")
    assert Predictor(**OPTIONS, checkpoint=str(checkpoint), backend="auto").backend == "inference"


def test_two_processes_export_once(cache, checkpoint, tmp_path):
    """predict.py twice on the same checkpoint with --backend onnx: one entry, untouched by the second run."""
    from bgmatting.data.io import write_image

    src, bgr = photo(45, 62)
    write_image(tmp_path / "src.png", src)
    write_image(tmp_path / "bgr.png", bgr)
    stamps = []
    for run in range(2):
        done = run_script("predict.py", "--model-type", "mattingrefine", "--model-backbone", "mobilenetv2",
                          "--model-refine-sample-pixels", "1600", "--model-checkpoint", checkpoint,
                          "--src", tmp_path / "src.png", "--bgr", tmp_path / "bgr.png", "--output-types", "pha",
                          "--output-dir", tmp_path / f"out{run}", "--backend", "onnx", "--cpu-threads", "1")
        assert done.returncode == 0, done.stderr
        assert done.stderr.count(f"bgmatting: export cache {cache}") == 1
        (entry,) = entries(cache)
        stamps.append({p.name: p.stat().st_mtime_ns for p in entry.iterdir()})
    assert stamps[0] == stamps[1]
    outputs = [next((tmp_path / f"out{run}" / "pha").iterdir()).read_bytes() for run in range(2)]
    assert outputs[0] == outputs[1]
    assert os.environ[export_cache.ENVIRONMENT_VARIABLE] == str(cache)


def test_vitmatte_checkpoint_runs_on_cached_exports_per_padded_size(cache, tmp_path):
    """ViTMatte exports at a fixed size: one cached export per padded (multiple of 32) size, = dygraph."""
    from bgmatting.models import ViTMatte
    from tests.test_backends import TINY_VIT

    paddle.seed(5)
    path = tmp_path / "vitmatte.pdparams"
    paddle.save(ViTMatte(**TINY_VIT).state_dict(), str(path))
    rng = np.random.default_rng(3)
    fast = Predictor("vitmatte", checkpoint=str(path), backend="onnx", cpu_threads=1)
    slow = Predictor("vitmatte", checkpoint=str(path))
    for height, width in ((60, 90), (64, 96), (30, 50)):  # padded to 64x96, 64x96 (same export), 32x64
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        trimap = rng.choice(np.array([0, 128, 255], np.uint8), (height, width))
        got, want = fast(image, trimap=trimap)["pha"], slow(image, trimap=trimap)["pha"]
        assert got.shape == (height, width) and np.abs(got - want).max() < TOLERANCE
    shapes = sorted(str(json.loads((e / "export.json").read_text())["inputs"][0]["shape"]) for e in entries(cache))
    assert shapes == ["[None, 4, 32, 64]", "[None, 4, 64, 96]"] and export_cache.stats["built"] == 2

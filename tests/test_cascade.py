"""The bgmv2+vitmatte cascade: BGMv2's coarse alpha → automatic trimap → ViTMatte, through Predictor, predict.py
and the experiment script."""
import numpy as np
import pytest

from bgmatting.data.io import read_alpha, read_image
from bgmatting.data.synthetic import make_clean_plate_pairs
from bgmatting.engine.predictor import Predictor
from bgmatting.engine.kinds.cascade import cascade_trimap
from bgmatting.errors import UserError
from bgmatting.models import MattingBase
from bgmatting.models.cascade import MattingCascade
from tests.test_vitmatte_predict import checkpoint, tiny_vitmatte  # noqa: F401  (fixture)
from tests.conftest import save_random_model
from tools.predict import main as predict_main


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    make_clean_plate_pairs(root, 1, size=(48, 64), seed=0)  # multiples of 4: no padding anywhere
    return root


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    return save_random_model(tmp_path_factory, MattingBase)


def test_cascade_is_bgmv2_then_trimap_then_vitmatte(pairs, base_checkpoint, checkpoint):
    src, bgr = read_image(pairs / "src/0000.png"), read_image(pairs / "bgr/0000.png")
    coarse = Predictor("mattingbase", "mobilenetv2", checkpoint=str(base_checkpoint))(src, bgr=bgr)
    trimap = cascade_trimap(coarse["pha"], band=3, low=0.1, high=0.9)
    expected = Predictor("vitmatte", checkpoint=str(checkpoint))(src, trimap=trimap)["pha"]
    cascade = Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(base_checkpoint),
                        vitmatte_checkpoint=str(checkpoint), coarse_model_type="mattingbase", trimap_band=3,
                        trimap_low=0.1, trimap_high=0.9)
    out = cascade(src, bgr=bgr)
    np.testing.assert_allclose(out["pha"], expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(out["fgr"], coarse["fgr"])  # foreground and error map are BGMv2's
    np.testing.assert_array_equal(out["err"], coarse["err"])
    assert np.abs(out["pha"] - coarse["pha"]).max() > 0.05  # ViTMatte really replaced the coarse alpha
    assert (trimap == 128).any() and set(np.unique(trimap)) <= {0, 128, 255}


def test_prebuilt_cascade_and_errors(pairs, base_checkpoint, checkpoint):
    src, bgr = read_image(pairs / "src/0000.png"), read_image(pairs / "bgr/0000.png")
    model = MattingCascade(MattingBase("mobilenetv2"), tiny_vitmatte(), "mattingbase", trimap_band=2)
    assert Predictor("bgmv2+vitmatte", model=model)(src, bgr=bgr)["pha"].shape == (48, 64)
    with pytest.raises(UserError, match="needs a clean plate"):
        Predictor("bgmv2+vitmatte", model=model)(src, trimap=np.zeros((48, 64), np.uint8))
    with pytest.raises(UserError, match="needs --model-vitmatte-checkpoint"):
        Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(base_checkpoint), coarse_model_type="mattingbase")
    with pytest.raises(UserError, match="not a ViTMatte checkpoint"):
        Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(base_checkpoint),
                  vitmatte_checkpoint=str(base_checkpoint), coarse_model_type="mattingbase")
    with pytest.raises(UserError, match="trimap thresholds"):
        Predictor("bgmv2+vitmatte", "mobilenetv2", trimap_low=0.9, trimap_high=0.5)


def test_predict_cli_runs_the_cascade(pairs, base_checkpoint, checkpoint, tmp_path):
    out = tmp_path / "out"
    predict_main(["--model-type", "bgmv2+vitmatte", "--model-backbone", "mobilenetv2", "--model-checkpoint",
                  str(base_checkpoint), "--model-coarse-model-type", "mattingbase", "--model-vitmatte-checkpoint",
                  str(checkpoint), "--model-trimap-band", "3", "--src", str(pairs / "src"), "--bgr",
                  str(pairs / "bgr"), "--output-dir", str(out), "--output-types", "pha", "err"])
    src, bgr = read_image(pairs / "src/0000.png"), read_image(pairs / "bgr/0000.png")
    expected = Predictor("bgmv2+vitmatte", "mobilenetv2", checkpoint=str(base_checkpoint),
                         vitmatte_checkpoint=str(checkpoint), coarse_model_type="mattingbase",
                         trimap_band=3)(src, bgr=bgr)
    assert np.abs(read_alpha(out / "pha" / "0000.png") - expected["pha"]).max() <= 0.5 / 255 + 1e-6
    assert (out / "err" / "0000.png").is_file()


def test_cascade_experiment_runs_end_to_end_on_a_tiny_budget(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "stages" / "vitmatte_cascade.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--iters", "2", "--vitmatte-iters", "2",
                           "--n-train", "4", "--n-eval", "1", "--bands", "4"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    means = json.loads((tmp_path / "results.json").read_text())["means"]
    assert len(means) == 2  # perfect and imperfect plates
    for rows in means.values():
        assert list(rows) == ["MattingBase alone", "cascade, trimap band ±4 px",
                              "ViTMatte, ground-truth trimap (oracle)"]
        assert all(0 <= row["sad"] < float("inf") and 0 <= row["thin_sad"] <= row["sad"]
                   and set(row) == {"sad", "mse", "grad", "conn", "thin_sad"} for row in rows.values())
    assert "| cascade, trimap band ±4 px |" in (tmp_path / "results.md").read_text()
    summary = subprocess.run([sys.executable, str(script), "--summarise", str(tmp_path), str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    sad = means["perfect plates"]["MattingBase alone"]["sad"]
    assert f"| MattingBase alone | {sad:.4f} ± 0.0000 |" in summary.stdout  # two identical runs: std 0


def test_thin_structures_are_the_strands_an_opening_removes(monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "stages"))
    experiment = importlib.import_module("vitmatte_cascade")
    pha = np.zeros((30, 30), np.float32)
    pha[5:15, 5:15] = 1.0  # a block: not thin
    pha[20, 2:28] = 0.6  # a one-pixel strand
    mask = experiment.thin_structures(pha)
    assert mask[20, 2:28].all() and mask.sum() == 26

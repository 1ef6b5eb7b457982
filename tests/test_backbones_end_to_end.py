"""Every registered backbone end to end (issue 11): a tiny training run → predict.py, export, eval.py and the web
app's model, each from the run folder alone (no model flags), equal to the same weights with every flag given."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bgmatting.data.io import read_alpha, read_image, write_image
from bgmatting.data.synthetic import make_backgrounds, make_fgr_pha_dataset, make_photomatte85
from bgmatting.models.backbones import backbone_names
from tests.conftest import run_script

pytestmark = pytest.mark.filterwarnings("ignore:When training, we now always track global mean")
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "bgmv2_refine_tiny.yaml"  # backbone_scale 0.5, 4096 sample pixels: not the defaults
EXPLICIT = ["--model-type", "mattingrefine", "--model-backbone-scale", "0.5", "--model-refine-mode", "sampling",
            "--model-refine-sample-pixels", "4096", "--model-refine-threshold", "0.1", "--model-refine-kernel-size",
            "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_fgr_pha_dataset(root / "videomatte", n=2, size=72, seed=0, n_valid=1)
    make_backgrounds(root / "backgrounds" / "train", n=2, size=72, seed=0)
    make_backgrounds(root / "backgrounds" / "valid", n=1, size=72, seed=1)
    make_photomatte85(root / "pm85", n=2, size=48, seed=0)
    rng = np.random.default_rng(0)
    plate = rng.integers(0, 256, (52, 68, 3), dtype=np.uint8)
    src = plate.copy()
    src[10:40, 20:50] = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    write_image(root / "src.png", src)
    write_image(root / "bgr.png", plate)
    return root


@pytest.fixture(scope="module", params=backbone_names())
def run(request, data, tmp_path_factory):
    """(backbone, run folder) of a one-iteration MattingRefine training run with that backbone."""
    save_dir = tmp_path_factory.mktemp(f"run_{request.param}")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), "--config", str(CONFIG), "--save-dir", str(save_dir),
         "--opts", f"model.backbone={request.param}", "train.iters=1", "train.save_interval=1",
         "train.val_interval=1", "data.valid_samples=1", "train.batch_size=1"],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, BGM_SYNTHETIC=str(data)), timeout=600)
    assert done.returncode == 0, done.stderr
    return request.param, save_dir


def _alpha(data, out, *flags):
    done = run_script("predict.py", *flags, "--src", data / "src.png", "--bgr", data / "bgr.png", "--output-dir", out,
                      "--output-types", "pha")
    assert done.returncode == 0, done.stderr
    return read_alpha(next((Path(out) / "pha").iterdir()))


def test_run_folder_predicts_like_every_flag_given(run, data, tmp_path):
    backbone, save_dir = run
    bare_weights = tmp_path / "bare" / "weights.pdparams"  # the same weights without their card
    bare_weights.parent.mkdir()
    shutil.copy(save_dir / "best_model" / "model.pdparams", bare_weights)
    from_run = _alpha(data, tmp_path / "a", "--model-checkpoint", save_dir)
    explicit = _alpha(data, tmp_path / "b", *EXPLICIT, "--model-backbone", backbone, "--model-checkpoint", bare_weights)
    np.testing.assert_array_equal(from_run, explicit)
    defaults = _alpha(data, tmp_path / "c", "--model-checkpoint", bare_weights)  # official defaults: scale 0.25
    assert np.abs(defaults - from_run).max() > 1 / 255  # so the run's own settings really were applied


def test_run_folder_exports_and_serves_with_its_settings(run, data, tmp_path):
    backbone, save_dir = run
    done = run_script("tools/export.py", "--model-checkpoint", save_dir, "--save-dir", tmp_path / "export")
    assert done.returncode == 0, done.stderr
    metadata = json.loads((tmp_path / "export" / "export.json").read_text())
    assert metadata["options"]["backbone"] == backbone and metadata["options"]["backbone_scale"] == 0.5
    static = _alpha(data, tmp_path / "s", "--model-checkpoint", tmp_path / "export", "--backend", "inference",
                    "--cpu-threads", "1")
    dygraph = _alpha(data, tmp_path / "d", "--model-checkpoint", save_dir)
    assert np.abs(static - dygraph).max() <= 1 / 255

    sys.path.insert(0, str(ROOT / "tools"))
    import serve as serve_cli

    args = serve_cli.build_parser().parse_args(["--model-checkpoint", str(save_dir)])
    build, settings = serve_cli.predictor_factory(args)
    assert settings.options["backbone"] == backbone and settings.options["refine_sample_pixels"] == 4096
    served = build()(read_image(data / "src.png"), bgr=read_image(data / "bgr.png"))["pha"]
    assert np.abs(served - dygraph).max() <= 1 / 255


def test_run_folder_evaluates(run, data, tmp_path):
    backbone, save_dir = run
    done = run_script("eval.py", "--data", data / "pm85", "--backgrounds", data / "backgrounds" / "valid",
                      "--resolution", "48", "--model-checkpoint", save_dir, "--save-dir", tmp_path / "eval",
                      "--quiet", "--worst", "0")
    assert done.returncode == 0, done.stderr
    model = json.loads((tmp_path / "eval" / "metrics.json").read_text())["model"]
    assert model["type"] == "mattingrefine" and model["backbone"] == backbone and model["backbone_scale"] == 0.5

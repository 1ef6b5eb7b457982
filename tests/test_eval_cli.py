"""eval.py end to end on synthetic data: outputs, reproducibility, re-scoring saved predictions, a model
checkpoint, and one clear error line for each bad input."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bgmatting.data.io import write_image
from bgmatting.data.synthetic import make_backgrounds, make_comp1k, make_photomatte85
from tools.eval import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    make_photomatte85(root / "pm85", n=3, size=48, seed=0)
    make_backgrounds(root / "bg", n=2, size=40, seed=0)
    make_comp1k(root / "comp1k", n=1, size=40, seed=0, backgrounds_per_fg=2)
    return root


def _pm85(data, out, *extra):
    return ["--data", str(data / "pm85"), "--backgrounds", str(data / "bg"), "--resolution", "64",
            "--save-dir", str(out), "--quiet", *extra]


def _error_line(capsys, argv) -> str:
    capsys.readouterr()  # only what this call prints (an earlier run in the test may have named the export cache)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_photomatte85_baseline_outputs_and_reproducibility(data, tmp_path, capsys):
    main(_pm85(data, tmp_path / "a", "--baseline", "difference", "--worst", "2"))
    printed = capsys.readouterr().out
    assert "SAD (/1000)" in printed and "convention: standard — DIM convention" in printed
    report = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert report["count"] == 3 and report["seed"] == 0 and report["resolution"] == 64
    assert report["convention"] == "standard" and report["protocol"] == "standard"
    assert report["model"] == {"baseline": "difference", "threshold": 0.1}
    assert set(report["means"]) == {"sad", "mse", "grad", "conn", "fgr_mse"} and report["means"]["sad"] > 0
    rows = _csv(tmp_path / "a" / "per_image.csv")
    assert [row["name"] for row in rows] == ["0000", "0001", "0002"]
    assert np.mean([float(row["sad"]) for row in rows]) == pytest.approx(report["means"]["sad"], rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "a" / "worst").iterdir()) == ["01.png", "02.png"]
    html = (tmp_path / "a" / "report.html").read_text()
    worst_name = max(rows, key=lambda row: float(row["sad"]))["name"]
    assert html.index(f"1. {worst_name}") < html.index("2. ")
    assert (tmp_path / "a" / "worst.png").stat().st_size > 0

    main(_pm85(data, tmp_path / "b", "--baseline", "difference"))
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert again["means"] == report["means"]


def test_saved_predictions_rescore_identically(data, tmp_path):
    first = main(_pm85(data, tmp_path / "run", "--baseline", "difference", "--save-predictions"))
    saved = tmp_path / "run" / "predictions"
    assert sorted(p.name for p in (saved / "pha").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (saved / "fgr" / "0000.png").exists() and (saved / "inputs" / "src" / "0000.png").exists()
    rescored = main(["--pred-dir", str(saved / "pha"), "--gt-dir", str(saved / "inputs" / "pha"),
                     "--trimap-dir", str(saved / "inputs" / "trimap"), "--save-dir", str(tmp_path / "re"), "--quiet"])
    for key in ("sad", "mse", "grad", "conn"):
        assert rescored.means[key] == pytest.approx(first.means[key], rel=1e-12), key
    port = main(["--pred-dir", str(saved / "pha"), "--gt-dir", str(saved / "inputs" / "pha"), "--trimap-dir",
                 str(saved / "inputs" / "trimap"), "--protocol", "paddle-port", "--save-dir", str(tmp_path / "p"),
                 "--quiet"])
    assert port.means["sad"] == pytest.approx(2 * first.means["sad"])
    assert json.loads((tmp_path / "p" / "metrics.json").read_text())["convention"] == "paddle-port"


def test_comp1k_layout_with_the_trimap_baseline(data, tmp_path, capsys):
    argv = ["--layout", "comp1k", "--data", str(data / "comp1k"), "--save-dir", str(tmp_path), "--quiet"]
    result = main(argv + ["--baseline", "trimap", "--clamp-known"])
    assert [row["name"] for row in result.rows] == ["fg0_bg0", "fg0_bg1"]
    assert result.means["sad"] > 0 and "fgr_mse" not in result.means  # the baseline predicts no foreground
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["clamp_known"] is True and report["source"] == "comp1k"
    err = _error_line(capsys, argv + ["--baseline", "difference"])
    assert "needs a clean plate" in err


def test_model_checkpoint_run(data, tmp_path, capsys):
    import paddle

    from bgmatting.models import MattingBase

    paddle.seed(0)
    checkpoint = tmp_path / "base.pdparams"
    paddle.save(MattingBase("mobilenetv2").state_dict(), str(checkpoint))
    argv = _pm85(data, tmp_path / "m", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                 "--model-checkpoint", str(checkpoint), "--limit", "2")
    result = main(argv)
    assert len(result.rows) == 2 and all(row["seconds"] > 0 for row in result.rows)
    assert set(result.means) == {"sad", "mse", "grad", "conn", "fgr_mse"}
    report = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert report["model"]["checkpoint"] == str(checkpoint) and report["model"]["type"] == "mattingbase"
    assert report["seconds_per_image"] == pytest.approx(np.mean([row["seconds"] for row in result.rows]))
    assert main(argv).means == result.means
    wrong = _pm85(data, tmp_path / "w", "--model-type", "mattingbase", "--model-backbone", "resnet50",
                  "--model-checkpoint", str(checkpoint))
    assert "holds a mobilenetv2 model" in _error_line(capsys, wrong)


def test_alpha_only_model_gets_no_foreground_score(data, tmp_path):
    # ViTMatte's Predictor output carries the photo as fgr; scoring it as a foreground would be meaningless
    result = main(["--layout", "comp1k", "--data", str(data / "comp1k"), "--model-type", "vitmatte",
                   "--random-init", "--save-dir", str(tmp_path), "--quiet", "--worst", "0"])
    assert len(result.rows) == 2 and result.means["sad"] > 0
    assert "fgr_mse" not in result.means


# ------------------------------------------------------------------------------------------- bad input
def test_prediction_without_gt(data, tmp_path, capsys):
    write_image(tmp_path / "pred" / "a.png", np.zeros((4, 4), np.uint8))
    err = _error_line(capsys, ["--pred-dir", str(tmp_path / "pred"), "--save-dir", str(tmp_path / "o")])
    assert "--pred-dir and --gt-dir go together" in err
    write_image(tmp_path / "pred" / "b.png", np.zeros((4, 4), np.uint8))
    write_image(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    err = _error_line(capsys, ["--pred-dir", str(tmp_path / "pred"), "--gt-dir", str(tmp_path / "gt"),
                               "--save-dir", str(tmp_path / "o")])
    assert "count mismatch" in err and "'b' is in pred/" in err


def test_size_mismatch(tmp_path, capsys):
    write_image(tmp_path / "pred" / "a.png", np.zeros((4, 6), np.uint8))
    write_image(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    err = _error_line(capsys, ["--pred-dir", str(tmp_path / "pred"), "--gt-dir", str(tmp_path / "gt"),
                               "--save-dir", str(tmp_path / "o"), "--quiet"])
    assert "size mismatch" in err and "6x4" in err and "4x4" in err


def test_empty_folder(data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = _error_line(capsys, ["--data", str(tmp_path / "empty"), "--backgrounds", str(data / "bg"),
                               "--baseline", "difference", "--save-dir", str(tmp_path / "o")])
    assert "no images found in folder" in err and "empty" in err


def test_trimap_with_other_values(tmp_path, capsys):
    write_image(tmp_path / "pred" / "a.png", np.zeros((4, 4), np.uint8))
    write_image(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    write_image(tmp_path / "trimap" / "a.png", np.full((4, 4), 100, np.uint8))
    argv = ["--pred-dir", str(tmp_path / "pred"), "--gt-dir", str(tmp_path / "gt"), "--trimap-dir",
            str(tmp_path / "trimap"), "--save-dir", str(tmp_path / "o"), "--quiet"]
    err = _error_line(capsys, argv)
    assert "values other than 0/128/255" in err and "--trimap-threshold" in err
    result = main(argv + ["--trimap-threshold", "85"])  # 100 → unknown
    assert result.rows[0]["pixels"] == 16


def test_unreadable_file(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "a.png").write_bytes(b"\x89PNG broken")
    write_image(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    err = _error_line(capsys, ["--pred-dir", str(tmp_path / "pred"), "--gt-dir", str(tmp_path / "gt"),
                               "--save-dir", str(tmp_path / "o"), "--quiet"])
    assert "cannot read image" in err and "a.png" in err


def test_rgb_photomatte_without_alpha(data, tmp_path, capsys):
    write_image(tmp_path / "pm" / "x.png", np.zeros((8, 8, 3), np.uint8))
    err = _error_line(capsys, ["--data", str(tmp_path / "pm"), "--backgrounds", str(data / "bg"),
                               "--baseline", "difference", "--save-dir", str(tmp_path / "o"), "--quiet"])
    assert "no alpha in" in err


@pytest.mark.parametrize("extra, message", [
    ([], "choose one of --model-checkpoint CKPT, --baseline NAME or --random-init"),
    (["--baseline", "difference", "--random-init"], "choose one of"),
    (["--baseline", "difference", "--clamp-known"], "--clamp-known needs input trimaps"),
    (["--baseline", "difference", "--bgr-perturb", "noise,blur"], "unknown --bgr-perturb blur"),
    (["--baseline", "difference", "--limit", "0"], "--limit must be at least 1"),
    (["--baseline", "difference", "--baseline-threshold", "3"], "--baseline-threshold must be in [0, 1]"),
    (["--baseline", "difference", "--gt-dir", "x"], "--pred-dir and --gt-dir go together"),
    (["--baseline", "difference", "--trimap-threshold", "85"], "--trimap-threshold needs input trimaps"),
    (["--baseline", "difference", "--seed", "-1"], "--seed must be a non-negative integer"),
    (["--baseline", "trimap", "--layout", "comp1k"], "--backgrounds is for the photomatte85 protocol"),
])
def test_bad_flag_combinations(data, tmp_path, capsys, extra, message):
    assert message in _error_line(capsys, _pm85(data, tmp_path, *extra))


def test_missing_backgrounds_and_data(data, tmp_path, capsys):
    err = _error_line(capsys, ["--data", str(data / "pm85"), "--baseline", "difference"])
    assert "needs --backgrounds" in err
    assert "give --data DIR" in _error_line(capsys, ["--baseline", "difference"])
    err = _error_line(capsys, ["--data", str(tmp_path / "nope"), "--backgrounds", str(data / "bg"),
                               "--baseline", "difference"])
    assert "PhotoMatte85 folder not found" in err


def test_root_shim_exits_with_one_line(tmp_path):
    process = subprocess.run([sys.executable, "eval.py", "--pred-dir", str(tmp_path / "missing"), "--gt-dir",
                              str(tmp_path / "gt")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [f"error: prediction folder not found: {tmp_path / 'missing'}"]

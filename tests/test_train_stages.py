"""Stages start from the previous stage's best model; the demo runs end to end on a tiny budget."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bgmatting.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bgmatting_stages_common", ROOT / "stages" / "common.py")
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
Stage, train_arguments = _common.Stage, _common.train_arguments


def test_stage_starts_from_previous_best_or_says_what_is_missing(tmp_path):
    stage = Stage("stage2", "configs/bgmv2/refine_resnet50_videomatte240k.yaml", str(tmp_path / "s2"),
                  previous=str(tmp_path / "s1"))
    with pytest.raises(UserError, match=rf"stage2 starts from the previous stage's best model, not found: "
                                        rf"{tmp_path}/s1/best_model/model.pdparams"):
        train_arguments(stage, [])
    best = tmp_path / "s1" / "best_model" / "model.pdparams"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"")
    arguments = train_arguments(stage, ["--opts", "train.iters=5"])
    assert arguments[2:] == ["--save-dir", str(tmp_path / "s2"), "--opts", f"model.init_from={best}",
                             "--opts", "train.iters=5"]  # the user's flags come last, so they win
    user_choice = train_arguments(stage, ["--opts", "model.init_from=other.pdparams"])
    assert f"model.init_from={best}" not in user_choice


def test_stage_cli_reports_missing_dataset_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "stage1.py"), "--save-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "VIDEOMATTE240K": str(tmp_path / "vm")})
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: config key data.train.root: folder not found: {tmp_path}/vm/train; "
                                   "expected ROOT/fgr/... and ROOT/pha/... images paired by relative path "
                                   "(e.g. VideoMatte240K/train)")


@pytest.mark.filterwarnings("ignore:When training, we now always track global mean")
def test_demo_runs_end_to_end_on_a_tiny_budget(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "demo.py"), "--out", str(tmp_path), "--iters", "2",
                           "--refine-iters", "1", "--n-train", "4", "--n-eval", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == 2 and all(len(methods) == 4 for methods in results.values())
    assert all(row["sad"] >= 0 for methods in results.values() for row in methods.values())
    for name in ("demo.png", "loss_curves.png", "results.md", "stage1/best_model/model.pdparams",
                 "stage2/best_model/model.pdparams"):
        assert (tmp_path / name).is_file(), name
    assert "model.init_from: loaded" in (tmp_path / "stage2" / "train.log").read_text()

"""The reference run (stages/reference.py): its configs are the official recipe scaled down, its smoke version runs
end to end and resumes, the study runs its variants, and the imperfect plates are what they claim."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bgmatting.config import load_config

pytestmark = pytest.mark.filterwarnings("ignore:When training, we now always track global mean")
ROOT = Path(__file__).resolve().parents[1]
REFERENCE = [sys.executable, str(ROOT / "stages" / "reference.py")]


def _config(name, official):
    from bgmatting.engine import trainer  # noqa: F401  (registers train.image_interval)

    return load_config(ROOT / "configs" / "bgmv2" / name), load_config(ROOT / "configs" / "bgmv2" / official)


def test_configs_are_the_official_recipe_at_one_scale():
    base, official_base = _config("reference_base.yaml", "base_resnet50_videomatte240k.yaml")
    refine, official_refine = _config("reference_refine.yaml", "refine_resnet50_videomatte240k.yaml")
    for ours, official in ((base, official_base), (refine, official_refine)):
        assert ours["model"]["backbone"] == "mobilenetv2"
        assert ours["augment"] == official["augment"] and ours["loss"] == official["loss"]
        assert ours["model"]["type"] == official["model"]["type"]
        assert ours["train"]["batch_size"] == official["train"]["batch_size"]
        assert ours["train"]["image_interval"] > 0
    # the refiner (from scratch in both) at 10x its official rate; the base's modules keep the official stage-2 rates
    assert {k: v for k, v in refine["train"]["lr"].items() if k != "refiner"} == \
        {k: v for k, v in official_refine["train"]["lr"].items() if k != "refiner"}
    assert refine["train"]["lr"]["refiner"] == pytest.approx(10 * official_refine["train"]["lr"]["refiner"])
    # stage 1 learns its backbone from scratch (no pretrained weights here) at 10× the rates
    # the official config sets for a pretrained backbone, every module alike
    for module in ("backbone", "aspp", "decoder"):  # MattingBase's modules (the refiner's rate is unused there)
        assert base["train"]["lr"][module] == pytest.approx(10 * official_base["train"]["lr"][module]), module
    assert refine["model"]["backbone_scale"] == official_refine["model"]["backbone_scale"] == 0.25
    # stage 1 sees the scenes as stage 2's base does: stage-2 sizes × backbone_scale
    scale = refine["model"]["backbone_scale"]
    assert base["data"]["resolution"] == refine["data"]["resolution"] * scale
    assert base["data"]["crop"]["min"] == refine["data"]["crop"]["min"] * scale
    assert 256 <= refine["data"]["crop"]["min"] and refine["data"]["crop"]["max"] <= 385


def test_imperfect_plates_are_shifted_noisy_and_brighter():
    sys.path.insert(0, str(ROOT / "stages"))
    from reference import ShiftNoiseExposure

    from bgmatting.engine.evaluator import EvalSample

    rng = np.random.default_rng(0)
    plate = (rng.random((32, 32, 3)) * 150 + 50).astype(np.uint8)
    sample = EvalSample(name="x", pha=np.zeros((32, 32), np.float32), trimap=None, src=plate.copy(), bgr=plate.copy())
    imperfect = ShiftNoiseExposure([sample], shift=2, noise=0.02, exposure=1.08, seed=3)
    first, again = imperfect[0], imperfect[0]
    assert np.array_equal(first.bgr, again.bgr) and np.array_equal(first.src, again.src)
    assert first.bgr.mean() / plate.mean() == pytest.approx(1.08, abs=0.02)
    assert 2 < np.abs(first.src.astype(int) - plate).mean() < 10  # noise σ 0.02 ≈ 5 levels
    assert np.abs(first.bgr.astype(int) - first.src).mean() > np.abs(first.src.astype(int) - plate).mean()


def test_smoke_run_writes_results_pictures_models_and_resumes(tmp_path):
    done = subprocess.run(REFERENCE + ["--smoke", "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["means"]) == 3 and all(len(methods) == 4 for methods in results["means"].values())
    assert all(row["sad"] >= 0 for methods in results["means"].values() for row in methods.values())
    for name in ("results.md", "reference.png", "loss_curves.png", "timings.json", "models/stage1_base/model.yaml",
                 "models/stage2_refine/model.yaml", "models/stage2_refine/model.pdparams"):
        assert (tmp_path / name).is_file(), name
    assert "÷ diff." in (tmp_path / "results.md").read_text()
    assert "kind: mattingrefine" in (tmp_path / "models" / "stage2_refine" / "model.yaml").read_text()
    assert any((tmp_path / "stage2" / "vdl").iterdir())
    losses = (tmp_path / "stage2" / "losses.csv").read_text()
    again = subprocess.run(REFERENCE + ["--smoke", "--out", str(tmp_path)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "stage2" / "losses.csv").read_text() == losses  # finished stages are reused, not retrained

    study = subprocess.run(REFERENCE + ["--smoke", "--out", str(tmp_path), "--study", "--variants",
                                        "lr_x4,images_50,continued,stage1_lr_official,stage1_no_jitter",
                                        "--processes", "1"],
                           capture_output=True, text=True)
    assert study.returncode == 0, study.stderr[-3000:]
    rows = json.loads((tmp_path / "study.json").read_text())["rows"]
    assert {(row["stage"], row["variant"]) for row in rows} == {
        ("stage1", "iterations"), ("stage1", "stage1_lr_official"), ("stage1", "stage1_no_jitter"),
        ("stage2", "iterations"), ("stage2", "lr_x4"), ("stage2", "images_50")}
    # the iterations rows: the reference's checkpoints (1, 2) and, for stage 2, its continuation to twice the
    # iterations (3, 4)
    assert [row["label"] for row in rows if row["variant"] == "iterations"] == [
        f"reference stage1 after {n} iterations" for n in (1, 2)] + [
        f"reference stage2 after {n} iterations" for n in (1, 2, 3, 4)]
    assert "resumed from" in (tmp_path / "study" / "continued" / "train.log").read_text()
    assert "0.0002" in (tmp_path / "study" / "lr_x4" / "config.yaml").read_text()  # backbone 5e-5 × 4
    written = {name: yaml.safe_load((tmp_path / folder / "config.yaml").read_text()) for name, folder in (
        ("reference", "stage1"), ("official", "study/stage1_lr_official"), ("no_jitter", "study/stage1_no_jitter"))}
    assert written["official"]["train"]["lr"]["backbone"] == pytest.approx(1e-4)
    assert written["reference"]["train"]["lr"]["backbone"] == pytest.approx(1e-3)
    assert written["no_jitter"]["augment"]["plate"]["jitter"]["prob"] == 0
    assert written["reference"]["augment"]["plate"]["jitter"]["prob"] == pytest.approx(0.8)


def test_unknown_study_variant_is_refused(tmp_path):
    done = subprocess.run(REFERENCE + ["--smoke", "--out", str(tmp_path), "--study", "--variants", "nope"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown --variants nope" in done.stderr


def test_processes_below_one_are_refused(tmp_path):
    done = subprocess.run(REFERENCE + ["--smoke", "--out", str(tmp_path), "--processes", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "error: --processes must be 1 or more, got 0"
    assert not (tmp_path / "stage1").exists()

"""Training: a tiny run writes its outputs, a killed run resumes with the same losses, CLI errors, data parallel."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgmatting.config import load_config
from bgmatting.data.synthetic import make_backgrounds, make_fgr_pha_dataset

pytestmark = pytest.mark.filterwarnings("ignore:When training, we now always track global mean")
ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "tools" / "train.py"), "--config", str(ROOT / "configs" / "bgmv2_tiny.yaml")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_fgr_pha_dataset(root / "videomatte", n=4, size=72, seed=0, n_valid=2)
    make_backgrounds(root / "backgrounds" / "train", n=3, size=72, seed=0)
    make_backgrounds(root / "backgrounds" / "valid", n=2, size=72, seed=1)
    return root


def _env(data):
    return dict(os.environ, BGM_SYNTHETIC=str(data))


def _losses(save_dir):
    with open(save_dir / "losses.csv") as f:
        return {int(row["iteration"]): float(row["loss"]) for row in csv.DictReader(f)}


FAST = ["train.val_interval=1000", "data.valid_samples=2"]


def test_tiny_run_writes_checkpoints_logs_and_best_model(data, tmp_path, monkeypatch):
    from bgmatting.engine.trainer import Trainer

    monkeypatch.setenv("BGM_SYNTHETIC", str(data))
    cfg = load_config(ROOT / "configs" / "bgmv2_tiny.yaml",
                      ["train.iters=3", "train.save_interval=2", "train.keep_checkpoints=1", *FAST])
    result = Trainer(cfg, tmp_path).train()
    assert result["iteration"] == 3 and result["best_sad"] < float("inf")
    assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_3"]  # iter_2 pruned by keep_checkpoints
    for name in ("latest/model.pdparams", "latest/model.pdopt", "latest/state.json", "best_model/model.pdparams",
                 "config.yaml", "train.log", "valid.csv"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "vdl").iterdir())
    assert sorted(_losses(tmp_path)) == [1, 2, 3]
    assert load_config(tmp_path / "config.yaml")["train"]["iters"] == 3  # the resolved config reloads


def test_killed_run_resumes_from_latest_with_the_same_losses(data, tmp_path):
    opts = ["--opts", "train.iters=8", "train.save_interval=2", *FAST]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    done = subprocess.run(TRAIN + ["--save-dir", str(whole), *opts], env=_env(data), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = _losses(whole)

    process = subprocess.Popen(TRAIN + ["--save-dir", str(broken), *opts], env=_env(data),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (broken / "latest" / "state.json").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (broken / "latest" / "state.json").exists()

    done = subprocess.run(TRAIN + ["--save-dir", str(broken), *opts], env=_env(data), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (broken / "train.log").read_text()
    resumed_at = int(log.split("at iteration ")[1].split()[0])
    assert 2 <= resumed_at < 8, "the kill came too late to test resuming"
    resumed = _losses(broken)
    assert max(resumed) == 8
    for iteration in range(resumed_at + 1, 9):
        assert resumed[iteration] == pytest.approx(reference[iteration], rel=1e-5), iteration


def test_cli_errors_name_the_key(data, tmp_path):
    bad_key = subprocess.run(TRAIN + ["--save-dir", str(tmp_path), "--opts", "train.lr.backbon=1"],
                             env=_env(data), capture_output=True, text=True)
    assert bad_key.returncode == 2
    assert bad_key.stderr.strip().splitlines() == [bad_key.stderr.strip()]
    assert "unknown config key 'train.lr.backbon' in --opts" in bad_key.stderr
    missing = subprocess.run(TRAIN + ["--save-dir", str(tmp_path), "--opts", f"data.train.root={tmp_path}/nope"],
                             env=_env(data), capture_output=True, text=True)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert f"config key data.train.root: folder not found: {tmp_path}/nope; expected ROOT/fgr/" in missing.stderr
    too_small = subprocess.run(TRAIN + ["--save-dir", str(tmp_path), "--opts", "loss.pha_laplacian=1"],
                               env=_env(data), capture_output=True, text=True)
    assert too_small.returncode == 2 and too_small.stderr.strip() == (
        "error: loss.pha_laplacian needs images of at least 64 px for its 5 levels, but data.crop.min gives 48 px; "
        "raise data.crop.min or set loss.pha_laplacian=0")


def test_two_process_data_parallel_on_cpu(data, tmp_path):
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", str(tmp_path / "launch"), *TRAIN[1:], "--save-dir", str(tmp_path / "out"),
               "--opts", "train.iters=2", *FAST]
    done = subprocess.run(command, env=_env(data), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stderr + "".join(
        p.read_text()[-1500:] for p in (tmp_path / "launch").glob("workerlog.*")))[-4000:]
    log = (tmp_path / "out" / "train.log").read_text()
    assert "2 process(es), batch 1/process" in log and "iter 2 " in log
    assert (tmp_path / "out" / "latest" / "model.pdparams").is_file()


def test_pretrained_backbone_and_deeplab_aspp_weights_load_by_name_and_shape(tmp_path):
    import numpy as np
    import paddle

    from bgmatting.engine.build import build_model, load_matched_weights

    source = build_model({"type": "MattingBase", "backbone": "mobilenetv2"})
    torch_style = {}
    for key, value in source.state_dict().items():
        key = key.replace("._mean", ".running_mean").replace("._variance", ".running_var")
        if key.startswith("backbone."):
            torch_style[key[len("backbone."):]] = value.numpy()  # ImageNet-style bare backbone keys
        elif key.startswith("aspp."):
            torch_style["classifier.classifier.0." + key[len("aspp."):]] = value.numpy()  # VainF DeepLabV3
    torch_style["features.0.0.weight"] = np.zeros((32, 3, 3, 3), np.float32)  # RGB stem: must be skipped
    torch_style["classifier.1.weight"] = np.zeros((1280, 1000), np.float32)  # ImageNet head: no such module
    paddle.save(torch_style, str(tmp_path / "pretrained.pdparams"))

    target = build_model({"type": "MattingBase", "backbone": "mobilenetv2"})
    stem_before = target.state_dict()["backbone.features.0.0.weight"].numpy().copy()
    count = load_matched_weights(target, tmp_path / "pretrained.pdparams", "model.pretrained")
    expected = [k for k in source.state_dict() if k.startswith(("backbone.", "aspp."))]
    assert count == len(expected) - 1  # everything but the 6-channel stem
    loaded, original = target.state_dict(), source.state_dict()
    for key in (k for k in expected if k != "backbone.features.0.0.weight"):
        np.testing.assert_array_equal(loaded[key].numpy(), original[key].numpy())
    np.testing.assert_array_equal(loaded["backbone.features.0.0.weight"].numpy(), stem_before)
    assert not np.array_equal(loaded["decoder.conv1.weight"].numpy(), original["decoder.conv1.weight"].numpy())

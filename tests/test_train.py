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


@pytest.mark.parametrize("config", ["bgmv2_tiny.yaml", "bgmv2_refine_tiny.yaml"])
def test_two_process_data_parallel_on_cpu(data, tmp_path, config):
    # MattingRefine's data-parallel path is also run by the reference run's smoke test (stages/reference.py
    # --smoke trains both stages on 2 processes from a trained stage 1; without find_unused_parameters its second
    # step failed with "parameter ... has been ready before")
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", str(tmp_path / "launch"), TRAIN[1], "--config", str(ROOT / "configs" / config),
               "--save-dir", str(tmp_path / "out"), "--opts", "train.iters=3", "train.batch_size=2", *FAST]
    done = subprocess.run(command, env=_env(data), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stderr + "".join(
        p.read_text()[-1500:] for p in (tmp_path / "launch").glob("workerlog.*")))[-4000:]
    log = (tmp_path / "out" / "train.log").read_text()
    assert "2 process(es), batch 1/process" in log and "iter 3 " in log
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


# ------------------------------------------------------------------------------------------ training visibility

def _vdl_images(save_dir):
    """{tag: [step, …]} of the images in a run's VisualDL log."""
    from visualdl import LogReader

    files = list((save_dir / "vdl").glob("vdlrecords.*.log"))
    assert files, "no VisualDL log"
    reader = LogReader(file_path=str(files[0]))
    return {tag: [record.id for record in reader.get_data("image", tag)] for tag in reader.get_tags()["image"]}


@pytest.mark.parametrize("config", ["bgmv2_tiny.yaml", "bgmv2_refine_tiny.yaml"])
def test_prediction_images_every_n_iterations_leave_training_unchanged(config, data, tmp_path, monkeypatch):
    from bgmatting.engine.trainer import Trainer

    monkeypatch.setenv("BGM_SYNTHETIC", str(data))
    opts = ["train.iters=3", "train.save_interval=3", "data.resolution=72", "data.crop.min=48", "data.crop.max=65",
            *FAST]
    if config.startswith("bgmv2_refine"):
        opts += ["data.resolution=128", "data.crop.min=96", "data.crop.max=129"]
    runs = {}
    for interval in (0, 2):
        cfg = load_config(ROOT / "configs" / config, opts + [f"train.image_interval={interval}"])
        Trainer(cfg, tmp_path / str(interval)).train()
        runs[interval] = _losses(tmp_path / str(interval))
    assert runs[0] == runs[2]  # the images are drawn in eval mode without gradients
    assert _vdl_images(tmp_path / "2") == {"train/prediction": [2, 3]}  # every 2 iterations and the last


def test_image_interval_must_not_be_negative(data, tmp_path, monkeypatch):
    from bgmatting.engine.trainer import Trainer
    from bgmatting.errors import UserError

    monkeypatch.setenv("BGM_SYNTHETIC", str(data))
    cfg = load_config(ROOT / "configs" / "bgmv2_tiny.yaml", ["train.image_interval=-1"])
    with pytest.raises(UserError, match="train.image_interval"):
        Trainer(cfg, tmp_path)


def test_prediction_panel_has_a_labelled_column_per_map():
    import numpy as np

    from bgmatting.plots import LABEL_HEIGHT, prediction_panel

    src = np.full((40, 50, 3), 0.5, np.float32)
    pha = np.zeros((40, 50), np.float32)
    pha[10:30, 10:40] = 1
    panel = prediction_panel(src, pha * 0.5, pha, ref=np.ones((10, 12)), err=np.zeros((10, 12)))
    assert panel.shape == (LABEL_HEIGHT + 2 + 40, 6 * 50 + 5 * 2, 3) and panel.dtype == np.float32
    assert 0 <= panel.min() and panel.max() <= 1
    header = panel[:LABEL_HEIGHT]
    for column in range(6):  # every column has dark label text above it
        assert header[:, column * 52: column * 52 + 50].min() < 0.5


def test_smoothing_keeps_both_ends_of_a_curve():
    import numpy as np

    from bgmatting.plots import smooth

    assert np.allclose(smooth(np.full(50, 3.0), 9), 3.0)  # np.convolve(mode="same") gives 3·5/9 at the ends
    ramp = np.linspace(1.0, 2.0, 41)
    assert np.allclose(smooth(ramp, 5)[2:-2], ramp[2:-2])
    assert abs(smooth(ramp, 5)[0] - ramp[:3].mean()) < 1e-12  # the mean of what exists, not of zeros
    assert np.array_equal(smooth(ramp, 1), ramp)
    assert np.isfinite(smooth([1.0, np.nan, 3.0], 3)).all()


def test_loss_curves_figure_from_a_run(data, tmp_path):
    from bgmatting.plots import plot_loss_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "losses.csv").write_text("iteration,loss,pha_l1\n" + "".join(f"{i},{1 / i},{0.5 / i}\n" for i in range(1, 30)))
    (run / "valid.csv").write_text("iteration,loss,sad,mse\n10,0.1,2.0,0.01\n20,0.05,1.0,0.005\n")
    plot_loss_curves(tmp_path / "curves.png", {"stage 1": run}, terms=("loss", "pha_l1"))
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_labels_with_non_ascii_characters_are_drawn_readably():
    import numpy as np

    from bgmatting.plots import label_band

    assert label_band("stage 1 (¼ scale) σ", 200).min() < 0.5
    assert np.array_equal(label_band("stage 1 (¼ scale)", 200), label_band("stage 1 (1/4 scale)", 200))

"""Resuming through tools/train.py (issue 11 item 5, issue 13 item 11): only the same run resumes automatically and
says so on the console; another config is one line naming the keys that differ; --fresh starts over; --resume PATH
continues deliberately; checkpoints that do not fit are one line; a resumed run logs every iteration once; every
checkpoint folder carries its model card."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bgmatting.engine.model_card import read_card
from tests.conftest import make_training_data, run_train

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "bgmv2_tiny.yaml")
VITMATTE_TINY = str(ROOT / "configs" / "vitmatte" / "tiny.yaml")
RUN = ["train.iters=4", "train.save_interval=2", "train.val_interval=2", "data.valid_samples=2"]
TIMEOUT = 240


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_data(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished tiny run (4 iterations, checkpoints at 2 and 4); tests copy it before changing it."""
    save_dir = tmp_path_factory.mktemp("finished") / "run"
    done = train(data, save_dir, "--opts", *RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    return save_dir


def train(data, save_dir, *args, config=TINY):
    """Run tools/train.py on ``data`` with a timeout; returns the CompletedProcess."""
    return run_train(data, save_dir, *args, config=config, timeout=TIMEOUT)


def copy_run(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def error_line(done) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def rows(path) -> list:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_same_config_resumes_and_says_so_on_the_console(data, finished, tmp_path):
    save_dir = copy_run(finished, tmp_path)
    done = train(data, save_dir, "--opts", *RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == f"resumed from {save_dir}/latest at iteration 4"


@pytest.mark.parametrize("opts, difference", [
    (["model.backbone=resnet50"], "model.backbone: mobilenetv2 → resnet50"),
    (["train.lr.decoder=0.001"], "train.lr.decoder: 0.0005 → 0.001"),
])
def test_another_config_is_refused_in_one_line_naming_the_difference(data, finished, tmp_path, opts, difference):
    save_dir = copy_run(finished, tmp_path)
    line = error_line(train(data, save_dir, "--opts", *RUN, *opts))
    assert line == (f"error: {save_dir} holds a run with another config ({difference}); use --fresh to start over "
                    f"in {save_dir}, another --save-dir, or --resume {save_dir}/latest to continue it with this config")


def test_fresh_starts_over_in_the_same_folder(data, finished, tmp_path):
    save_dir = copy_run(finished, tmp_path)
    done = train(data, save_dir, "--fresh", "--opts", *RUN, "train.iters=2", "train.lr.decoder=0.001")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed" not in done.stdout and "done: iteration 2" in done.stdout
    assert [row["iteration"] for row in rows(save_dir / "losses.csv")] == ["1", "2"]
    assert not (save_dir / "iter_4").exists()
    assert json.loads((save_dir / "latest" / "state.json").read_text())["config"]["train"]["lr"]["decoder"] == 0.001


@pytest.mark.parametrize("flag", ["--resume", "--resume-model"])
def test_resume_path_continues_deliberately_with_a_new_learning_rate(data, finished, tmp_path, flag):
    save_dir = copy_run(finished, tmp_path)
    done = train(data, save_dir, flag, save_dir / "iter_2", "--opts", *RUN, "train.iters=5", "train.lr.decoder=0.001")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == f"resumed from {save_dir}/iter_2 at iteration 2"
    assert "done: iteration 5" in done.stdout
    assert [row["iteration"] for row in rows(save_dir / "losses.csv")] == ["1", "2", "3", "4", "5"]
    state = json.loads((save_dir / "latest" / "state.json").read_text())
    assert state["iteration"] == 5 and state["config"]["train"]["lr"]["decoder"] == 0.001


def test_resuming_another_model_is_one_line(data, finished, tmp_path):
    save_dir = copy_run(finished, tmp_path)
    line = error_line(train(data, save_dir, "--resume", save_dir / "latest", "--opts", *RUN, "model.backbone=resnet50"))
    assert line.startswith(f"error: checkpoint {save_dir}/latest/model.pdparams does not fit the model: ")


def test_optimizer_state_that_does_not_fit_is_one_line(data, finished, tmp_path):
    import paddle

    save_dir = copy_run(finished, tmp_path)
    path = save_dir / "latest" / "model.pdopt"
    state = paddle.load(str(path))
    key = next(k for k in state if k.startswith("decoder.conv1.weight_moment1"))
    state[key] = paddle.to_tensor(np.zeros((3, 2), np.float32))
    paddle.save(state, str(path))
    line = error_line(train(data, save_dir, "--opts", *RUN))
    assert line.startswith(f"error: optimizer state {path} does not fit the model: the moment of decoder.conv1.weight "
                           "is [3, 2] there but ")


def test_a_resumed_run_logs_every_iteration_once(data, finished, tmp_path):
    from visualdl import LogReader

    save_dir = copy_run(finished, tmp_path)
    reference = {row["iteration"]: row["loss"] for row in rows(finished / "losses.csv")}
    # as if killed after iteration 4 was logged but before its checkpoint: latest is still iteration 2
    shutil.rmtree(save_dir / "latest")
    shutil.copytree(save_dir / "iter_2", save_dir / "latest")
    done = train(data, save_dir, "--opts", *RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == f"resumed from {save_dir}/latest at iteration 2"
    losses = rows(save_dir / "losses.csv")
    assert [row["iteration"] for row in losses] == ["1", "2", "3", "4"]
    assert [row["iteration"] for row in rows(save_dir / "valid.csv")] == ["2", "4"]
    log = (save_dir / "train.log").read_text()
    assert log.count(" iter 3 ") == 1 and log.count("valid iter 4 ") == 1, log
    assert losses[0]["loss"] == reference["1"]
    vdl = list((save_dir / "vdl").iterdir())
    assert len(vdl) == 1
    scalars = LogReader(file_path=str(vdl[0])).get_data("scalar", "train/loss")
    assert sorted(record.id for record in scalars) == [1, 2, 3, 4]


@pytest.mark.parametrize("config, kind", [(TINY, "mattingbase"), (VITMATTE_TINY, "vitmatte")])
def test_every_checkpoint_folder_holds_its_model_card(data, tmp_path, config, kind):
    done = train(data, tmp_path, "--opts", "train.iters=2", "train.save_interval=1", "train.val_interval=1",
                 "data.valid_samples=2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    for folder, iteration in (("iter_2", 2), ("latest", 2), ("best_model", None)):
        card = read_card(tmp_path / folder)
        state = json.loads((tmp_path / folder / "state.json").read_text())
        assert card["kind"] == kind and card["weights"] == "model.pdparams"
        provenance = card["provenance"]
        assert provenance["tool"] == "train" and provenance["source"] == config
        assert provenance["iteration"] == (state["iteration"] if iteration is None else iteration)
        assert provenance["config_hash"] == state["config_hash"]
    assert not (tmp_path / "model.yaml").exists()

"""tools/train.py on bad input (issue 13 items 2, 9, 10; issue 11 item 6): a bad sample is skipped and counted, too
many stop the run in one line, a bad config value is refused at start, never a hang (num_workers 0 and 2); the
validation split may be valid/ or test/; SIGTERM stops cleanly and the run resumes."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bgmatting.data.io import write_image
from tests.conftest import make_training_data, run_train

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "bgmv2_tiny.yaml")
VITMATTE_TINY = str(ROOT / "configs" / "vitmatte" / "tiny.yaml")
FAST = ["train.val_interval=1000", "data.valid_samples=2"]
TIMEOUT = 240  # seconds; a hang fails the test instead of blocking the suite


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_data(tmp_path_factory.mktemp("synthetic"), n=8, size=72, n_backgrounds=4)


@pytest.fixture(scope="module")
def bad_data(data, tmp_path_factory):
    """The synthetic data with one corrupt foreground and one fgr/pha pair of different sizes (2 of 12 files)."""
    root = tmp_path_factory.mktemp("bad") / "synthetic"
    shutil.copytree(data, root)
    (root / "videomatte" / "train" / "fgr" / "clip0000" / "0001.png").write_bytes(b"not a png")
    write_image(root / "videomatte" / "train" / "pha" / "clip0001" / "0005.png", np.zeros((40, 30), np.float32))
    return root


def train(data, save_dir, *args, config=TINY):
    """Run tools/train.py on ``data`` with a timeout; returns the CompletedProcess."""
    return run_train(data, save_dir, *args, config=config, timeout=TIMEOUT)


def error_line(done) -> str:
    """The one ``error:`` line of a refused run (exit 2, no traceback)."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_samples_are_skipped_with_a_counted_warning(bad_data, tmp_path, workers):
    done = train(bad_data, tmp_path, "--opts", "train.iters=6", "data.max_bad_share=0.5",
                 f"data.num_workers={workers}", *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done: iteration 6" in done.stdout
    warnings = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("warning:")]
    corrupt = bad_data / "videomatte" / "train" / "fgr" / "clip0000" / "0001.png"
    assert any(f"cannot read image (unreadable or corrupt): {corrupt}" in line for line in warnings), warnings
    assert any("clip0001/0005.png" in line and "size" in line for line in warnings), warnings
    assert any("(2 bad of 12 files so far)" in line for line in warnings), warnings
    assert "skipped a bad foreground" in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize("workers", [0, 2])
def test_too_many_bad_samples_stop_the_run_in_one_line(bad_data, tmp_path, workers):
    done = train(bad_data, tmp_path, "--opts", "train.iters=6", f"data.num_workers={workers}", *FAST)
    line = error_line(done)
    assert line.startswith("error: 1 of 12 train files are bad (8.3%, more than data.max_bad_share=0.01), the last: ")
    assert line.endswith("fix or remove them, or raise data.max_bad_share")


def test_every_file_bad_is_one_line_not_a_hang(data, tmp_path):
    root = tmp_path / "synthetic"
    shutil.copytree(data, root)
    for path in (root / "backgrounds" / "train").iterdir():
        path.write_bytes(b"")
    done = train(root, tmp_path / "run", "--opts", "train.iters=2", "data.max_bad_share=1", "data.num_workers=2", *FAST)
    assert "bad files in a row (the last bad background: cannot read image" in error_line(done)


@pytest.mark.parametrize("opts, message", [
    (["data.resolution=-64"], "config key data.resolution must be positive, got -64"),
    (["data.resolution=-64", "data.num_workers=2"], "config key data.resolution must be positive, got -64"),
    (["train.batch_size=0"], "config key train.batch_size must be positive, got 0"),
    (["train.save_interval=0"], "config key train.save_interval must be positive, got 0"),
    (["train.lr.decoder=-0.001"], "config key train.lr.decoder must be 0 or more, got -0.001"),
    (["train.iters=0"], "config key train.iters must be positive, got 0"),
    (["train.iters=-5"], "config key train.iters must be positive, got -5"),
    (["data.crop.min=-48"], "config key data.crop.min must be positive, got -48"),
    (["data.crop.max=48"], "config key data.crop.max must be more than data.crop.min (48), got 48"),
    (["data.max_bad_share=1.5"], "config key data.max_bad_share must be between 0 and 1, got 1.5"),
])
def test_bad_config_values_are_refused_at_start(data, tmp_path, opts, message):
    done = train(data, tmp_path / "run", "--opts", *opts)
    assert error_line(done) == f"error: {message}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("opts, message", [
    (["train.lr=-0.1"], "config key train.lr must be 0 or more, got -0.1"),
    (["data.crop=-64"], "config key data.crop must be positive, got -64"),
    (["train.batch_size=0"], "config key train.batch_size must be positive, got 0"),
])
def test_bad_vitmatte_config_values_are_refused_at_start(data, tmp_path, opts, message):
    done = train(data, tmp_path / "run", "--opts", *opts, config=VITMATTE_TINY)
    assert error_line(done) == f"error: {message}"


@pytest.mark.parametrize("name", ["valid", "test"])
def test_a_valid_or_a_test_split_trains_whatever_the_config_names(tmp_path, name):
    data = tmp_path / "synthetic"
    for layout, folder in (("fgr_pha", "videomatte"), ("backgrounds", "backgrounds")):
        made = subprocess.run([sys.executable, str(ROOT / "tools" / "make_synthetic.py"), "--out", str(data / folder),
                               "--layout", layout, "--n", "4", "--size", "72", "--valid-name", name],
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (data / "videomatte").iterdir()) == sorted(["train", name])
    other = "test" if name == "valid" else "valid"
    # the tiny config names valid/; a VideoMatte240K-style config names test/: both find the split there is
    named_other = [f"data.valid.root={data}/videomatte/{other}", f"data.valid.backgrounds={data}/backgrounds/{other}"]
    for opts in ([], named_other):
        done = train(data, tmp_path / f"run_{len(opts)}", "--opts", "train.iters=2", *FAST, *opts)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "done: iteration 2" in done.stdout


def test_a_missing_validation_split_names_the_folders_looked_for(data, tmp_path):
    done = train(data, tmp_path / "run", "--opts", f"data.valid.root={tmp_path}/vm/test")
    assert error_line(done) == (f"error: config key data.valid.root: folder not found: {tmp_path}/vm/test or "
                                f"{tmp_path}/vm/valid; expected ROOT/fgr/... and ROOT/pha/... images paired by "
                                "relative path (e.g. VideoMatte240K/train)")


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_stops_cleanly_and_the_run_resumes(data, tmp_path, workers):
    opts = ["--opts", "train.iters=40", "train.save_interval=2", f"data.num_workers={workers}", *FAST]
    command = [sys.executable, str(ROOT / "tools" / "train.py"), "--config", TINY, "--save-dir", str(tmp_path), *opts]
    process = subprocess.Popen(command, env=dict(os.environ, BGM_SYNTHETIC=str(data)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + TIMEOUT
    while not (tmp_path / "latest" / "state.json").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "C++" not in err and "FatalError" not in err, err[-3000:]
    assert "stopped at iteration" in err and err.rstrip().endswith("interrupted")
    done = train(data, tmp_path, *opts)  # the same command resumes
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = [line for line in done.stdout.splitlines() if line.startswith("resumed from")]
    assert resumed and resumed[0].startswith(f"resumed from {tmp_path}/latest at iteration ")
    assert "done: iteration 40" in done.stdout
    iterations = [int(line.split(",")[0]) for line in (tmp_path / "losses.csv").read_text().splitlines()[1:]]
    assert iterations == list(range(1, 41))  # each iteration logged once

"""Shared pytest set-up: the repository root on sys.path, Paddle's start-up warning silenced, CPU device."""
import os
import sys
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="No ccache found")
# the tests' exports go to a cache of their own (tests/test_export_cache.py sets its own where it needs one)
os.environ.setdefault("BGMATTING_EXPORT_CACHE", tempfile.mkdtemp(prefix="bgm-exports-"))


def run_script(*args):
    """Run ``python ARGS…`` from the repository root as a user would; returns the CompletedProcess (text output)."""
    import subprocess

    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def save_random_model(tmp_path_factory, model_class, backbone="mobilenetv2", seed=0):
    """Save a randomly initialised (seeded) BackgroundMattingV2 model as .pdparams; return its path."""
    import paddle

    paddle.seed(seed)
    path = tmp_path_factory.mktemp("ckpt") / f"{model_class.__name__.lower()}_{backbone}.pdparams"
    paddle.save(model_class(backbone).state_dict(), str(path))
    return path


def predict_error_line(capsys, argv, out_dir):
    """Run predict.py's main expecting bad input: assert exit 2, exactly one ``error:`` line, no traceback, and
    nothing written (neither ``out_dir`` nor its partial temp dir); return the error line."""
    import pytest

    from tools.predict import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(map(str, argv)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not out_dir.exists() and not list(out_dir.parent.glob(f".{out_dir.name}.partial*"))
    return lines[0]


def make_training_data(root, n: int = 4, size: int = 80, n_valid: int = 2, n_backgrounds: int = 3):
    """Synthetic training data in the layout the tiny configs read through ``$BGM_SYNTHETIC``: ``root/videomatte``
    (fgr/pha pairs, train + valid) and ``root/backgrounds/{train,valid}``; returns ``root``."""
    from bgmatting.data.synthetic import make_backgrounds, make_fgr_pha_dataset

    make_fgr_pha_dataset(root / "videomatte", n=n, size=size, seed=0, n_valid=n_valid)
    make_backgrounds(root / "backgrounds" / "train", n=n_backgrounds, size=size, seed=0)
    make_backgrounds(root / "backgrounds" / "valid", n=2, size=size, seed=1)
    return root


def run_train(data, save_dir, *args, config, timeout: float = 240):
    """Run tools/train.py with ``--config config --save-dir save_dir ARGS`` on ``data`` (``$BGM_SYNTHETIC``), with a
    timeout (a hang fails the test instead of blocking the suite); returns the CompletedProcess."""
    import subprocess

    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", str(config), "--save-dir",
               str(save_dir), *map(str, args)]
    return subprocess.run(command, env=dict(os.environ, BGM_SYNTHETIC=str(data)), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def headless_chrome(*arguments, window=(1280, 800)):
    """Debian's Chromium, headless, driven by its chromedriver (the browser tests; ``./run.sh test`` installs
    both); extra command-line ``arguments`` are added. The caller quits it."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={window[0]},{window[1]}", *arguments):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def read_video_frames(path) -> list:
    """Every frame OpenCV decodes from the video at ``path`` (BGR uint8 arrays)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames

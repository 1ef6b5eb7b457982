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

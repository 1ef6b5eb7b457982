"""Quiet runtimes: Paddle / oneDNN / paddle2onnx internals written to file descriptors 1 and 2 are dropped unless
--verbose; everything else (glog errors, our output, progress) still gets through."""
import os
import subprocess
import sys
import textwrap

import pytest

from bgmatting.data.synthetic import make_clean_plate_pairs
from bgmatting.models import MattingBase
from bgmatting.runtime_logs import is_noise
from tests.conftest import ROOT, save_random_model

NATIVE = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from bgmatting.runtime_logs import quiet_runtime_logs

    with quiet_runtime_logs(enabled={enabled}):
        os.write(2, b"W1130 07:25:27.509110  7488 eager_utils.cc:3584] Paddle static graph(PIR) not support input "
                    b"out tensor for now!!!!!\\n")
        os.write(1, b"[Paddle2ONNX] Start parsing the Paddle model file...\\n")
        os.write(2, b"I1130 07:25:28.000001  7488 onednn_helper.h:12] ReduceMeanCheckIfOneDNNSupport\\n")
        os.write(2, b"E1130 07:25:29.000000  7488 op.cc:1] a real error\\n")
        os.write(1, b"native but ours to keep\\n")
        print("2026-11-30 07:26:33 [INFO]\\tONNX model saved in /tmp/x/model.onnx.")
        print("wrote pha for 1 frame(s) to out")
        sys.stderr.write("progress 50%\\r")
        sys.stderr.flush()
    print("after the block")
""")


@pytest.mark.parametrize("enabled", [True, False])
def test_native_lines_filtered_unless_verbose(enabled):
    result = subprocess.run([sys.executable, "-c", NATIVE.format(root=str(ROOT), enabled=enabled)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    noise = ("eager_utils.cc", "[Paddle2ONNX]", "ReduceMeanCheckIfOneDNNSupport", "ONNX model saved")
    for text in noise:
        assert (text in result.stdout + result.stderr) != enabled, text
    for kept in ("wrote pha for 1 frame(s)", "native but ours to keep", "after the block"):
        assert kept in result.stdout
    assert "a real error" in result.stderr and "progress 50%" in result.stderr
    assert result.stdout.index("wrote pha") < result.stdout.index("after the block")


def test_noise_patterns():
    assert is_noise("W1130 07:25:27.509110  7488 eager_utils.cc:3584] Paddle static graph(PIR) not support")
    assert is_noise("[Paddle2ONNX] Use opset_version = 17 for ONNX export.")
    assert is_noise("/x/paddle/utils/cpp_extension/extension_utils.py:712: UserWarning: No ccache found. Please")
    assert not is_noise("E1130 07:25:29.000000  7488 op.cc:1] a real error")
    assert not is_noise("error: --src: no such file")
    assert not is_noise("warning: plate alignment fell back")


def test_predict_onnx_backend_is_quiet_and_verbose_shows_the_logs(tmp_path, tmp_path_factory):
    checkpoint = save_random_model(tmp_path_factory, MattingBase, seed=7)
    make_clean_plate_pairs(tmp_path / "pairs", 1, size=(48, 64), seed=0)
    env_cache = {"BGMATTING_EXPORT_CACHE": str(tmp_path / "cache")}
    outputs = {}
    for flag in ("", "--verbose"):
        env = dict(os.environ, **env_cache)
        env["BGMATTING_EXPORT_CACHE"] += flag  # a fresh cache each: both runs export
        result = subprocess.run([sys.executable, "predict.py", "--model-type", "mattingbase", "--model-backbone",
                                 "mobilenetv2", "--model-checkpoint", str(checkpoint), "--src",
                                 str(tmp_path / "pairs/src/0000.png"), "--bgr", str(tmp_path / "pairs/bgr/0000.png"),
                                 "--output-dir", str(tmp_path / f"out{flag}"), "--output-types", "pha", "--backend",
                                 "onnx", *([flag] if flag else [])], cwd=ROOT, capture_output=True, text=True, env=env,
                                timeout=600)
        assert result.returncode == 0, result.stderr
        assert "wrote pha for 1 frame(s)" in result.stdout
        outputs[flag] = result.stdout + result.stderr
    assert "[Paddle2ONNX]" not in outputs[""] and "eager_utils" not in outputs[""], outputs[""]
    assert "ONNX model saved" not in outputs[""]
    assert "[Paddle2ONNX]" in outputs["--verbose"]

"""Checkpoint reading and conversion: safety against malicious pickles, clear errors, all formats."""
import pickle
import zipfile

import numpy as np
import paddle
import pytest
import torch

from bgmatting.convert import convert_checkpoint
from bgmatting.convert.checkpoint_io import load_state_arrays
from bgmatting.errors import UserError
from bgmatting.models import MattingBase, MattingRefine
from tests.bgmv2_reference import reference_model
from tests.conftest import run_script


def run_cli(*args):
    return run_script("tools/convert_weights.py", *args)


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_malicious_torch_zip_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _Exploit(marker)}, protocol=2))
        archive.writestr("archive/version", "3\n")
    done = run_cli("--src", path, "--dst", tmp_path / "out.pdparams")
    assert_one_line_error(done, "refusing to load", "system")
    assert not marker.exists()
    assert not (tmp_path / "out.pdparams").exists()


def test_malicious_pdparams_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"w": _Exploit(marker)}, protocol=4))
    with pytest.raises(UserError, match="refusing to load"):
        load_state_arrays(path)
    assert not marker.exists()


def test_reader_matches_torch_for_strided_and_odd_dtypes(tmp_path):
    state = {"t": torch.randn(3, 5).t(), "h": torch.randn(4).half(), "b": torch.randn(4).bfloat16(),
             "n": torch.tensor(7), "p": torch.nn.Parameter(torch.randn(2, 2))}
    torch.save({"model": state}, tmp_path / "c.pth")
    arrays = load_state_arrays(tmp_path / "c.pth")
    np.testing.assert_array_equal(arrays["t"], state["t"].numpy())
    np.testing.assert_array_equal(arrays["h"], state["h"].numpy())
    np.testing.assert_array_equal(arrays["b"], state["b"].float().numpy())
    assert arrays["n"] == 7 and arrays["n"].dtype == np.int64
    np.testing.assert_array_equal(arrays["p"], state["p"].detach().numpy())


def test_bad_files_give_one_line(tmp_path):
    assert_one_line_error(run_cli("--src", tmp_path / "nope.pth", "--dst", tmp_path / "o.pdparams"), "not found")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    assert_one_line_error(run_cli("--src", garbage, "--dst", tmp_path / "o.pdparams"), "unrecognised")
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert_one_line_error(run_cli("--src", legacy, "--dst", tmp_path / "o.pdparams"), "legacy")
    truncated = tmp_path / "truncated.pth"
    torch.save({"w": torch.zeros(10)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert_one_line_error(run_cli("--src", truncated, "--dst", tmp_path / "o.pdparams"), "truncated.pth")


@pytest.fixture(scope="module")
def official_state():
    return reference_model("mattingrefine", "mobilenetv2", seed=5).state_dict()


def test_wrong_backbone_missing_and_mismatched_keys(tmp_path, official_state):
    good = tmp_path / "good.pth"
    torch.save(official_state, good)
    assert_one_line_error(run_cli("--src", good, "--dst", tmp_path / "o.pdparams", "--backbone", "resnet50"),
                          "--backbone resnet50", "mobilenetv2")
    missing = dict(official_state)
    del missing["decoder.conv2.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    assert_one_line_error(run_cli("--src", tmp_path / "missing.pth", "--dst", tmp_path / "o.pdparams"),
                          "missing keys: decoder.conv2.weight")
    mismatched = dict(official_state, **{"aspp.project.0.weight": torch.zeros(256, 1024, 1, 1)})
    torch.save(mismatched, tmp_path / "mismatch.pth")
    assert_one_line_error(run_cli("--src", tmp_path / "mismatch.pth", "--dst", tmp_path / "o.pdparams"),
                          "shape mismatches: aspp.project.0.weight")
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    assert_one_line_error(run_cli("--src", tmp_path / "other.pth", "--dst", tmp_path / "o.pdparams"),
                          "holds no model this project knows")


def test_data_parallel_prefix_and_paddle_port_checkpoints(tmp_path, official_state):
    torch.save({f"module.{k}": v for k, v in official_state.items()}, tmp_path / "ddp.pth")
    state, info = convert_checkpoint(tmp_path / "ddp.pth")
    assert info == dict(info, model_type="mattingrefine", backbone="mobilenetv2", refine_kernel_size=3)
    np.testing.assert_array_equal(state["aspp.convs.0.1._variance"],
                                  official_state["aspp.convs.0.1.running_var"].numpy())
    model = MattingRefine("mobilenetv2")
    model.set_state_dict(state)
    paddle.save(model.state_dict(), str(tmp_path / "port.pdparams"))  # the earlier Paddle port's format
    again, info = convert_checkpoint(tmp_path / "port.pdparams")
    assert set(again) == set(state)
    for key in state:
        np.testing.assert_array_equal(again[key], state[key])


def test_base_checkpoint_is_detected(tmp_path):
    base = reference_model("mattingbase", "resnet50", seed=2)
    torch.save(base.state_dict(), tmp_path / "base.pth")
    done = run_cli("--src", tmp_path / "base.pth", "--dst", tmp_path / "base.pdparams")
    assert done.returncode == 0, done.stderr
    assert "model_type=mattingbase" in done.stdout and "backbone=resnet50" in done.stdout
    model = MattingBase("resnet50")
    model.set_state_dict(paddle.load(str(tmp_path / "base.pdparams")))
    np.testing.assert_array_equal(model.state_dict()["backbone.layer4.2.conv3.weight"].numpy(),
                                  base.state_dict()["backbone.layer4.2.conv3.weight"].numpy())

"""eval.py on the bad inputs of issue 13: float alphas read by sample type, NaN/inf refused, and a --save-dir that
cannot be written refused before the run."""
import subprocess

import cv2
import numpy as np
import pytest

from bgmatting.data.io import write_image
from tools.eval import main


@pytest.fixture
def saved(tmp_path):
    """pred/ and gt/ folders with one 8-bit ground-truth alpha (gt/a.png); returns (root, gt alpha uint8)."""
    gt = np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (24, 1))
    write_image(tmp_path / "gt/a.png", gt)
    (tmp_path / "pred").mkdir()
    return tmp_path, gt


def _score(root):
    return main(["--pred-dir", str(root / "pred"), "--gt-dir", str(root / "gt"), "--save-dir", str(root / "out"),
                 "--quiet"])


def _error_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_a_prediction_equal_to_the_truth_scores_zero_whatever_its_sample_type(saved, dtype):
    root, gt = saved
    alpha = gt / 255.0
    stored = alpha.astype(np.float32) if dtype == np.float32 else (alpha * 65535).round().astype(np.uint16)
    assert cv2.imwrite(str(root / "pred/a.tif"), stored)
    assert cv2.imread(str(root / "pred/a.tif"), cv2.IMREAD_UNCHANGED).dtype == dtype
    result = _score(root)
    assert result.means["sad"] == 0 and result.means["mse"] == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 255.0])
def test_non_finite_or_out_of_range_float_alpha_is_refused(saved, capsys, bad):
    root, gt = saved
    alpha = (gt / 255.0).astype(np.float32)
    alpha[3, 4] = bad
    cv2.imwrite(str(root / "pred/a.tif"), alpha)
    line = _error_line(capsys, ["--pred-dir", str(root / "pred"), "--gt-dir", str(root / "gt"), "--save-dir",
                                str(root / "out"), "--quiet"])
    assert "a.tif" in line and ("1 NaN/infinite pixel" in line if bad != 255.0 else "[0, 255]" in line)
    assert not (root / "out").exists()


def test_save_dir_that_is_a_file(saved, capsys):
    root, gt = saved
    write_image(root / "pred/a.png", gt)
    (root / "report").write_text("not a folder")
    line = _error_line(capsys, ["--pred-dir", str(root / "pred"), "--gt-dir", str(root / "gt"), "--save-dir",
                                str(root / "report"), "--quiet"])
    assert "--save-dir: " in line and "report exists and is not a folder" in line
    assert (root / "report").read_text() == "not a folder"


def test_save_dir_read_only(saved, capsys):
    root, gt = saved
    write_image(root / "pred/a.png", gt)
    (root / "ro").mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(root / "ro")],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        line = _error_line(capsys, ["--pred-dir", str(root / "pred"), "--gt-dir", str(root / "gt"), "--save-dir",
                                    str(root / "ro/eval"), "--quiet"])
        assert "cannot write in" in line and not list((root / "ro").iterdir())
    finally:
        subprocess.run(["umount", str(root / "ro")], check=False)

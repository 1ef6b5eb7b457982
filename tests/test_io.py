"""Image I/O: clear errors for bad files, atomic writes, round trips."""
import os
import stat

import cv2
import numpy as np
import pytest

from bgmatting.data import io
from bgmatting.errors import UserError


def test_round_trips_and_channel_order(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 200  # red
    io.write_image(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.png"), rgb)
    rgba = np.dstack([rgb, np.full((5, 7), 77, np.uint8)])
    io.write_image(tmp_path / "b.png", rgba)
    np.testing.assert_array_equal(io.read_rgba(tmp_path / "b.png"), rgba)
    assert io.read_alpha(tmp_path / "b.png") == pytest.approx(np.full((5, 7), 77 / 255, np.float32))
    io.write_image(tmp_path / "c.png", np.full((3, 4), 0.5, np.float32))
    assert io.read_trimap(tmp_path / "c.png").tolist() == [[128] * 4] * 3


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="file not found: .*missing.png"):
        io.read_image(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="unreadable or corrupt.*corrupt.png"):
        io.read_image(tmp_path / "corrupt.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="empty.jpg"):
        io.read_alpha(tmp_path / "empty.jpg")
    with pytest.raises(UserError, match="got a folder"):
        io.read_image(tmp_path)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no images found in folder: .*nothing"):
        io.list_images(tmp_path / "nothing")
    with pytest.raises(UserError, match="size mismatch: src is 7x5 but bgr is 8x5"):
        io.check_same_size(np.zeros((5, 7, 3)), np.zeros((5, 8, 3)), "src", "bgr")


def test_atomic_write_leaves_nothing_on_failure_and_normal_permissions(tmp_path):
    target = tmp_path / "out" / "x.png"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed midway")
    assert not target.exists() and os.listdir(tmp_path / "out") == []
    io.write_image(target, np.zeros((2, 2, 3), np.uint8))
    assert os.listdir(tmp_path / "out") == ["x.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_list_images_is_sorted_recursive_and_skips_other_files(tmp_path):
    for name in ("b/2.png", "a/1.jpg", "a/notes.txt", "c.PNG"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in io.list_images(tmp_path)] == ["a/1.jpg", "b/2.png", "c.PNG"]


def test_alphas_are_read_by_sample_type(tmp_path):
    alpha = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "f.tif"), alpha)
    cv2.imwrite(str(tmp_path / "w.png"), (alpha * 65535).round().astype(np.uint16))
    np.testing.assert_array_equal(io.read_alpha(tmp_path / "f.tif"), alpha)
    np.testing.assert_allclose(io.read_alpha(tmp_path / "w.png"), alpha, atol=1 / 65535)
    cv2.imwrite(str(tmp_path / "n.tif"), np.where(alpha > 0.5, np.nan, alpha).astype(np.float32))
    with pytest.raises(UserError, match=r"alpha has 6 NaN/infinite pixel\(s\): .*n.tif"):
        io.read_alpha(tmp_path / "n.tif")


def test_a_write_that_cannot_happen_is_one_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write .*file/a.png"):
        io.write_image(tmp_path / "file" / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(UserError, match="--save-dir: cannot create .* is a file, not a folder"):
        io.check_writable_folder(tmp_path / "file" / "out", "--save-dir")

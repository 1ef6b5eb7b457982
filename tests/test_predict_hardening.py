"""predict.py on the bad inputs of issue 13: names sharing a stem, a damaged video, a killed run, alignment of
degenerate images, and output folders that cannot be written."""
import os
import signal
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from bgmatting.data.io import write_image
from bgmatting.data.video import VideoWriter
from tests.conftest import predict_error_line
from tests.test_predict_cli import ROOT, checkpoint, pairs, predict  # noqa: F401  (fixtures)
from tools.predict import main

MODEL = ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint"]


def _noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _video(path, count, size=(48, 64)):
    """A ``count``-frame mp4 of a square moving over noise; returns its background."""
    background = cv2.GaussianBlur(_noise((*size, 3)), (0, 0), 2)
    writer = VideoWriter(path, 10.0, size)
    for i in range(count):
        frame = background.copy()
        frame[16:32, i % (size[1] - 14):i % (size[1] - 14) + 14] = 128 + i % 100
        writer.write(frame)
    writer.close()
    return background


@pytest.fixture
def mount(tmp_path):
    """``mount(options)`` → a fresh tmpfs folder mounted with ``options`` (skips without the right to mount)."""
    mounted = []

    def make(options):
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_files_sharing_a_stem_get_distinct_names(checkpoint, pairs, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    photo = cv2.imread(str(pairs / "src/0000.png"))
    for ext in ("png", "jpg", "bmp"):
        cv2.imwrite(str(src / f"a.{ext}"), photo)
    cv2.imwrite(str(src / "b.png"), photo)
    predict(checkpoint, "--src", src, "--bgr", pairs / "bgr/0000.png", "--output-dir", tmp_path / "out",
            "--output-types", "pha", "com")
    assert "wrote pha, com for 4 frame(s)" in capsys.readouterr().out
    for kind in ("pha", "com"):
        assert sorted(p.name for p in (tmp_path / "out" / kind).iterdir()) == [
            "a_bmp.png", "a_jpg.png", "a_png.png", "b.png"]


def test_a_name_that_still_collides_is_refused(checkpoint, pairs, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    photo = cv2.imread(str(pairs / "src/0000.png"))
    for name in ("a.png", "a.jpg", "a_png.bmp"):
        cv2.imwrite(str(src / name), photo)
    line = predict_error_line(capsys, [*MODEL, checkpoint, "--src", src,
                                       "--bgr", pairs / "bgr/0000.png", "--output-dir", tmp_path / "out",
                                       "--output-types", "pha"], tmp_path / "out")
    assert "would both be written as a_png" in line


def _damage(path, fraction=0.25, length=200):
    """Zero ``length`` bytes of the mp4's media data at ``fraction`` of it (a few frames undecodable)."""
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat")
    size = struct.unpack(">I", data[mdat - 4:mdat])[0]
    start = mdat + int(size * fraction)
    data[start:start + length] = bytes(length)
    path.write_bytes(bytes(data))


def test_damaged_video_goes_on_past_bad_frames_and_reports_them(checkpoint, tmp_path, capsys):
    background = _video(tmp_path / "clip.mp4", 30)
    write_image(tmp_path / "plate.png", background)
    _damage(tmp_path / "clip.mp4")
    decodable = 0
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    for _ in range(30):
        decodable += capture.read()[0]
    assert 7 < decodable < 30  # the damage stops a naive reader early
    predict(checkpoint, "--src", tmp_path / "clip.mp4", "--bgr", tmp_path / "plate.png", "--output-dir",
            tmp_path / "out", "--output-types", "pha", "--output-format", "png")
    captured = capsys.readouterr()
    written = sorted(p.stem for p in (tmp_path / "out/pha").iterdir())
    assert len(written) == decodable and written[-1] == "00029"
    assert f"wrote pha for {decodable} frame(s)" in captured.out
    assert f"warning: skipped {30 - decodable} frame(s) that could not be decoded" in captured.err


def test_truncated_video_says_where_it_ended(checkpoint, tmp_path, capsys):
    background = _video(tmp_path / "clip.mp4", 30)
    write_image(tmp_path / "plate.png", background)
    data = (tmp_path / "clip.mp4").read_bytes()
    mdat = data.find(b"mdat")
    size = struct.unpack(">I", data[mdat - 4:mdat])[0]
    cut, end = mdat + size // 2, mdat - 4 + size
    (tmp_path / "clip.mp4").write_bytes(data[:cut] + bytes(end - cut) + data[end:])  # the media's second half zeroed
    predict(checkpoint, "--src", tmp_path / "clip.mp4", "--bgr", tmp_path / "plate.png", "--output-dir",
            tmp_path / "out", "--output-types", "pha", "--output-format", "png")
    captured = capsys.readouterr()
    written = len(list((tmp_path / "out/pha").iterdir()))
    assert 0 < written < 30 and f"wrote pha for {written} frame(s)" in captured.out
    assert "of the 30 its header announces" in captured.err


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sigterm_removes_the_partial_folder(checkpoint, tmp_path):
    background = _video(tmp_path / "clip.mp4", 400, size=(96, 128))
    write_image(tmp_path / "plate.png", background)
    process = subprocess.Popen([sys.executable, str(ROOT / "predict.py"), *MODEL, str(checkpoint),
                                "--src", str(tmp_path / "clip.mp4"),
                                "--bgr", str(tmp_path / "plate.png"), "--output-dir", str(tmp_path / "out"),
                                "--output-types", "pha", "--output-format", "png"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        staged = list(tmp_path.glob(".out.partial-*/pha/*.png"))
        if len(staged) >= 2:
            break
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted" in err and "FatalError" not in err, err
    assert not list(tmp_path.glob(".out.*")) and not (tmp_path / "out").exists()


def test_a_rerun_removes_stale_partial_folders_of_dead_processes(checkpoint, pairs, tmp_path, capsys):
    stale = tmp_path / f".out.partial-{_dead_pid()}"
    (stale / "pha").mkdir(parents=True)
    (stale / "pha/0000.png").write_bytes(b"x" * 1000)
    alive = tmp_path / f".out.partial-{os.getppid()}"  # a running process: never touched
    alive.mkdir()
    predict(checkpoint, "--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png", "--output-dir",
            tmp_path / "out", "--output-types", "pha")
    assert f"removed {stale.name}" in capsys.readouterr().err
    assert not stale.exists() and alive.is_dir() and (tmp_path / "out/pha/0000.png").is_file()


@pytest.mark.parametrize("size", [(1, 1), (1, 5000), (5000, 1)])
def test_alignment_of_degenerate_images_warns_and_resizes(checkpoint, tmp_path, capsys, size):
    write_image(tmp_path / "src.png", _noise((*size, 3)))
    write_image(tmp_path / "plate.png", _noise((*size, 3), seed=1))
    predict(checkpoint, "--src", tmp_path / "src.png", "--bgr", tmp_path / "plate.png", "--output-dir",
            tmp_path / "out", "--output-types", "pha", "--preprocess-alignment")
    assert "cannot align" in capsys.readouterr().err
    assert cv2.imread(str(tmp_path / "out/pha/src.png"), cv2.IMREAD_UNCHANGED).shape[:2] == size


def _bad_output(capsys, checkpoint, pairs, out, *extra):
    argv = [*MODEL, checkpoint, "--src", pairs / "src/0000.png",
            "--bgr", pairs / "bgr/0000.png", "--output-dir", out, "--output-types", "pha", *extra]
    return predict_error_line(capsys, argv, out)


def test_output_dir_under_a_file(capsys, checkpoint, pairs, tmp_path):
    (tmp_path / "file").write_text("x")
    line = _bad_output(capsys, checkpoint, pairs, tmp_path / "file/out")
    assert "is not a folder" in line and "file" in line


def test_output_dir_read_only(capsys, checkpoint, pairs, mount):
    folder = mount("ro,size=64k")
    line = _bad_output(capsys, checkpoint, pairs, folder / "out")
    assert "cannot write in" in line and str(folder) in line


def test_output_dir_on_a_full_disk(capsys, checkpoint, tmp_path, mount):
    folder = mount("size=96k")
    write_image(tmp_path / "src.png", _noise((240, 320, 3)))
    write_image(tmp_path / "plate.png", _noise((240, 320, 3), seed=1))
    argv = [*MODEL, checkpoint, "--src", tmp_path / "src.png",
            "--bgr", tmp_path / "plate.png", "--output-dir", folder / "out", "--output-types", "com", "fgr"]
    line = predict_error_line(capsys, argv, folder / "out")
    assert "cannot write" in line and "No space left on device" in line
    assert not list(folder.iterdir())


@pytest.mark.parametrize("given", [".", ".."])
def test_output_dir_holding_the_current_directory_is_refused(capsys, checkpoint, pairs, tmp_path, monkeypatch,
                                                             given):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as exit_info:
        main([*MODEL, str(checkpoint), "--src",
              str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png"), "--output-dir", given,
              "--output-types", "pha", "-y"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and "is the current directory or holds it" in err
    assert list(tmp_path.iterdir()) == [work] and not list(work.iterdir())


def test_symlinked_output_dir_with_y_replaces_its_target(checkpoint, pairs, tmp_path):
    (tmp_path / "real/err").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    predict(checkpoint, "--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png", "--output-dir",
            tmp_path / "link", "--output-types", "pha", "-y")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "link/pha/0000.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # no .link.old-PID / .real.old-PID

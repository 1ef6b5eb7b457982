"""predict.py bad input: one line naming the problem, exit status 2, no traceback, nothing written."""
import subprocess
import sys

import cv2
import pytest

from tests.conftest import predict_error_line
from tests.test_predict_cli import ROOT, checkpoint, pairs  # noqa: F401  (fixtures)
from tools.predict import main


def run_bad(capsys, tmp_path, args, checkpoint_path):
    """Run predict expecting failure; return the error line. Asserts exit 2, one line, no output written."""
    out = tmp_path / "out"
    argv = ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
            checkpoint_path, "--output-dir", out, "--output-types", "com", "pha", *args]
    return predict_error_line(capsys, argv, out)


def test_missing_src(capsys, tmp_path, checkpoint, pairs):
    line = run_bad(capsys, tmp_path, ["--src", tmp_path / "nope.png", "--bgr", pairs / "bgr/0000.png"], checkpoint)
    assert "--src: not found" in line and "nope.png" in line


def test_missing_bgr(capsys, tmp_path, checkpoint, pairs):
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", tmp_path / "gone.jpg"], checkpoint)
    assert "--bgr: not found" in line and "gone.jpg" in line


def test_corrupt_image(capsys, tmp_path, checkpoint, pairs):
    data = (pairs / "src/0000.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(data[: len(data) // 3])
    line = run_bad(capsys, tmp_path, ["--src", tmp_path / "broken.png", "--bgr", pairs / "bgr/0000.png"], checkpoint)
    assert "unreadable or corrupt" in line and "broken.png" in line


def test_zero_byte_file(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "empty.jpg").write_bytes(b"")
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", tmp_path / "empty.jpg"], checkpoint)
    assert "empty file (0 bytes)" in line and "empty.jpg" in line


def test_non_image_file(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "notes.txt").write_text("hello")
    line = run_bad(capsys, tmp_path, ["--src", tmp_path / "notes.txt", "--bgr", pairs / "bgr/0000.png"], checkpoint)
    assert "not an image, a video or a folder" in line and "notes.txt" in line


def test_text_file_named_like_a_video(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "clip.mp4").write_text("not a video")
    line = run_bad(capsys, tmp_path, ["--src", tmp_path / "clip.mp4", "--bgr", pairs / "bgr/0000.png"], checkpoint)
    assert "cannot read video" in line and "clip.mp4" in line


def test_size_mismatch_suggests_bgr_resize(capsys, tmp_path, checkpoint, pairs):
    plate = cv2.imread(str(pairs / "bgr/0000.png"))
    cv2.imwrite(str(tmp_path / "plate.png"), plate[:40])
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", tmp_path / "plate.png"], checkpoint)
    assert "size mismatch" in line and "83x61" in line and "83x40" in line and "--bgr-resize" in line


def test_folder_count_mismatch(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "plates").mkdir()
    for name in ("0000.png", "0001.png"):
        (tmp_path / "plates" / name).write_bytes((pairs / "bgr" / name).read_bytes())
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src", "--bgr", tmp_path / "plates"], checkpoint)
    assert "--src has 3 images but --bgr has 2" in line


def test_empty_folder(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "empty").mkdir()
    line = run_bad(capsys, tmp_path, ["--src", tmp_path / "empty", "--bgr", pairs / "bgr"], checkpoint)
    assert "no images found in folder" in line and "empty" in line


def test_checkpoint_of_another_backbone(capsys, tmp_path, checkpoint, pairs):
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        main(["--model-type", "mattingrefine", "--model-backbone", "resnet50", "--model-checkpoint", str(checkpoint),
              "--src", str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png"), "--output-dir", str(out),
              "--output-types", "pha"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a mobilenetv2 model but --model-backbone is resnet50" in err
    assert not out.exists()


def test_not_a_checkpoint(capsys, tmp_path, pairs):
    (tmp_path / "weights.pth").write_text("definitely not weights")
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png"],
                   tmp_path / "weights.pth")
    assert "unrecognised checkpoint format" in line and "weights.pth" in line


def test_existing_output_dir_without_y(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "out" / "pha").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
              str(checkpoint), "--src", str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png"),
              "--output-dir", str(tmp_path / "out"), "--output-types", "pha"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "output directory already exists" in err and "pass -y" in err
    assert list((tmp_path / "out" / "pha").iterdir()) == []  # untouched


def test_foreign_output_dir_is_never_replaced(capsys, tmp_path, checkpoint, pairs):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(SystemExit):
        main(["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
              str(checkpoint), "--src", str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png"),
              "--output-dir", str(tmp_path / "out"), "--output-types", "pha", "-y"])
    assert "did not write (thesis.tex)" in capsys.readouterr().err
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"


def test_failure_midway_leaves_nothing(capsys, tmp_path, checkpoint, pairs):
    """The third plate has another size: found only when it is reached; the two finished frames are discarded."""
    (tmp_path / "plates").mkdir()
    for name in ("0000.png", "0001.png", "0002.png"):
        image = cv2.imread(str(pairs / "bgr" / name))
        cv2.imwrite(str(tmp_path / "plates" / name), image if name != "0002.png" else image[:50])
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src", "--bgr", tmp_path / "plates"], checkpoint)
    assert "size mismatch for 0002" in line


def test_bgr_auto_needs_several_frames(capsys, tmp_path, checkpoint, pairs):
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", "auto"], checkpoint)
    assert "--bgr auto needs a video or a folder" in line


def test_video_output_needs_video_src(capsys, tmp_path, checkpoint, pairs):
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src", "--bgr", pairs / "bgr", "--output-format", "video"],
                   checkpoint)
    assert "--output-format video needs a video --src" in line


def test_bad_target_bgr(capsys, tmp_path, checkpoint, pairs):
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png",
                                      "--target-bgr", "0,300,0"], checkpoint)
    assert "0..255" in line


def test_cli_prints_one_line_without_traceback(tmp_path, checkpoint):
    result = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--model-type", "mattingrefine",
                             "--model-backbone", "mobilenetv2", "--model-checkpoint", str(checkpoint),
                             "--src", str(tmp_path / "missing.png"), "--bgr", str(tmp_path / "missing.png"),
                             "--output-dir", str(tmp_path / "out"), "--output-types", "pha"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: --src: not found: {tmp_path / 'missing.png'}"]
    assert not (tmp_path / "out").exists()


def test_gpu_without_cuda(capsys, tmp_path, checkpoint, pairs):
    line = run_bad(capsys, tmp_path, ["--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png",
                                      "--device", "gpu"], checkpoint)
    assert "--device gpu needs a CUDA build of Paddle" in line


@pytest.mark.parametrize("answer", ["y", "n"])
def test_existing_output_dir_asks_on_a_terminal(capsys, tmp_path, checkpoint, pairs, monkeypatch, answer):
    (tmp_path / "out" / "pha").mkdir(parents=True)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    questions = []
    monkeypatch.setattr("builtins.input", lambda prompt: questions.append(prompt) or answer)
    argv = ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
            str(checkpoint), "--src", str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png"),
            "--output-dir", str(tmp_path / "out"), "--output-types", "pha"]
    if answer == "y":
        main(argv)
        assert (tmp_path / "out/pha/0000.png").is_file()
    else:
        with pytest.raises(SystemExit):
            main(argv)
        assert list((tmp_path / "out/pha").iterdir()) == []
    assert len(questions) == 1 and "already exists" in questions[0]

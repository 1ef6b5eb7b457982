"""The official BackgroundMattingV2 command lines (inference_images.py, inference_video.py, inference_webcam.py) run
unchanged on synthetic data with random weights, with the official output layout; the webcam entry point on a
video file standing in for the camera, with its frame-rate report."""

import cv2
import numpy as np
import pytest

from bgmatting.data.io import read_image, write_image
from bgmatting.data.synthetic import composite, item_rng, make_background, make_clean_plate_pairs, make_foreground
from bgmatting.models import MattingBase, MattingRefine
from bgmatting.pipeline.official import FPSTracker, images_main, video_main, webcam_main
from tests.conftest import read_video_frames, run_script, save_random_model

SIZE = (64, 96)  # (H, W)
FRAMES = 6


@pytest.fixture(scope="module")
def refine_checkpoint(tmp_path_factory):
    return save_random_model(tmp_path_factory, MattingRefine)


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    return save_random_model(tmp_path_factory, MattingBase)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """ROOT/src/000N.png + ROOT/bgr/000N.png (3 synthetic photos and plates), one in a subfolder as well."""
    root = tmp_path_factory.mktemp("images")
    make_clean_plate_pairs(root, 3, size=SIZE, seed=0)
    for folder in ("src", "bgr"):  # the official ImagesDataset searches recursively and keeps the relative path
        (root / folder / "sub").mkdir()
        (root / folder / "0002.png").rename(root / folder / "sub" / "0002.png")
    return root


def write_video(path, frames, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """ROOT/clip.mp4 (a synthetic subject moving over a background, 6 frames at 10 fps), ROOT/plate.png (the empty
    background) and ROOT/target.mp4 (another background to composite onto)."""
    root = tmp_path_factory.mktemp("video")
    rng = item_rng(0, "plate", 0)
    fgr, pha = make_foreground(SIZE, rng)
    background = make_background(SIZE, rng)
    frames = [(composite(np.roll(fgr, 4 * i, axis=1), np.roll(pha, 4 * i, axis=1), background) * 255).round()
              .astype(np.uint8) for i in range(FRAMES)]
    write_video(root / "clip.mp4", frames)
    write_image(root / "plate.png", (background * 255).round().astype(np.uint8))
    target = (make_background(SIZE, item_rng(1, "plate", 0)) * 255).round().astype(np.uint8)
    write_video(root / "target.mp4", [target] * FRAMES)
    return root


def test_official_images_command_line_runs_unchanged(refine_checkpoint, images, tmp_path):
    """The example of the official inference_images.py docstring, paths aside (even its `--output-type`)."""
    out = tmp_path / "out"
    result = run_script("inference_images.py",
                        "--model-type", "mattingrefine",
                        "--model-backbone", "mobilenetv2",
                        "--model-backbone-scale", "0.25",
                        "--model-refine-mode", "sampling",
                        "--model-refine-sample-pixels", "80000",
                        "--model-checkpoint", refine_checkpoint,
                        "--images-src", images / "src",
                        "--images-bgr", images / "bgr",
                        "--output-dir", out,
                        "--output-type", "com", "fgr", "pha")
    assert result.returncode == 0, result.stderr
    for name in ("0000", "0001", "sub/0002"):
        com = cv2.imread(str(out / "com" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert com.shape == (*SIZE, 4), name  # RGBA PNG
        assert cv2.imread(str(out / "pha" / f"{name}.jpg")).shape[:2] == SIZE
        assert cv2.imread(str(out / "fgr" / f"{name}.jpg")).shape[:2] == SIZE
    assert sorted(p.name for p in out.iterdir()) == ["com", "fgr", "pha"]
    assert "wrote com, fgr, pha for 3 image(s)" in result.stdout


def test_images_err_ref_alignment_and_png(refine_checkpoint, images, tmp_path):
    out = tmp_path / "out"
    images_main(["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
                 str(refine_checkpoint), "--images-src", str(images / "src"), "--images-bgr",
                 str(images / "bgr" / "0000.png"), "--output-dir", str(out), "--output-types", "err", "ref",
                 "--device", "cpu", "--num-workers", "2", "--output-format", "png", "--preprocess-alignment"])
    assert read_image(out / "err" / "sub" / "0002.png").shape[:2] == SIZE
    assert (out / "ref" / "0001.png").is_file()


def test_images_refusals(base_checkpoint, refine_checkpoint, images, tmp_path, capsys):
    common = ["--images-src", str(images / "src"), "--images-bgr", str(images / "bgr"), "--output-dir",
              str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:  # the official asserts: ref needs mattingrefine
        images_main(["--model-type", "mattingbase", "--model-backbone", "mobilenetv2", "--model-checkpoint",
                     str(base_checkpoint), *common, "--output-types", "ref"])
    assert exit_info.value.code == 2 and "mattingrefine" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:  # never deletes a folder of other files, -y or not
        images_main(["--model-checkpoint", str(refine_checkpoint), *common, "--output-types", "pha", "-y"])
    assert exit_info.value.code == 2 and "notes.txt" in capsys.readouterr().err


def test_official_video_command_line_runs_unchanged(refine_checkpoint, video, tmp_path):
    """The example of the official inference_video.py docstring, paths aside."""
    out = tmp_path / "out"
    result = run_script("inference_video.py",
                        "--model-type", "mattingrefine",
                        "--model-backbone", "mobilenetv2",
                        "--model-backbone-scale", "0.25",
                        "--model-refine-mode", "sampling",
                        "--model-refine-sample-pixels", "80000",
                        "--model-checkpoint", refine_checkpoint,
                        "--video-src", video / "clip.mp4",
                        "--video-bgr", video / "plate.png",
                        "--video-resize", "80", "48",
                        "--output-dir", out,
                        "--output-type", "com", "fgr", "pha", "err", "ref",
                        "--video-target-bgr", video / "target.mp4")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["com.mp4", "err.mp4", "fgr.mp4", "pha.mp4", "ref.mp4"]
    for kind in ("com", "pha", "ref"):
        frames = read_video_frames(out / f"{kind}.mp4")
        assert len(frames) == FRAMES and frames[0].shape[:2] == (48, 80), kind
    assert cv2.VideoCapture(str(out / "com.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)


def test_video_image_sequences_and_default_green(base_checkpoint, video, tmp_path):
    out = tmp_path / "seq"
    video_main(["--model-type", "mattingbase", "--model-backbone", "mobilenetv2", "--model-checkpoint",
                str(base_checkpoint), "--video-src", str(video / "clip.mp4"), "--video-bgr", str(video / "plate.png"),
                "--output-dir", str(out), "--output-types", "com", "pha", "--output-format", "image_sequences"])
    assert sorted(p.name for p in (out / "com").iterdir()) == [f"{i:05d}.png" for i in range(FRAMES)]
    assert sorted(p.name for p in (out / "pha").iterdir()) == [f"{i:05d}.jpg" for i in range(FRAMES)]
    assert cv2.imread(str(out / "com" / "00000.png"), cv2.IMREAD_UNCHANGED).shape == (*SIZE, 4)
    green = tmp_path / "green"
    video_main(["--model-checkpoint", str(base_checkpoint), "--video-src", str(video / "clip.mp4"), "--video-bgr",
                str(video / "plate.png"), "--output-dir", str(green), "--output-types", "com", "-y"])
    assert len(read_video_frames(green / "com.mp4")) == FRAMES


def test_video_plate_of_another_size_needs_resize(base_checkpoint, video, tmp_path, capsys):
    small = tmp_path / "small.png"
    write_image(small, np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        video_main(["--model-checkpoint", str(base_checkpoint), "--video-src", str(video / "clip.mp4"),
                    "--video-bgr", str(small), "--output-dir", str(tmp_path / "out"), "--output-types", "pha"])
    assert exit_info.value.code == 2 and "size mismatch" in capsys.readouterr().err
    video_main(["--model-checkpoint", str(base_checkpoint), "--video-src", str(video / "clip.mp4"),
                "--video-bgr", str(small), "--video-resize", "48", "32", "--output-dir", str(tmp_path / "out"),
                "--output-types", "pha"])
    assert read_video_frames(tmp_path / "out" / "pha.mp4")[0].shape[:2] == (32, 48)


def test_webcam_on_a_video_file_with_fps_report(base_checkpoint, video, tmp_path):
    """inference_webcam.py with a video file standing in for the camera, no screen: the first frame is the plate,
    the composite is written, the frame rate reported."""
    live = tmp_path / "live.mp4"
    result = run_script("inference_webcam.py", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                        "--model-checkpoint", base_checkpoint, "--src", video / "clip.mp4", "--no-display",
                        "--output", live)
    assert result.returncode == 0, result.stderr
    assert f"matted {FRAMES - 1} frame(s): " in result.stdout and " fps" in result.stdout
    assert "ms/frame" in result.stdout
    frames = read_video_frames(live)
    assert len(frames) == FRAMES - 1 and frames[0].shape[:2] == SIZE


def test_webcam_plate_file_frame_limit_and_refusals(base_checkpoint, video, tmp_path, capsys):
    live = tmp_path / "live.mp4"
    webcam_main(["--model-checkpoint", str(base_checkpoint), "--src", str(video / "clip.mp4"), "--bgr",
                 str(video / "plate.png"), "--no-display", "--output", str(live), "--max-frames", "4",
                 "--report-every", "0", "--target-bgr", "0,0,255"])
    assert "matted 4 frame(s)" in capsys.readouterr().out
    frames = read_video_frames(live)
    assert len(frames) == 4
    # where the (random) model says background, the composite is the target colour: blue dominates somewhere
    assert (frames[0][..., 0].astype(int) - frames[0][..., 2] > 100).any()
    for argv, message in ((["--src", str(video / "clip.mp4"), "--no-display"], "nothing would be shown"),
                          (["--src", str(tmp_path / "none.mp4"), "--output", str(live)], "no such video file"),
                          (["--src", "camera:x", "--output", str(live), "--no-display"], "camera:N")):
        with pytest.raises(SystemExit) as exit_info:
            webcam_main(["--model-checkpoint", str(base_checkpoint), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, message


def test_fps_tracker_moving_average():
    tracker = FPSTracker(ratio=0.5)
    assert tracker.tick(0.0) is None
    assert tracker.tick(0.1) == pytest.approx(10.0)
    assert tracker.tick(0.3) == pytest.approx(0.5 * 5.0 + 0.5 * 10.0)
    assert tracker.overall() == pytest.approx(2 / 0.3)

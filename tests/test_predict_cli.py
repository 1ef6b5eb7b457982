"""predict.py end to end on tiny synthetic inputs: images, folders, videos, --bgr auto, alignment, conversions."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from bgmatting.data.io import read_alpha, read_image, read_rgba, write_image
from bgmatting.data.synthetic import make_clean_plate_pairs
from bgmatting.data.video import VideoSource, VideoWriter
from bgmatting.models import MattingRefine
from tests.conftest import save_random_model
from bgmatting.pipeline.outputs import TargetBackground
from tools.predict import main

ROOT = Path(__file__).resolve().parents[1]
SIZE = (61, 83)  # (H, W), not multiples of 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised MattingRefine(mobilenetv2) saved as .pdparams."""
    return save_random_model(tmp_path_factory, MattingRefine)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """ROOT/{src,bgr,pha,fgr}/000N.png: three synthetic photos with their clean plates."""
    root = tmp_path_factory.mktemp("pairs")
    make_clean_plate_pairs(root, 3, size=SIZE, seed=0)
    return root


def moving_square_frames(count=12, size=(48, 64)):
    """A textured background with a grey square moving left to right; returns (frames, background)."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), dtype=np.uint8), (0, 0), 2)
    frames = []
    for i in range(count):
        frame = background.copy()
        x = 2 + i * (size[1] - 18) // max(count - 1, 1)
        frame[16:32, x:x + 14] = 128
        frames.append(frame)
    return frames, background


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 12-frame 64x48 mp4 at 10 fps and its clean plate as a PNG."""
    root = tmp_path_factory.mktemp("video")
    frames, background = moving_square_frames()
    writer = VideoWriter(root / "clip.mp4", 10.0, frames[0].shape[:2])
    for frame in frames:
        writer.write(frame)
    writer.close()
    write_image(root / "plate.png", background)
    return root


def predict(checkpoint, *args):
    """Run predict.py's main on the random MattingRefine(mobilenetv2) checkpoint with ``args``."""
    main(["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
          str(checkpoint), "--model-refine-sample-pixels", "1600", *map(str, args)])


def test_image_pair_writes_every_output_at_input_size(checkpoint, pairs, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png", "--output-dir", out,
            "--output-types", "com", "pha", "fgr", "err", "ref")
    for kind in ("com", "pha", "fgr", "err", "ref"):
        image = cv2.imread(str(out / kind / "0000.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == SIZE, kind
    com = read_rgba(out / "com/0000.png")
    pha = read_alpha(out / "pha/0000.png")
    fgr = cv2.imread(str(out / "fgr/0000.png"))[:, :, ::-1]
    np.testing.assert_allclose(com[:, :, 3] / 255.0, pha, atol=1 / 255)  # alpha channel = pha
    assert (com[:, :, :3][pha == 0] == 0).all()  # fgr × (pha > 0)
    np.testing.assert_array_equal(com[:, :, :3][pha > 0], fgr[pha > 0])
    assert not list(tmp_path.glob(".*partial*"))


def test_folders_pair_by_sorted_path_and_jpg_format(checkpoint, pairs, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", pairs / "src", "--bgr", pairs / "bgr", "--output-dir", out,
            "--output-types", "pha", "com", "--output-format", "jpg")
    assert sorted(p.name for p in (out / "pha").iterdir()) == ["0000.jpg", "0001.jpg", "0002.jpg"]
    assert sorted(p.name for p in (out / "com").iterdir()) == ["0000.png", "0001.png", "0002.png"]  # RGBA stays PNG


def test_target_colour_composite(checkpoint, pairs, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", pairs / "src/0001.png", "--bgr", pairs / "bgr/0001.png", "--output-dir", out,
            "--output-types", "com", "pha", "--target-bgr", "0,255,0")
    com = cv2.imread(str(out / "com/0001.png"))[:, :, ::-1]
    pha = read_alpha(out / "pha/0001.png")
    assert com.shape == (*SIZE, 3)
    np.testing.assert_array_equal(com[pha == 0], np.tile([0, 255, 0], (int((pha == 0).sum()), 1)))


def test_video_in_video_out_keeps_fps_and_frames(checkpoint, video, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", video / "clip.mp4", "--bgr", video / "plate.png", "--output-dir", out,
            "--output-types", "com", "pha")
    for kind in ("com", "pha"):
        result = VideoSource(out / f"{kind}.mp4")
        assert result.size == (48, 64) and result.fps == pytest.approx(10.0) and len(list(result)) == 12


def test_video_to_png_sequence_and_video_plate(checkpoint, video, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", video / "clip.mp4", "--bgr", video / "clip.mp4", "--output-dir", out,
            "--output-types", "pha", "--output-format", "png")
    assert sorted(p.name for p in (out / "pha").iterdir()) == [f"{i:05d}.png" for i in range(12)]


def test_bgr_auto_estimates_the_plate(checkpoint, video, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", video / "clip.mp4", "--bgr", "auto", "--output-dir", out, "--output-types", "pha")
    plate = cv2.imread(str(out / "plate.png"))[:, :, ::-1].astype(int)
    background = cv2.imread(str(video / "plate.png"))[:, :, ::-1].astype(int)
    assert np.abs(plate - background).mean() < 4  # mp4 compression, not the square
    assert len(list(VideoSource(out / "pha.mp4"))) == 12


def test_alignment_accepts_a_plate_of_another_size(checkpoint, pairs, tmp_path):
    out = tmp_path / "out"
    plate = cv2.imread(str(pairs / "bgr/0000.png"))
    write_image(tmp_path / "plate.png", cv2.resize(plate, (100, 80))[:, :, ::-1])
    predict(checkpoint, "--src", pairs / "src/0000.png", "--bgr", tmp_path / "plate.png", "--output-dir", out,
            "--output-types", "pha", "--preprocess-alignment")
    assert cv2.imread(str(out / "pha/0000.png"), cv2.IMREAD_UNCHANGED).shape == SIZE


def test_bgr_resize_opt_in(checkpoint, pairs, tmp_path):
    out = tmp_path / "out"
    plate = cv2.imread(str(pairs / "bgr/0000.png"))
    cv2.imwrite(str(tmp_path / "plate.png"), cv2.resize(plate, (166, 122)))
    predict(checkpoint, "--src", pairs / "src/0000.png", "--bgr", tmp_path / "plate.png", "--output-dir", out,
            "--output-types", "pha", "--bgr-resize")
    assert cv2.imread(str(out / "pha/0000.png"), cv2.IMREAD_UNCHANGED).shape == SIZE


def test_y_replaces_an_earlier_output(checkpoint, pairs, tmp_path):
    out = tmp_path / "out"
    args = ["--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png", "--output-dir", out]
    predict(checkpoint, *args, "--output-types", "err")
    predict(checkpoint, *args, "--output-types", "pha", "-y")
    assert sorted(p.name for p in out.iterdir()) == ["pha"]


def _convert_and_predict(checkpoint, tmp_path, src_path, expected_size):
    out = tmp_path / "out"
    plate = np.full((*expected_size, 3), 90, np.uint8)
    write_image(tmp_path / "plate.png", plate)
    predict(checkpoint, "--src", src_path, "--bgr", tmp_path / "plate.png", "--output-dir", out,
            "--output-types", "pha")
    return cv2.imread(str(next((out / "pha").iterdir())), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit"])
def test_grey_rgba_and_16bit_inputs_are_converted(checkpoint, tmp_path, kind):
    rng = np.random.default_rng(1)
    image = {"grey": rng.integers(0, 256, SIZE, dtype=np.uint8),
             "rgba": rng.integers(0, 256, (*SIZE, 4), dtype=np.uint8),
             "16bit": rng.integers(0, 65536, (*SIZE, 3), dtype=np.uint16)}[kind]
    cv2.imwrite(str(tmp_path / "src.png"), image)  # OpenCV order: BGR(A)
    if kind == "grey":
        expected = np.repeat(image[:, :, None], 3, axis=2)
    elif kind == "rgba":
        expected = image[:, :, 2::-1]
    else:
        expected = np.round(image[:, :, ::-1] / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(read_image(tmp_path / "src.png"), expected)
    assert _convert_and_predict(checkpoint, tmp_path, tmp_path / "src.png", SIZE).shape == SIZE


def test_exif_rotated_jpeg_is_upright(checkpoint, tmp_path):
    """Pixels stored 61 wide x 83 high with EXIF orientation 6 ('rotate 90° clockwise') are an 83x61 photo."""
    picture = Image.fromarray(np.zeros(SIZE[::-1] + (3,), np.uint8))
    exif = picture.getexif()
    exif[0x0112] = 6
    picture.save(tmp_path / "src.jpg", exif=exif)
    assert _convert_and_predict(checkpoint, tmp_path, tmp_path / "src.jpg", SIZE).shape == SIZE


def test_root_shim_runs_as_a_script(checkpoint, pairs, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--model-type", "mattingrefine",
                             "--model-backbone", "mobilenetv2", "--model-checkpoint", str(checkpoint),
                             "--src", str(pairs / "src/0002.png"), "--bgr", str(pairs / "bgr/0002.png"),
                             "--output-dir", str(tmp_path / "out"), "--output-types", "pha"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/pha/0002.png").is_file()


def test_target_video_is_looped(video):
    target = TargetBackground(str(video / "clip.mp4"))
    frames = [target.next((24, 32)) for _ in range(13)]
    assert frames[0].shape == (24, 32, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[12], frames[0])  # 12 frames, then from the start again
    assert np.abs(frames[6].astype(int) - frames[0]).max() > 12  # another frame: the square moved


def test_empty_existing_output_dir_is_used(checkpoint, pairs, tmp_path):
    (tmp_path / "out").mkdir()
    predict(checkpoint, "--src", pairs / "src/0000.png", "--bgr", pairs / "bgr/0000.png", "--output-dir",
            tmp_path / "out", "--output-types", "pha")
    assert (tmp_path / "out/pha/0000.png").is_file()


def test_bgr_auto_warns_about_a_still_clip(checkpoint, tmp_path, capsys):
    frames, _ = moving_square_frames(count=1)
    writer = VideoWriter(tmp_path / "still.mp4", 10.0, frames[0].shape[:2])
    for _ in range(6):
        writer.write(frames[0])
    writer.close()
    predict(checkpoint, "--src", tmp_path / "still.mp4", "--bgr", "auto", "--output-dir", tmp_path / "out",
            "--output-types", "pha")
    assert "warning: --bgr auto: the frames show no motion" in capsys.readouterr().err
    assert (tmp_path / "out/pha.mp4").is_file()

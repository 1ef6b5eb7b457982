"""predict.py's guide outputs and cleaning: output types `trimap` (ViTMatte's input, the cascade's automatic trimap)
and `bgr` (the plate as the model saw it: aligned, resized, estimated), and --clamp-known on trimap paths."""
import numpy as np
import pytest

from bgmatting.data.io import read_alpha, read_image, write_image
from bgmatting.data.synthetic import make_clean_plate_pairs
from bgmatting.engine.kinds.cascade import cascade_trimap
from bgmatting.engine.predictor import Predictor
from bgmatting.models import MattingBase
from tests.conftest import predict_error_line, save_random_model
from tests.test_vitmatte_predict import checkpoint, photo_and_trimap  # noqa: F401  (fixture)
from tools.predict import main

SIZE = (48, 64)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    make_clean_plate_pairs(root, 2, size=SIZE, seed=0)
    return root


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    return save_random_model(tmp_path_factory, MattingBase)


def read_grey(path):
    return (read_alpha(path) * 255).round().astype(np.uint8)


def test_vitmatte_trimap_output_and_clamp_known(checkpoint, tmp_path):
    image, trimap = photo_and_trimap()
    write_image(tmp_path / "photo.png", image)
    write_image(tmp_path / "trimap.png", trimap)
    common = ["--model-type", "vitmatte", "--model-checkpoint", str(checkpoint), "--src", str(tmp_path / "photo.png"),
              "--trimap", str(tmp_path / "trimap.png"), "--output-types", "pha", "trimap"]
    main([*common, "--output-dir", str(tmp_path / "raw")])
    main([*common, "--output-dir", str(tmp_path / "clamped"), "--clamp-known"])
    np.testing.assert_array_equal(read_grey(tmp_path / "raw/trimap/photo.png"), trimap)
    raw, clamped = read_grey(tmp_path / "raw/pha/photo.png"), read_grey(tmp_path / "clamped/pha/photo.png")
    assert (clamped[trimap == 0] == 0).all() and (clamped[trimap == 255] == 255).all()
    np.testing.assert_array_equal(clamped[trimap == 128], raw[trimap == 128])  # the unknown band untouched
    assert (raw[trimap == 0] != 0).any()  # a random model: clamping really changed something


def test_cascade_writes_its_automatic_trimap_and_clamps_to_it(pairs, base_checkpoint, checkpoint, tmp_path):
    options = ["--model-type", "bgmv2+vitmatte", "--model-backbone", "mobilenetv2", "--model-checkpoint",
               str(base_checkpoint), "--model-vitmatte-checkpoint", str(checkpoint), "--model-coarse-model-type",
               "mattingbase", "--model-trimap-band", "3", "--model-trimap-low", "0.1", "--model-trimap-high", "0.9"]
    main([*options, "--src", str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png"), "--output-dir",
          str(tmp_path / "out"), "--output-types", "pha", "trimap", "bgr", "--clamp-known"])
    src, bgr = read_image(pairs / "src/0000.png"), read_image(pairs / "bgr/0000.png")
    coarse = Predictor("mattingbase", "mobilenetv2", checkpoint=str(base_checkpoint))(src, bgr=bgr)
    expected = cascade_trimap(coarse["pha"], band=3, low=0.1, high=0.9)
    written = read_grey(tmp_path / "out/trimap/0000.png")
    np.testing.assert_array_equal(written, expected)
    pha = read_grey(tmp_path / "out/pha/0000.png")
    assert (pha[expected == 0] == 0).all() and (pha[expected == 255] == 255).all()
    np.testing.assert_array_equal(read_image(tmp_path / "out/bgr/0000.png"), bgr)


def test_bgr_output_is_the_aligned_or_estimated_plate(pairs, base_checkpoint, tmp_path):
    model = ["--model-type", "mattingbase", "--model-backbone", "mobilenetv2", "--model-checkpoint",
             str(base_checkpoint)]
    shifted = np.roll(read_image(pairs / "bgr/0000.png"), 3, axis=1)
    write_image(tmp_path / "shifted.png", shifted)
    main([*model, "--src", str(pairs / "src/0000.png"), "--bgr", str(tmp_path / "shifted.png"),
          "--preprocess-alignment", "--output-dir", str(tmp_path / "aligned"), "--output-types", "bgr"])
    aligned = read_image(tmp_path / "aligned/bgr/0000.png")
    assert aligned.shape == (*SIZE, 3) and not np.array_equal(aligned, shifted)
    small = tmp_path / "small.png"
    write_image(small, read_image(pairs / "bgr/0000.png")[::2, ::2])
    main([*model, "--src", str(pairs / "src/0000.png"), "--bgr", str(small), "--bgr-resize", "--output-dir",
          str(tmp_path / "resized"), "--output-types", "bgr", "pha"])
    assert read_image(tmp_path / "resized/bgr/0000.png").shape == (*SIZE, 3)
    main([*model, "--src", str(pairs / "src"), "--bgr", "auto", "--output-dir", str(tmp_path / "auto"),
          "--output-types", "bgr"])
    np.testing.assert_array_equal(read_image(tmp_path / "auto/bgr/0001.png"), read_image(tmp_path / "auto/plate.png"))


def test_refusals(pairs, base_checkpoint, checkpoint, capsys, tmp_path):
    plate = ["--model-type", "mattingbase", "--model-backbone", "mobilenetv2", "--model-checkpoint",
             str(base_checkpoint), "--src", str(pairs / "src/0000.png"), "--bgr", str(pairs / "bgr/0000.png")]
    out = tmp_path / "out"
    line = predict_error_line(capsys, [*plate, "--output-dir", out, "--output-types", "trimap"], out)
    assert "needs a trimap" in line
    line = predict_error_line(capsys, [*plate, "--output-dir", out, "--output-types", "pha", "--clamp-known"], out)
    assert "--clamp-known needs a trimap" in line
    image, trimap = photo_and_trimap()
    write_image(tmp_path / "photo.png", image)
    write_image(tmp_path / "trimap.png", trimap)
    line = predict_error_line(capsys, ["--model-type", "vitmatte", "--model-checkpoint", checkpoint, "--src",
                                       tmp_path / "photo.png", "--trimap", tmp_path / "trimap.png", "--output-dir",
                                       out, "--output-types", "bgr"], out)
    assert "--output-types bgr is the clean plate" in line

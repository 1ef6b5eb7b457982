"""ViTMatte behind Predictor / predict.py / eval.py: checkpoint → architecture, HF-exact processing, tiled options,
trimaps from masks, and one-line errors for bad trimap inputs."""
import json

import cv2
import numpy as np
import paddle
import pytest

from bgmatting.data.io import read_alpha, write_image
from bgmatting.data.synthetic import make_comp1k
from bgmatting.data.trimap_inputs import trimap_from_mask
from bgmatting.engine.predictor import Predictor
from bgmatting.errors import UserError
from bgmatting.models import ViTMatte
from bgmatting.models.vitmatte_processing import predict_alpha
from tests.conftest import predict_error_line
from tools.predict import main as predict_main

# window attention in block 0 (window 4), global attention + residual block in 1; the relative tables of the
# global block (img_size 128 → 15 rows) are longer than the window's (7 rows), so the converter can tell them apart
TINY = dict(size="small", backbone=dict(embed_dim=32, num_heads=2, depth=2, window_size=4, window_block_indexes=(0,),
                                        residual_block_indexes=(1,), img_size=128),
            convstream_out=(8, 16, 16), fusion_out=(16, 16, 8, 8))
SIZE = (45, 61)  # (H, W): padded to 64 x 64 inside


def tiny_vitmatte(seed=0):
    """A randomly initialised tiny ViTMatte with non-trivial BatchNorm statistics, in eval mode."""
    paddle.seed(seed)
    model = ViTMatte(**TINY)
    rng = np.random.default_rng(seed)
    state = {k: (rng.uniform(0.5, 1.5, v.shape) if k.endswith("_variance") else rng.normal(0, 0.1, v.shape)
                 if k.endswith("_mean") else v.numpy()).astype(np.float32) for k, v in model.state_dict().items()}
    model.set_state_dict(state)
    model.eval()
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("vitmatte") / "tiny_vitmatte.pdparams"
    paddle.save(tiny_vitmatte().state_dict(), str(path))
    return path


def photo_and_trimap(seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3)).astype(np.uint8)
    trimap = np.zeros(size, np.uint8)
    trimap[10:35, 15:50] = 128
    trimap[18:28, 25:40] = 255
    return image, trimap


def test_predictor_reads_the_architecture_off_the_checkpoint_and_matches_hf_processing(checkpoint):
    image, trimap = photo_and_trimap()
    out = Predictor("vitmatte", checkpoint=str(checkpoint))(image, trimap=trimap)
    expected = predict_alpha(tiny_vitmatte(), image, trimap)  # HF processing + the same weights
    assert out["pha"].shape == SIZE and out["fgr"].shape == (*SIZE, 3)
    np.testing.assert_allclose(out["pha"], expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(out["fgr"], image.astype(np.float32) / 255.0)  # no foreground: the photo
    assert not out["err"].any() and not out["ref"].any()
    assert out["pha"].std() > 1e-3  # random weights still give an image-dependent alpha


def test_memory_bounded_options_give_the_same_alpha(checkpoint):
    image, trimap = photo_and_trimap(1, (70, 100))
    plain = Predictor("vitmatte", checkpoint=str(checkpoint))(image, trimap=trimap)["pha"]
    bounded = Predictor("vitmatte", checkpoint=str(checkpoint), attention_chunk_size=7, decoder_tile_size=32,
                        decoder_tile_overlap=64)
    assert bounded.runner.model.decoder_tile_size == 32
    assert bounded.runner.model.backbone.blocks[1].attn.chunk_size == 7
    np.testing.assert_allclose(bounded(image, trimap=trimap)["pha"], plain, atol=1e-4, rtol=0)


def test_predictor_errors():
    image, trimap = photo_and_trimap()
    model = tiny_vitmatte()
    with pytest.raises(UserError, match="needs a trimap"):
        Predictor("vitmatte", model=model)(image)
    with pytest.raises(UserError, match="but the trimap is 60x45"):
        Predictor("vitmatte", model=model)(image, trimap=trimap[:, :60])
    with pytest.raises(UserError, match=r"decoder tile size \(40\) must be a positive multiple of 16"):
        Predictor("vitmatte", vitmatte_config=TINY, decoder_tile_size=40)
    with pytest.raises(UserError, match="attention chunk size must be >= 1"):
        Predictor("vitmatte", vitmatte_config=TINY, attention_chunk_size=0)
    with pytest.raises(UserError, match="takes no option decoder_tile_size"):
        Predictor("mattingbase", "mobilenetv2", decoder_tile_size=32)


def test_a_bgmv2_checkpoint_is_refused(tmp_path):
    from bgmatting.models import MattingBase

    path = tmp_path / "base.pdparams"
    paddle.save(MattingBase("mobilenetv2").state_dict(), str(path))
    with pytest.raises(UserError, match="not a ViTMatte checkpoint"):
        Predictor("vitmatte", checkpoint=str(path))


def test_trimap_from_mask_marks_a_band_around_the_edges():
    mask = np.zeros((60, 60), np.uint8)
    mask[20:40, 20:40] = 255
    trimap = trimap_from_mask(mask, width=3)
    assert set(np.unique(trimap)) == {0, 128, 255}
    inside, outside = np.zeros_like(mask, bool), np.ones_like(mask, bool)
    inside[24:36, 24:36] = True  # more than 3 px from the edge
    outside[16:44, 16:44] = False
    assert (trimap[inside] == 255).all() and (trimap[outside] == 0).all()
    assert (trimap[19:21, 20:40] == 128).all() and (trimap[20:40, 38:42] == 128).all()  # both sides of the edge
    soft = mask.copy()
    soft[0:5, 0:5] = 100  # a soft pixel far from the edge is unknown too
    assert (trimap_from_mask(soft, width=0)[0:5, 0:5] == 128).all()


# ---------------------------------------------------------------------------------------------------- CLI


def _files(tmp_path, count=2):
    for index in range(count):
        image, trimap = photo_and_trimap(index)
        write_image(tmp_path / "src" / f"{index:02d}.png", image)
        write_image(tmp_path / "trimap" / f"{index:02d}.png", trimap)
        mask = (trimap > 0).astype(np.uint8) * 255
        write_image(tmp_path / "mask" / f"{index:02d}.png", mask)
    return tmp_path


def _cli(checkpoint, tmp_path, *args, out="out"):
    return ["--model-type", "vitmatte", "--model-checkpoint", str(checkpoint), "--output-dir", str(tmp_path / out),
            *map(str, args)]


def test_cli_with_trimap_folders(checkpoint, tmp_path):
    files = _files(tmp_path)
    predict_main(_cli(checkpoint, tmp_path, "--src", files / "src", "--trimap", files / "trimap", "--output-types",
                      "pha", "com"))
    predictor = Predictor("vitmatte", checkpoint=str(checkpoint))
    for index in range(2):
        image, trimap = photo_and_trimap(index)
        expected = predictor(image, trimap=trimap)["pha"]
        saved = read_alpha(tmp_path / "out" / "pha" / f"{index:02d}.png")
        assert np.abs(saved - expected).max() <= 0.5 / 255 + 1e-6
        rgba = cv2.imread(str(tmp_path / "out" / "com" / f"{index:02d}.png"), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (*SIZE, 4)


def test_cli_with_a_mask_equals_the_trimap_built_from_it(checkpoint, tmp_path):
    files = _files(tmp_path, 1)
    predict_main(_cli(checkpoint, tmp_path, "--src", files / "src/00.png", "--mask", files / "mask/00.png",
                      "--mask-width", 4, "--output-types", "pha"))
    image, trimap = photo_and_trimap(0)
    mask = (trimap > 0).astype(np.uint8) * 255
    expected = Predictor("vitmatte", checkpoint=str(checkpoint))(image, trimap=trimap_from_mask(mask, 4))["pha"]
    saved = read_alpha(tmp_path / "out" / "pha" / "00.png")
    assert np.abs(saved - expected).max() <= 0.5 / 255 + 1e-6


def _error(capsys, argv, tmp_path):
    return predict_error_line(capsys, argv, tmp_path / "out")


def test_cli_bad_inputs(checkpoint, tmp_path, capsys):
    files = _files(tmp_path)
    src = files / "src/00.png"
    base = ["--output-types", "pha"]
    cases = [
        ((), "needs exactly one of --trimap TRIMAP and --mask MASK"),
        (("--trimap", files / "trimap/00.png", "--mask", files / "mask/00.png"), "needs exactly one of"),
        (("--trimap", files / "trimap/00.png", "--bgr", src), "--bgr, --bgr-resize and --preprocess-alignment"),
        (("--trimap", tmp_path / "missing.png"), "--trimap: not found"),
        (("--trimap", files / "trimap"), "--src is one image but --trimap is a folder"),
        (("--mask", files / "mask/00.png", "--mask-width", -1), "--mask-width must be >= 0"),
    ]
    for extra, message in cases:
        assert message in _error(capsys, _cli(checkpoint, tmp_path, "--src", src, *base, *extra), tmp_path), extra

    assert "err and ref come from BackgroundMattingV2" in _error(
        capsys, _cli(checkpoint, tmp_path, "--src", src, "--trimap", files / "trimap/00.png", "--output-types", "err"),
        tmp_path)

    small = tmp_path / "small.png"
    write_image(small, np.zeros((20, 30), np.uint8))
    line = _error(capsys, _cli(checkpoint, tmp_path, "--src", src, "--trimap", small, *base), tmp_path)
    assert "size mismatch for 00: --src is 61x45 but --trimap is 30x20" in line

    soft = tmp_path / "soft.png"
    write_image(soft, np.full(SIZE, 77, np.uint8))
    line = _error(capsys, _cli(checkpoint, tmp_path, "--src", src, "--trimap", soft, *base), tmp_path)
    assert "values other than 0/128/255" in line and "77" in line and "--mask" in line

    import paddle

    from bgmatting.models import MattingRefine

    plate_checkpoint = tmp_path / "refine.pdparams"  # the plate-model errors need a plate model's weights
    paddle.save(MattingRefine("mobilenetv2").state_dict(), str(plate_checkpoint))
    plate_argv = ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-checkpoint",
                  str(plate_checkpoint), "--output-dir", str(tmp_path / "out"), "--src", str(src), *base]
    assert "--trimap and --mask are for --model-type vitmatte" in _error(
        capsys, plate_argv + ["--bgr", str(src), "--trimap", str(files / "trimap/00.png")], tmp_path)
    assert "needs a clean plate: --bgr" in _error(capsys, plate_argv, tmp_path)
    cascade = ["--model-type", "bgmv2+vitmatte", *plate_argv[2:], "--bgr", str(src)]
    assert "--model-vitmatte-checkpoint" in _error(capsys, cascade, tmp_path)


def test_eval_comp1k_runs_vitmatte(checkpoint, tmp_path):
    from tools.eval import main as eval_main

    make_comp1k(tmp_path / "comp1k", n=2, size=(48, 56), seed=0, backgrounds_per_fg=1)
    argv = ["--layout", "comp1k", "--data", str(tmp_path / "comp1k"), "--model-type", "vitmatte",
            "--model-checkpoint", str(checkpoint), "--save-dir", str(tmp_path / "eval"), "--quiet", "--worst", "0"]
    result = eval_main(argv)
    assert [row["name"] for row in result.rows] == ["fg0_bg0", "fg1_bg1"]
    assert result.means["sad"] > 0 and result.means["grad"] > 0
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["model"]["type"] == "vitmatte" and report["model"]["checkpoint"] == str(checkpoint)
    assert report["model"]["decoder_tile_overlap"] == 64 and report["source"] == "comp1k"  # every resolved option
    clamped = eval_main(argv + ["--clamp-known", "--save-dir", str(tmp_path / "eval2")])
    assert clamped.means["sad"] == pytest.approx(result.means["sad"])  # clamping leaves the unknown band alone
    assert clamped.means["grad"] != pytest.approx(result.means["grad"])


def test_paddle_inference_backend_on_a_vitmatte_export(tmp_path):
    from bgmatting.engine.exporting import export_kind

    model = tiny_vitmatte()
    export_kind(model, "vitmatte", tmp_path / "export", {}, input_size=(64, 64))
    image, trimap = photo_and_trimap()  # 45 x 61, padded to the export's 64 x 64
    expected = Predictor("vitmatte", model=model)(image, trimap=trimap)["pha"]
    static = Predictor("vitmatte", checkpoint=str(tmp_path / "export"), backend="inference", cpu_threads=1)
    np.testing.assert_allclose(static(image, trimap=trimap)["pha"], expected, atol=1e-5, rtol=0)
    larger, larger_trimap = photo_and_trimap(size=(70, 61))
    with pytest.raises(UserError, match=r"must have shape \[None, 4, 64, 64\]"):
        static(larger, trimap=larger_trimap)

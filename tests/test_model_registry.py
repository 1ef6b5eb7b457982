"""Self-describing models (issue 11): every written model carries its settings, every tool reads them, and a new
backbone or kind is one registration."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch
import yaml

from bgmatting.data.io import read_alpha, write_image
from bgmatting.engine.kinds import get_kind
from bgmatting.engine.loading import load_model, resolve_settings
from bgmatting.engine.predictor import Predictor
from bgmatting.errors import UserError
from tests.bgmv2_reference import reference_model
from tests.conftest import run_script
from tests.vitmatte_reference import shared_reference

ROOT = Path(__file__).resolve().parents[1]
SIZE = (44, 60)  # (H, W)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A photo, its plate and a trimap on disk."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    plate = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    src = plate.copy()
    src[10:34, 15:45] = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    trimap = np.zeros(SIZE, np.uint8)
    trimap[8:36, 12:48] = 128
    trimap[14:30, 20:40] = 255
    for name, image in (("src", src), ("bgr", plate), ("trimap", trimap)):
        write_image(folder / f"{name}.png", image)
    return folder


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory):
    """An official-format MattingRefine MobileNetV2 .pth (random weights, kernel size 1: not the default)."""
    path = tmp_path_factory.mktemp("official") / "pytorch_mobilenetv2.pth"
    torch.save(reference_model("mattingrefine", "mobilenetv2", refine_kernel_size=1).state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def converted(official_pth, tmp_path_factory):
    """tools/convert_weights.py output: a model folder."""
    folder = tmp_path_factory.mktemp("converted") / "bgmv2_mobilenetv2"
    done = run_script("tools/convert_weights.py", "--src", official_pth, "--dst", folder)
    assert done.returncode == 0, done.stderr
    return folder


def predict_alpha(images, out, *model_flags, guide="bgr", backend=None):
    """predict.py on the fixture images with ``model_flags``; returns the alpha (float in [0, 1])."""
    extra = ["--backend", backend, "--cpu-threads", "1"] if backend else []
    done = run_script("predict.py", *model_flags, "--src", images / "src.png", f"--{guide}", images / f"{guide}.png",
                      "--output-dir", out, "--output-types", "pha", *extra)
    assert done.returncode == 0, done.stderr
    return read_alpha(next((Path(out) / "pha").iterdir()))


def test_convert_writes_a_card_and_predict_needs_no_model_flags(converted, official_pth, images, tmp_path):
    card = yaml.safe_load((converted / "model.yaml").read_text())
    assert card["kind"] == "mattingrefine" and card["backbone"] == "mobilenetv2"
    assert card["options"]["refine_kernel_size"] == 1 and card["weights"] == "model.pdparams"
    assert card["provenance"]["tool"] == "convert_weights" and card["provenance"]["source"] == str(official_pth)
    bare = predict_alpha(images, tmp_path / "a", "--model-checkpoint", converted)
    explicit = predict_alpha(images, tmp_path / "b", "--model-type", "mattingrefine", "--model-backbone",
                             "mobilenetv2", "--model-refine-kernel-size", "1", "--model-checkpoint", official_pth)
    np.testing.assert_array_equal(bare, explicit)


def test_convert_to_a_pdparams_file_writes_a_sidecar(official_pth, tmp_path):
    done = run_script("tools/convert_weights.py", "--src", official_pth, "--dst", tmp_path / "w" / "mbv2.pdparams")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "w" / "mbv2.yaml").read_text())["weights"] == "mbv2.pdparams"
    settings = resolve_settings(tmp_path / "w" / "mbv2.pdparams")
    assert settings.kind.name == "mattingrefine" and settings.source.card["provenance"]["tool"] == "convert_weights"


def test_flags_override_the_card_and_fixed_options_are_refused(converted):
    settings = resolve_settings(converted, refine_mode="full", backbone_scale=0.5)
    assert settings.options["refine_mode"] == "full" and settings.options["backbone_scale"] == 0.5
    assert settings.options["refine_kernel_size"] == 1  # from the card
    with pytest.raises(UserError, match="holds a mobilenetv2 model but --model-backbone is resnet50"):
        resolve_settings(converted, backbone="resnet50")
    with pytest.raises(UserError, match="holds refine kernel size 1 but --model-refine-kernel-size is 3"):
        resolve_settings(converted, refine_kernel_size=3)
    assert resolve_settings(converted, "mattingbase").kind.name == "mattingbase"  # the base of a refine model
    with pytest.raises(UserError, match="is not a ViTMatte checkpoint"):
        resolve_settings(converted, "vitmatte")


def test_hugging_face_folder_predicts_with_no_model_flags(images, tmp_path):
    reference = shared_reference("tiny", seed=3)
    reference.save_pretrained(str(tmp_path / "hf"), safe_serialization=True)
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "hf").iterdir()}
    bare = predict_alpha(images, tmp_path / "a", "--model-checkpoint", tmp_path / "hf", guide="trimap")
    explicit = predict_alpha(images, tmp_path / "b", "--model-type", "vitmatte", "--model-checkpoint",
                             tmp_path / "hf" / "model.safetensors", guide="trimap")
    np.testing.assert_array_equal(bare, explicit)
    model = load_model(tmp_path / "hf")
    assert model.settings.kind.name == "vitmatte" and model.settings.options["vitmatte_config"]["backbone"][
        "embed_dim"] == reference.config.backbone_config.hidden_size


@pytest.fixture(scope="module")
def exported(converted, tmp_path_factory):
    """tools/export.py of the converted folder with non-default refine options (sampling 2,000 px, threshold 0.2)."""
    folder = tmp_path_factory.mktemp("export") / "mbv2"
    done = run_script("tools/export.py", "--model-checkpoint", converted, "--model-refine-sample-pixels", "2000",
                      "--model-refine-threshold", "0.2", "--save-dir", folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_export_carries_its_settings_to_predict(exported, converted, images, tmp_path):
    card = yaml.safe_load((exported / "model.yaml").read_text())
    assert card["kind"] == "mattingrefine" and card["options"]["refine_sample_pixels"] == 2000
    assert card["provenance"]["tool"] == "export"
    assert json.loads((exported / "export.json").read_text())["options"]["refine_threshold"] == 0.2
    static = predict_alpha(images, tmp_path / "a", "--model-checkpoint", exported, backend="inference")
    dygraph = predict_alpha(images, tmp_path / "b", "--model-checkpoint", converted,
                            "--model-refine-sample-pixels", "2000")
    assert np.abs(static - dygraph).max() <= 1 / 255  # 8-bit PNGs


def test_a_baked_option_asked_otherwise_is_one_line_naming_both(exported, images, tmp_path):
    done = run_script("predict.py", "--model-checkpoint", exported, "--model-refine-sample-pixels", "320000",
                      "--backend", "inference", "--src", images / "src.png", "--bgr", images / "bgr.png",
                      "--output-dir", tmp_path / "o", "--output-types", "pha")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "2000" in line and "320000" in line, done.stderr
    assert "--model-refine-sample-pixels" in line and not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="refine threshold 0.2 but --model-refine-threshold 0.7"):
        Predictor.from_pretrained(exported, backend="onnx", refine_threshold=0.7)


def test_config_sets_the_options_of_a_bare_checkpoint(images, tmp_path):
    """--config FILE (a training config) gives predict the model section's options, as PaddleSeg's tools do."""
    from bgmatting.models import MattingRefine

    paddle.seed(1)
    paddle.save(MattingRefine("mobilenetv2").state_dict(), str(tmp_path / "bare.pdparams"))
    config = ROOT / "configs" / "bgmv2_refine_tiny.yaml"  # backbone_scale 0.5, 4096 sample pixels
    settings = resolve_settings(tmp_path / "bare.pdparams", config=config)
    assert settings.options["backbone_scale"] == 0.5 and settings.options["refine_sample_pixels"] == 4096
    with_config = predict_alpha(images, tmp_path / "a", "--model-checkpoint", tmp_path / "bare.pdparams",
                                "--config", config)
    explicit = predict_alpha(images, tmp_path / "b", "--model-checkpoint", tmp_path / "bare.pdparams",
                             "--model-backbone-scale", "0.5", "--model-refine-sample-pixels", "4096")
    np.testing.assert_array_equal(with_config, explicit)


def test_folder_without_a_model_names_what_it_looked_for(tmp_path):
    with pytest.raises(UserError, match="holds no model: looked for model.yaml, export.json, best_model/"):
        resolve_settings(tmp_path)
    with pytest.raises(UserError, match="checkpoint not found"):
        resolve_settings(tmp_path / "missing")


def test_load_model_api_works_from_another_directory(converted, tmp_path):
    code = ("import bgmatting, sys; m = bgmatting.load_model(sys.argv[1]); s = m.settings; "
            "print(type(m).__name__, s.kind.name, s.options['backbone'], s.options['refine_kernel_size']); "
            "p = bgmatting.Predictor.from_pretrained(sys.argv[1], refine_mode='full'); print(p.options['refine_mode'])")
    done = subprocess.run([sys.executable, "-c", code, str(converted)], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["MattingRefine", "mattingrefine", "mobilenetv2", "1", "full"]


def test_a_new_backbone_is_one_registration(tmp_path):
    """Register a tiny backbone here, then build → checkpoint with card → Predictor → export → static Predictor."""
    from bgmatting.engine.exporting import export_settings
    from bgmatting.engine.loading import settings_card
    from bgmatting.engine.model_writer import save_model
    from bgmatting.models.backbones import BACKBONES, register_backbone

    class TinyEncoder(paddle.nn.Layer):
        """(B, C, H, W) → features at 1/16, 1/8, 1/4, 1/2 and the input."""

        def __init__(self, in_channels):
            super().__init__()
            self.tiny_stem = paddle.nn.Conv2D(in_channels, 8, 3, stride=2, padding=1)
            self.downs = paddle.nn.LayerList([paddle.nn.Conv2D(8, 8, 3, stride=2, padding=1) for _ in range(3)])

        def forward(self, x):
            x1 = paddle.nn.functional.relu(self.tiny_stem(x))
            x2 = paddle.nn.functional.relu(self.downs[0](x1))
            x3 = paddle.nn.functional.relu(self.downs[1](x2))
            x4 = paddle.nn.functional.relu(self.downs[2](x3))
            return x4, x3, x2, x1, x

    register_backbone("tiny_test", lambda in_channels, pretrained: TinyEncoder(in_channels), (8, 8, 8, 8),
                      lambda keys: "backbone.tiny_stem.weight" in keys)
    try:
        paddle.seed(0)
        settings = resolve_settings(None, "mattingrefine", backbone="tiny_test", refine_sample_pixels=400)
        model = load_model(None, "mattingrefine", backbone="tiny_test", refine_sample_pixels=400)
        state = {k: v.numpy() for k, v in model.state_dict().items()}
        save_model(state, settings_card(settings, "model.pdparams", {"tool": "test"}), tmp_path / "tiny")
        src = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
        bgr = np.clip(src.astype(int) - 40, 0, 255).astype(np.uint8)
        predictor = Predictor.from_pretrained(tmp_path / "tiny")
        assert predictor.options["backbone"] == "tiny_test" and predictor.options["refine_sample_pixels"] == 400
        expected = predictor(src, bgr)["pha"]
        export_settings(resolve_settings(tmp_path / "tiny"), tmp_path / "export")
        static = Predictor.from_pretrained(tmp_path / "export", backend="inference", cpu_threads=1)
        assert static.options["backbone"] == "tiny_test"
        assert np.abs(static(src, bgr)["pha"] - expected).max() < 1e-4
    finally:
        BACKBONES.pop("tiny_test")


def test_every_kind_declares_what_the_tools_need():
    for name in ("mattingbase", "mattingrefine", "vitmatte", "bgmv2+vitmatte"):
        kind = get_kind(name)
        assert kind.guide in ("bgr", "trimap") and set(kind.fixed) <= set(kind.options)
        assert set(kind.flags) <= set(kind.options), name
    assert get_kind("vitmatte").predicts_foreground is False and get_kind("mattingbase").predicts_foreground
    with pytest.raises(UserError, match="unknown model type 'nope'; choose one of mattingrefine"):
        get_kind("nope")

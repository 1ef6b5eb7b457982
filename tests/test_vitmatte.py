"""ViTMatte: parity with Hugging Face ``VitMatteForImageMatting`` through both checkpoint layouts, the converter's
refusals, and the pre/post-processing against ``VitMatteImageProcessor``."""
import re

import numpy as np
import paddle
import pytest
import safetensors.torch
import torch
from transformers import VitMatteImageProcessor

from bgmatting.config import load_config
from bgmatting.convert import load_state_arrays
from bgmatting.convert.vitmatte import convert_vitmatte, infer_vitmatte_config, is_vitmatte_checkpoint
from bgmatting.errors import UserError
from bgmatting.models.vitmatte import MODEL_DEFAULTS, ViTMatte, build_vitmatte
from bgmatting.models.vitmatte_processing import postprocess, predict_alpha, preprocess
from tests.vitmatte_reference import SPECS, hf_state_arrays, reference_alpha, shared_reference

# Official (hustvl/ViTMatte, detectron2) names from HF names, written from the published mapping table of the HF
# port (see shared/reference/anchors.md §6.2), independently of bgmatting.convert.vitmatte.
_OFFICIAL_FROM_HF = (
    (r"^backbone\.embeddings\.position_embeddings$", "backbone.pos_embed"),
    (r"^backbone\.embeddings\.projection\.(weight|bias)$", r"backbone.patch_embed.proj.\1"),
    (r"^backbone\.encoder\.layer\.(\d+)\.attention\.(qkv|proj|rel_pos_h|rel_pos_w)", r"backbone.blocks.\1.attn.\2"),
    (r"^backbone\.encoder\.layer\.(\d+)\.", r"backbone.blocks.\1."),
    (r"^decoder\.convstream\.convs\.(\d+)\.batch_norm\.", r"decoder.convstream.convs.\1.bn."),
    (r"^decoder\.fusion_blocks\.(\d+)\.conv\.batch_norm\.", r"decoder.fusion_blks.\1.conv.bn."),
    (r"^decoder\.fusion_blocks\.(\d+)\.conv\.conv\.", r"decoder.fusion_blks.\1.conv.conv."),
)


def official_layout(hf_state: dict) -> dict:
    """HF state dict renamed to the official checkpoint's key names (values untouched)."""
    out = {}
    for key, value in hf_state.items():
        for pattern, replacement in _OFFICIAL_FROM_HF:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def sample(height, width, seed=0):
    """A random RGB image and a trimap with all three classes."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(height, width))
    return image, trimap


def paddle_model(state):
    model = ViTMatte(**infer_vitmatte_config(state))
    missing, unexpected = model.set_state_dict(state)
    assert not missing and not unexpected
    model.eval()
    return model


def run_paddle(model, pixel_values):
    with paddle.no_grad():
        return model(paddle.to_tensor(pixel_values)).numpy()


@pytest.mark.parametrize("name", list(SPECS))
def test_parity_with_hf_at_size_needing_padding(name):
    reference = shared_reference(name)
    image, trimap = sample(70, 100)  # padded to 96 x 128: 6 x 8 tokens, windows padded, rel tables resized
    pixel_values, size = preprocess(image, trimap)
    assert pixel_values.shape == (1, 4, 96, 128)
    expected = reference_alpha(reference, pixel_values)
    state, info = convert_vitmatte(hf_state_arrays(reference))
    assert info["model_type"] == "vitmatte"
    got = run_paddle(paddle_model(state), pixel_values)
    assert np.abs(got - expected).max() <= 1e-4
    # the comparison means something only if alpha varies and is not saturated
    assert expected.max() - expected.min() > 0.1 and 0.01 < expected.min() and expected.max() < 0.99
    assert postprocess(got, size).shape == (1, 70, 100)


def test_parity_tolerance_catches_a_small_weight_error():
    reference = shared_reference("tiny")
    pixel_values, _ = preprocess(*sample(70, 100))
    expected = reference_alpha(reference, pixel_values)
    state, _ = convert_vitmatte(hf_state_arrays(reference))
    for key in ("backbone.blocks.3.attn.rel_pos_h", "backbone.pos_embed", "decoder.convstream.convs.0.bn._mean"):
        wrong = dict(state, **{key: state[key] * 0.9})
        assert np.abs(run_paddle(paddle_model(wrong), pixel_values) - expected).max() > 1e-3, key


def test_vitmatte_s_preset_matches_official_architecture():
    reference = shared_reference("vitmatte-s")
    state, info = convert_vitmatte(hf_state_arrays(reference))
    config = infer_vitmatte_config(state)
    assert info["size"] == "small" and config["backbone"]["num_heads"] == 6
    assert config["backbone"]["window_block_indexes"] == (0, 1, 3, 4, 6, 7, 9, 10)
    assert config["backbone"]["residual_block_indexes"] == (2, 5, 8, 11)
    assert config["backbone"]["window_size"] == 14 and config["backbone"]["img_size"] == 512
    # the default-constructed ViTMatte-S has exactly the checkpoint's tensors
    preset = {k: tuple(v.shape) for k, v in ViTMatte("small").state_dict().items()}
    assert preset == {k: v.shape for k, v in state.items()}
    assert 25.0e6 < info["parameters"] < 26.5e6


def test_official_pth_and_hf_safetensors_files_give_the_same_model(tmp_path):
    reference = shared_reference("tiny", seed=1)
    hf_state = {k: v.clone() for k, v in reference.state_dict().items()}
    safetensors.torch.save_file(hf_state, str(tmp_path / "model.safetensors"))
    official = {k: torch.from_numpy(v) for k, v in official_layout(hf_state_arrays(reference)).items()}
    torch.save({"model": official, "iteration": 10}, str(tmp_path / "ViTMatte_T.pth"))

    from_hf, _ = convert_vitmatte(load_state_arrays(tmp_path / "model.safetensors"))
    from_official, _ = convert_vitmatte(load_state_arrays(tmp_path / "ViTMatte_T.pth"))
    assert from_hf.keys() == from_official.keys()
    assert all(np.array_equal(from_hf[k], from_official[k]) for k in from_hf)

    pixel_values, _ = preprocess(*sample(40, 72, seed=2))
    expected = reference_alpha(reference, pixel_values)
    assert np.abs(run_paddle(paddle_model(from_official), pixel_values) - expected).max() <= 1e-4


def test_linear_weights_transposed_rel_pos_tables_not():
    reference = shared_reference("tiny")
    hf = hf_state_arrays(reference)
    state, _ = convert_vitmatte(hf)
    qkv = hf["backbone.encoder.layer.1.attention.qkv.weight"]  # torch [out, in] = [192, 64]
    np.testing.assert_array_equal(state["backbone.blocks.1.attn.qkv.weight"], qkv.T)
    fc1 = hf["backbone.encoder.layer.0.mlp.fc1.weight"]
    np.testing.assert_array_equal(state["backbone.blocks.0.mlp.fc1.weight"], fc1.T)
    # rel_pos tables are (2*size-1, head_dim) in both frameworks
    table = hf["backbone.encoder.layer.1.attention.rel_pos_h"]
    np.testing.assert_array_equal(state["backbone.blocks.1.attn.rel_pos_h"], table)
    # conv weights keep their layout, BatchNorm statistics are renamed
    np.testing.assert_array_equal(state["decoder.fusion_blks.0.conv.conv.weight"],
                                  hf["decoder.fusion_blocks.0.conv.conv.weight"])
    np.testing.assert_array_equal(state["decoder.convstream.convs.0.bn._variance"],
                                  hf["decoder.convstream.convs.0.batch_norm.running_var"])
    assert not any("num_batches_tracked" in k or "running_" in k for k in state)


@pytest.fixture(scope="module")
def tiny_hf_state():
    return hf_state_arrays(shared_reference("tiny"))


def test_converter_refuses_missing_key(tiny_hf_state):
    state = dict(tiny_hf_state)
    del state["backbone.encoder.layer.2.mlp.fc2.bias"]
    with pytest.raises(UserError, match=r"missing keys: backbone\.blocks\.2\.mlp\.fc2\.bias"):
        convert_vitmatte(state)


def test_converter_refuses_unexpected_key(tiny_hf_state):
    state = dict(tiny_hf_state, **{"decoder.extra_head.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(UserError, match=r"unexpected keys: decoder\.extra_head\.weight"):
        convert_vitmatte(state)


def test_converter_refuses_shape_mismatch(tiny_hf_state):
    state = dict(tiny_hf_state)
    state["decoder.matting_head.matting_convs.0.weight"] = np.zeros((16, 7, 3, 3), np.float32)
    with pytest.raises(UserError, match=r"shape mismatches: decoder\.matting_head\.matting_convs\.0\.weight"):
        convert_vitmatte(state)


def test_converter_refuses_other_models():
    bgmv2_like = {"backbone.conv1.weight": np.zeros((64, 6, 7, 7), np.float32)}
    assert not is_vitmatte_checkpoint(bgmv2_like)
    with pytest.raises(UserError, match="not a ViTMatte checkpoint"):
        convert_vitmatte(bgmv2_like)


@pytest.mark.parametrize("height,width", [(70, 100), (64, 96), (33, 31)])
def test_preprocess_matches_hf_processor(height, width):
    image, trimap = sample(height, width, seed=height)
    expected = VitMatteImageProcessor()(images=image, trimaps=trimap, return_tensors="np")["pixel_values"]
    got, size = preprocess(image, trimap)
    assert size == (height, width)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_preprocess_batch_matches_hf_processor():
    pairs = [sample(50, 40, seed=s) for s in (1, 2)]
    images, trimaps = [p[0] for p in pairs], [p[1] for p in pairs]
    expected = VitMatteImageProcessor()(images=images, trimaps=trimaps, return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(preprocess(images, trimaps)[0], expected, atol=1e-6, rtol=0)


def test_postprocess_crops_padding():
    alphas = np.arange(2 * 64 * 96, dtype=np.float32).reshape(2, 1, 64, 96)
    out = postprocess(alphas, (50, 70))
    assert out.shape == (2, 50, 70)
    np.testing.assert_array_equal(out[1], alphas[1, 0, :50, :70])


@pytest.mark.parametrize(
    "image,trimap,message",
    [
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "must be \\(H, W, 3\\) RGB"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "must be \\(H, W\\) grey"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.uint8), "size mismatch"),
        ([np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8), np.uint8)], "2 images but 1 trimaps"),
    ],
)
def test_preprocess_rejects_bad_input(image, trimap, message):
    with pytest.raises(UserError, match=message):
        preprocess(image, trimap)


def test_model_rejects_unpadded_input():
    model = ViTMatte(**infer_vitmatte_config(convert_vitmatte(hf_state_arrays(shared_reference("tiny")))[0]))
    with pytest.raises(ValueError, match="multiples of 16"):
        model(paddle.zeros([1, 4, 70, 100]))
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        model(paddle.zeros([1, 3, 64, 64]))


def test_predict_alpha_returns_input_size_in_unit_range():
    reference = shared_reference("tiny", seed=3)
    model = paddle_model(convert_vitmatte(hf_state_arrays(reference))[0])
    image, trimap = sample(45, 61, seed=4)
    alpha = predict_alpha(model, image, trimap)
    assert alpha.shape == (45, 61) and alpha.min() >= 0.0 and alpha.max() <= 1.0
    expected = reference_alpha(reference, preprocess(image, trimap)[0])[0, 0, :45, :61]
    assert np.abs(alpha - expected).max() <= 1e-4


@pytest.mark.parametrize(
    "name,embed_dim,chunk,tile",
    [("vitmatte_s", 384, None, None), ("vitmatte_b", 768, None, None), ("vitmatte_s_4k", 384, 1024, 512),
     ("vitmatte_b_4k", 768, 1024, 512)],
)
def test_configs_build_the_presets(name, embed_dim, chunk, tile):
    config = load_config(f"configs/vitmatte/{name}.yaml", None, {"model": MODEL_DEFAULTS})
    with paddle.LazyGuard():
        model = build_vitmatte(config["model"])
    assert model.backbone.pos_embed.shape == [1, 197, embed_dim]
    assert len(model.backbone.blocks) == 12 and model.backbone.blocks[2].residual is not None
    assert [b.window_size for b in model.backbone.blocks] == [14, 14, 0] * 4
    assert model.backbone.blocks[0].attn.chunk_size == chunk and model.decoder_tile_size == tile


def test_config_rejects_misspelt_option():
    with pytest.raises(UserError, match="attention_chunk"):
        load_config("configs/vitmatte/vitmatte_s.yaml", ["model.attention_chunk=64"], {"model": MODEL_DEFAULTS})
    with pytest.raises(ValueError, match="not ViTMatte"):
        build_vitmatte(dict(MODEL_DEFAULTS, type="MattingBase"))


def test_converted_pdparams_reloads_unchanged(tmp_path):
    from bgmatting.convert import save_state

    state, _ = convert_vitmatte(hf_state_arrays(shared_reference("tiny")))
    save_state(state, tmp_path / "vitmatte.pdparams")
    again, info = convert_vitmatte(load_state_arrays(tmp_path / "vitmatte.pdparams"))
    assert again.keys() == state.keys() and info["model_type"] == "vitmatte"
    assert all(np.array_equal(again[k], state[k]) for k in state)

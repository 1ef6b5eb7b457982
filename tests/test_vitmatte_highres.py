"""High resolution on bounded memory: query-chunked attention and the tiled decoder give the plain result."""
import numpy as np
import paddle
import pytest

from bgmatting.convert.vitmatte import convert_vitmatte
from bgmatting.models.backbones.vit import Attention
from bgmatting.models.vitmatte.profile import measure_vitmatte_in_subprocess
from bgmatting.models.vitmatte.tiling import decode_tiled
from bgmatting.models.vitmatte_processing import preprocess
from tests.test_vitmatte import paddle_model, run_paddle, sample
from tests.vitmatte_reference import hf_state_arrays, shared_reference


@pytest.fixture(scope="module")
def tiny_model():
    return paddle_model(convert_vitmatte(hf_state_arrays(shared_reference("tiny")))[0])


@pytest.fixture(scope="module")
def pixel_values():
    return preprocess(*sample(150, 220, seed=5))[0]  # padded to 160 x 224


@pytest.mark.parametrize("chunk", [1, 5, 16, 62])
def test_chunked_attention_equals_full_attention(chunk):
    paddle.seed(0)
    attn = Attention(32, num_heads=2, use_rel_pos=True, input_size=(4, 4))  # tables resized to the 7 x 9 grid
    for param in attn.parameters():  # qkv, proj and both relative tables
        param.set_value(0.3 * paddle.randn(param.shape))
    x = paddle.randn([2, 7, 9, 32])
    with paddle.no_grad():
        full = attn(x).numpy()
        attn.chunk_size = chunk
        chunked = attn(x).numpy()
    assert np.abs(chunked - full).max() <= 1e-5
    assert np.abs(full).max() > 0.1


def test_chunked_attention_in_the_model(tiny_model, pixel_values):
    plain = run_paddle(tiny_model, pixel_values)
    tiny_model.set_memory_options(attention_chunk_size=5)  # windows (9 tokens) and global (140 tokens) chunked
    try:
        chunked = run_paddle(tiny_model, pixel_values)
    finally:
        tiny_model.set_memory_options()
    assert np.abs(chunked - plain).max() <= 1e-5


@pytest.mark.parametrize("overlap", [32, 64])
def test_tiled_decoder_does_not_depend_on_tile_size(tiny_model, pixel_values, overlap):
    plain = run_paddle(tiny_model, pixel_values)
    results = []
    for tile in (32, 48, 112):
        tiny_model.set_memory_options(decoder_tile_size=tile, decoder_tile_overlap=overlap)
        results.append(run_paddle(tiny_model, pixel_values))
    tiny_model.set_memory_options()
    for tiled in results:
        assert tiled.shape == plain.shape
        assert np.abs(tiled - plain).max() <= 1e-5


def test_tiles_without_enough_overlap_differ(tiny_model, pixel_values):
    """The equality above is not vacuous: a 16-px margin lets the crop borders leak into the kept centres."""
    plain = run_paddle(tiny_model, pixel_values)
    tiny_model.set_memory_options(decoder_tile_size=32, decoder_tile_overlap=16)
    try:
        assert np.abs(run_paddle(tiny_model, pixel_values) - plain).max() > 1e-3
    finally:
        tiny_model.set_memory_options()


@pytest.mark.parametrize("tile,overlap", [(40, 64), (64, 30), (0, 64), (64, -16)])
def test_tiled_decoder_rejects_misaligned_tiles(tiny_model, tile, overlap):
    features = paddle.zeros([1, 64, 4, 4])
    images = paddle.zeros([1, 4, 64, 64])
    with pytest.raises(ValueError, match="multiple of 16"):
        decode_tiled(tiny_model.decoder, features, images, tile, overlap)


@pytest.mark.filterwarnings("ignore:When training")
def test_training_mode_ignores_tiling(tiny_model, pixel_values):
    """BatchNorm uses batch statistics in training, so tiles would not be exact: the plain decoder is used."""
    tiny_model.set_memory_options(decoder_tile_size=32)
    tiny_model.train()
    try:
        x = paddle.to_tensor(pixel_values)
        tiled_request = tiny_model(x).numpy()
        tiny_model.set_memory_options()
        plain = tiny_model(x).numpy()
    finally:
        tiny_model.eval()
        tiny_model.set_memory_options()
    np.testing.assert_allclose(tiled_request, plain, atol=1e-6)


def test_measure_in_a_fresh_process_reports_time_and_peak_memory():
    result = measure_vitmatte_in_subprocess(size="small", height=50, width=90, attention_chunk_size=8,
                                            decoder_tile_size=32, depth=2)
    assert (result["height"], result["width"], result["tokens"]) == (50, 90, 4 * 6)  # padded to 64 x 96
    assert result["seconds"] > 0 and result["peak_rss_mb"] > 100  # importing Paddle alone takes ~300 MB

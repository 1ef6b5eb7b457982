"""The ``vitmatte`` kind: trimap matting with ViTMatte.

The image and trimap go through :mod:`bgmatting.models.vitmatte_processing` (Hugging Face's
``VitMatteImageProcessor``: normalise, trimap as 4th channel, zero-pad to 32, crop back) and
:class:`bgmatting.models.ViTMatte`. Its architecture (``vitmatte_config``: size, ViT arguments, decoder widths) is
read off the weights (:func:`bgmatting.convert.vitmatte.infer_vitmatte_config`), so ViTMatte-S, -B and small test
models load alike; the memory options (chunked attention, tiled decoder) change nothing in the result.
"""
import numpy as np

from bgmatting.engine.kinds.registry import ExportSignature, ModelKind, register_kind
from bgmatting.errors import UserError

#: options of ``vitmatte`` and their defaults
VITMATTE_OPTIONS = {
    "vitmatte_config": None,  # ViTMatte keyword arguments (size, backbone, convstream_out, fusion_out); None: -S
    "attention_chunk_size": None,  # query-chunked global attention (bounded memory, same result)
    "decoder_tile_size": None,  # tiled decoder (bounded memory, same result with overlap >= 64)
    "decoder_tile_overlap": 64,
}
VITMATTE_FLAGS = {
    "attention_chunk_size": (int, None, "vitmatte: global attention in slices of this many query tokens (bounded "
                                        "memory, same result; 1024 runs ViTMatte-S at 3840x2160)"),
    "decoder_tile_size": (int, None, "vitmatte: decode in tiles of this side (multiple of 16; bounded memory, "
                                     "same result)"),
    "decoder_tile_overlap": (int, None, "vitmatte: margin decoded around each tile (multiple of 16; 64 = exact)"),
}


def numpy_array(value) -> np.ndarray:
    """A Paddle tensor or a numpy array as a numpy array."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def build_vitmatte(options: dict):
    """ViTMatte from ``options["vitmatte_config"]`` (None: ViTMatte-S) with its memory options checked."""
    from bgmatting.models import ViTMatte

    config = options["vitmatte_config"] or {"size": "small"}
    try:
        model = ViTMatte(**config)
    except (TypeError, ValueError) as e:
        raise UserError(f"cannot build ViTMatte from {config}: {e}") from None
    chunk, tile, overlap = (options[k] for k in ("attention_chunk_size", "decoder_tile_size", "decoder_tile_overlap"))
    stride = model.size_divisor
    if chunk is not None and chunk < 1:
        raise UserError(f"attention chunk size must be >= 1 query token, got {chunk}")
    if tile is not None and (tile <= 0 or tile % stride or overlap < 0 or overlap % stride):
        raise UserError(f"decoder tile size ({tile}) must be a positive multiple of {stride} and the tile overlap "
                        f"({overlap}) a non-negative multiple of {stride}")
    model.set_memory_options(chunk, tile, overlap)
    return model


ARCHITECTURE_KEYS = ("size", "backbone", "convstream_out", "fusion_out")


def options_from_training(model_cfg: dict) -> dict:
    """A ViTMatte training config's ``model`` section → the kind's options (architecture in ``vitmatte_config``)."""
    options = {k: model_cfg[k] for k in VITMATTE_OPTIONS if k in model_cfg}
    options["vitmatte_config"] = {k: model_cfg[k] for k in ARCHITECTURE_KEYS if k in model_cfg}
    return options


def recognise_vitmatte(arrays: dict):
    """``{"vitmatte_config": architecture}`` of ViTMatte weights (official, HF or ours), None for others."""
    from bgmatting.convert.vitmatte import convert_vitmatte, infer_vitmatte_config, is_vitmatte_checkpoint

    if not is_vitmatte_checkpoint(arrays):
        return None
    return {"vitmatte_config": infer_vitmatte_config(convert_vitmatte(arrays)[0])}


def read_vitmatte(arrays: dict, options: dict, extra: dict = None) -> dict:
    """Official / Hugging Face / our arrays → our names (checked by the converter against the architecture)."""
    from bgmatting.convert.vitmatte import convert_vitmatte

    return convert_vitmatte(arrays)[0]


def load_vitmatte(model, state: dict, options: dict) -> None:
    """Check ``state`` against the model's names and shapes, then load it."""
    from bgmatting.convert.bgmv2 import check_against_model

    check_against_model(state, {k: v.shape for k, v in model.state_dict().items()}, "vitmatte")
    model.set_state_dict(state)


def vitmatte_alpha(model, src, trimap) -> np.ndarray:
    """ViTMatte's alpha for one image.

    Args:
        model: a ViTMatte (or a static runtime called like one) taking (1, 4, H', W') pixel values.
        src: (1, 3, H, W) RGB in [0, 1] (tensor or array); trimap: (1, 1, H, W) in [0, 1] (0, 128/255, 1).
    Returns:
        (H, W) float32 alpha in [0, 1].
    """
    import paddle

    from bgmatting.models.vitmatte_processing import normalize_and_pad, postprocess

    image = numpy_array(src)
    pixel_values = normalize_and_pad(image.transpose(0, 2, 3, 1), numpy_array(trimap)[:, 0])
    return postprocess(model(paddle.to_tensor(pixel_values)), image.shape[2:])[0]


def run_vitmatte(model, src, trimap) -> dict:
    """ViTMatte on one image → pha; ``fgr`` is the photo (no foreground prediction), ``err`` zeros."""
    pha = vitmatte_alpha(model, src, trimap)
    fgr = numpy_array(src)[0].transpose(1, 2, 0)
    return dict(pha=pha, fgr=fgr, err=np.zeros_like(pha), ref=None)


VITMATTE = register_kind(ModelKind(
    name="vitmatte", guide="trimap", options=VITMATTE_OPTIONS, build=build_vitmatte, recognise=recognise_vitmatte,
    read=read_vitmatte, load=load_vitmatte, run=run_vitmatte, fixed=("vitmatte_config",),
    baked=("vitmatte_config",), pad_multiple=1,  # pads inside ``run``, after normalisation, as the HF processor
    export=ExportSignature(("pixel_values",), (4,), ("alpha",),
                           {"inputs": "RGB normalised with mean = std = 0.5, trimap / 255 as 4th channel, NCHW",
                            "mean": 0.5, "std": 0.5, "pad_multiple": 32, "pad_mode": "zeros, bottom/right"},
                           fixed_size=True),
    predicts_foreground=False, training_type="ViTMatte", flags=VITMATTE_FLAGS,
    training_options=options_from_training))

"""The trimap model types of :class:`bgmatting.engine.predictor.Predictor`: ``vitmatte`` and the cascade
``bgmv2+vitmatte``.

- ``vitmatte``: the image and a trimap go through :mod:`bgmatting.models.vitmatte_processing` (Hugging Face's
  ``VitMatteImageProcessor``: normalise, trimap as 4th channel, zero-pad to 32, crop back) and
  :class:`bgmatting.models.ViTMatte`. The checkpoint (official ``.pth``, Hugging Face ``.safetensors`` or ours)
  goes through :func:`bgmatting.convert.vitmatte.convert_vitmatte`; the architecture is read off it
  (:func:`~bgmatting.convert.vitmatte.infer_vitmatte_config`), so ViTMatte-S, -B and small test models load alike.
- ``bgmv2+vitmatte``: BackgroundMattingV2 (src + clean plate) predicts a coarse alpha; its soft pixels and a band
  around its edges become the unknown region of an automatic trimap
  (:func:`bgmatting.data.trimap.trimap_from_coarse_alpha`); ViTMatte then mattes the full-resolution image with it.

The dictionaries :data:`VITMATTE_KIND` and :data:`CASCADE_KIND` hold the :class:`~bgmatting.engine.predictor.
ModelKind` fields; the predictor registers them. Their ``options`` are the extra keyword arguments of
``Predictor`` for these types (CLI flags ``--model-<name>``, see :func:`add_arguments`).
"""
import numpy as np

from bgmatting.errors import UserError

#: Extra Predictor options of the ``vitmatte`` type and their defaults.
VITMATTE_OPTIONS = {
    "vitmatte_config": None,  # ViTMatte keyword arguments for a model without checkpoint (None: ViTMatte-S)
    "attention_chunk_size": None,  # query-chunked global attention (bounded memory, same result)
    "decoder_tile_size": None,  # tiled decoder (bounded memory, same result with overlap >= 64)
    "decoder_tile_overlap": 64,
}
#: Extra Predictor options of the ``bgmv2+vitmatte`` cascade and their defaults.
CASCADE_OPTIONS = {
    **VITMATTE_OPTIONS,
    "vitmatte_checkpoint": None,  # the ViTMatte weights (the BGMv2 ones are ``checkpoint``)
    "coarse_model_type": "mattingrefine",  # the BGMv2 model giving the coarse alpha
    "trimap_band": 10,  # half-width in pixels of the unknown band around the coarse alpha's edges
    "trimap_low": 0.05,  # coarse alpha <= low: sure background
    "trimap_high": 0.95,  # coarse alpha >= high: sure foreground
}


def _numpy(value) -> np.ndarray:
    """A Paddle tensor or a numpy array as a numpy array."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _build_vitmatte(options):
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


def _read_vitmatte(path, options):
    """Official ``.pth`` / Hugging Face ``.safetensors`` / our ``.pdparams`` → our state; records the
    checkpoint's architecture in ``options["vitmatte_config"]`` for the build."""
    from bgmatting.convert.checkpoint_io import load_state_arrays
    from bgmatting.convert.vitmatte import convert_vitmatte, infer_vitmatte_config, is_vitmatte_checkpoint

    arrays = load_state_arrays(path)
    if not is_vitmatte_checkpoint(arrays):
        raise UserError(f"checkpoint {path} is not a ViTMatte checkpoint (no patch embedding); a BackgroundMattingV2 "
                        "checkpoint needs --model-type mattingbase/mattingrefine")
    state, _ = convert_vitmatte(arrays)
    options["vitmatte_config"] = infer_vitmatte_config(state)
    return state


def _load_vitmatte(model, state, options):
    """Load a converted state (names and shapes were checked by the converter against this architecture)."""
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

    image = _numpy(src)
    pixel_values = normalize_and_pad(image.transpose(0, 2, 3, 1), _numpy(trimap)[:, 0])
    return postprocess(model(paddle.to_tensor(pixel_values)), image.shape[2:])[0]


def _run_vitmatte(model, src, trimap):
    pha = vitmatte_alpha(model, src, trimap)
    fgr = _numpy(src)[0].transpose(1, 2, 0)  # ViTMatte predicts no foreground: the photo's colours
    return dict(pha=pha, fgr=fgr, err=np.zeros_like(pha), ref=None)


# ------------------------------------------------------------------------------------------------- cascade


def _coarse_options(options):
    if options["coarse_model_type"] not in ("mattingbase", "mattingrefine"):
        raise UserError(f"coarse model type must be mattingbase or mattingrefine, got {options['coarse_model_type']!r}")
    return dict(options, model_type=options["coarse_model_type"])


def _build_cascade(options):
    from bgmatting.engine.predictor import _build_bgmv2
    from bgmatting.models.cascade import MattingCascade

    if options["trimap_band"] < 0:
        raise UserError(f"trimap band must be >= 0 pixels, got {options['trimap_band']}")
    if not 0.0 <= options["trimap_low"] < options["trimap_high"] <= 1.0:
        raise UserError(f"trimap thresholds need 0 <= low < high <= 1, got low {options['trimap_low']} and high "
                        f"{options['trimap_high']}")
    return MattingCascade(_build_bgmv2(_coarse_options(options)), _build_vitmatte(options),
                          options["coarse_model_type"], options["trimap_band"], options["trimap_low"],
                          options["trimap_high"])


def _read_cascade(path, options):
    from bgmatting.engine.predictor import _read_bgmv2

    if options["vitmatte_checkpoint"] is None:
        raise UserError("the bgmv2+vitmatte cascade needs ViTMatte weights too (--model-vitmatte-checkpoint)")
    return {"bgmv2": _read_bgmv2(path, _coarse_options(options)),
            "vitmatte": _read_vitmatte(options["vitmatte_checkpoint"], options)}


def _load_cascade(model, state, options):
    from bgmatting.engine.predictor import _load_bgmv2

    _load_bgmv2(model.bgmv2, state["bgmv2"], _coarse_options(options))
    _load_vitmatte(model.vitmatte, state["vitmatte"], options)


def cascade_trimap(coarse_alpha: np.ndarray, band: int = 10, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """The cascade's automatic trimap: :func:`bgmatting.data.trimap.trimap_from_coarse_alpha` of the coarse alpha.

    Args:
        coarse_alpha: (H, W) float in [0, 1]; band, low, high: as ``trimap_from_coarse_alpha``.
    Returns:
        (H, W) uint8 trimap in {0, 128, 255}.
    """
    from bgmatting.data.trimap import trimap_from_coarse_alpha

    return trimap_from_coarse_alpha(coarse_alpha, low=low, high=high, band=band)


def _run_cascade(model, src, bgr):
    """BGMv2 on (src, bgr) → automatic trimap → ViTMatte on src; ``fgr``, ``err``, ``ref`` are BGMv2's."""
    from bgmatting.engine.predictor import MODEL_KINDS

    coarse = MODEL_KINDS[model.coarse_model_type].run(model.bgmv2, src, bgr)
    trimap = cascade_trimap(coarse["pha"], model.trimap_band, model.trimap_low, model.trimap_high)
    pha = vitmatte_alpha(model.vitmatte, src, trimap[None, None].astype(np.float32) / 255.0)
    return dict(coarse, pha=pha)


#: ModelKind fields of ``vitmatte`` (pads inside ``run``, after normalisation, as the HF processor).
VITMATTE_KIND = dict(guide="trimap", pad_multiple=1, build=_build_vitmatte, read=_read_vitmatte,
                     load=_load_vitmatte, run=_run_vitmatte, options=VITMATTE_OPTIONS)
#: ModelKind fields of ``bgmv2+vitmatte`` (BGMv2's padding: edge replication to a multiple of 4).
CASCADE_KIND = dict(guide="bgr", pad_multiple=4, build=_build_cascade, read=_read_cascade,
                    load=_load_cascade, run=_run_cascade, options=CASCADE_OPTIONS)


def add_arguments(group, cascade: bool = True) -> None:
    """Add the ``--model-*`` flags of the trimap model types to an argparse group (predict.py, eval.py)."""
    group.add_argument("--model-attention-chunk-size", type=int, default=None,
                       help="vitmatte: global attention in slices of this many query tokens (bounded memory, same "
                            "result; 1024 runs ViTMatte-S at 3840x2160)")
    group.add_argument("--model-decoder-tile-size", type=int, default=None,
                       help="vitmatte: decode in tiles of this side (multiple of 16; bounded memory, same result)")
    group.add_argument("--model-decoder-tile-overlap", type=int, default=64,
                       help="vitmatte: margin decoded around each tile (multiple of 16; 64 = exact)")
    if not cascade:
        return
    group.add_argument("--model-vitmatte-checkpoint",
                       help="bgmv2+vitmatte: the ViTMatte weights (--model-checkpoint holds the BGMv2 ones)")
    group.add_argument("--model-coarse-model-type", choices=["mattingbase", "mattingrefine"], default="mattingrefine",
                       help="bgmv2+vitmatte: the BGMv2 model giving the coarse alpha (default mattingrefine)")
    group.add_argument("--model-trimap-band", type=int, default=10,
                       help="bgmv2+vitmatte: half-width in pixels of the unknown band around the coarse edges")
    group.add_argument("--model-trimap-low", type=float, default=0.05,
                       help="bgmv2+vitmatte: coarse alpha <= this is sure background")
    group.add_argument("--model-trimap-high", type=float, default=0.95,
                       help="bgmv2+vitmatte: coarse alpha >= this is sure foreground")

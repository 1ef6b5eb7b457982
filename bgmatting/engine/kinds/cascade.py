"""The ``bgmv2+vitmatte`` kind: BackgroundMattingV2's coarse alpha → an automatic trimap → ViTMatte.

BackgroundMattingV2 (src + clean plate) predicts a coarse alpha; its soft pixels and a band around its edges
become the unknown region of an automatic trimap (:func:`bgmatting.data.trimap.trimap_from_coarse_alpha`);
ViTMatte then mattes the full-resolution image with it. ``--model-checkpoint`` holds the BGMv2 weights and
``--model-vitmatte-checkpoint`` the ViTMatte ones (each may be any form the tools accept).
"""
from types import SimpleNamespace

import numpy as np

from bgmatting.engine.kinds.bgmv2 import BGMV2_FLAGS, MATTINGBASE, MATTINGREFINE, REFINE_OPTIONS
from bgmatting.engine.kinds.registry import ModelKind, get_kind, register_kind
from bgmatting.engine.kinds.vitmatte import VITMATTE, VITMATTE_FLAGS, VITMATTE_OPTIONS, vitmatte_alpha
from bgmatting.errors import UserError

CASCADE_OPTIONS = {
    "backbone": "resnet50",
    **REFINE_OPTIONS,
    **VITMATTE_OPTIONS,
    "vitmatte_checkpoint": None,  # the ViTMatte weights (the BGMv2 ones are ``checkpoint``)
    "coarse_model_type": "mattingrefine",  # the BGMv2 model giving the coarse alpha
    "trimap_band": 10,  # half-width in pixels of the unknown band around the coarse alpha's edges
    "trimap_low": 0.05,  # coarse alpha <= low: sure background
    "trimap_high": 0.95,  # coarse alpha >= high: sure foreground
}
CASCADE_FLAGS = {
    **BGMV2_FLAGS,
    **VITMATTE_FLAGS,
    "vitmatte_checkpoint": (str, None, "bgmv2+vitmatte: the ViTMatte weights (--model-checkpoint holds the BGMv2 "
                                       "ones)"),
    "coarse_model_type": (str, ("mattingbase", "mattingrefine"),
                          "bgmv2+vitmatte: the BGMv2 model giving the coarse alpha (default mattingrefine)"),
    "trimap_band": (int, None, "bgmv2+vitmatte: half-width in pixels of the unknown band around the coarse edges"),
    "trimap_low": (float, None, "bgmv2+vitmatte: coarse alpha <= this is sure background"),
    "trimap_high": (float, None, "bgmv2+vitmatte: coarse alpha >= this is sure foreground"),
}


def coarse_kind(options: dict):
    """The BGMv2 kind giving the coarse alpha, from ``options["coarse_model_type"]``."""
    if options["coarse_model_type"] not in (MATTINGBASE.name, MATTINGREFINE.name):
        raise UserError(f"coarse model type must be mattingbase or mattingrefine, got {options['coarse_model_type']!r}")
    return get_kind(options["coarse_model_type"])


def part_options(kind, options: dict) -> dict:
    """The options of one part (``kind``) of the cascade."""
    return {name: options[name] for name in kind.options}


def check_trimap_options(options: dict) -> None:
    """UserError for a negative trimap band or thresholds outside 0 <= low < high <= 1."""
    if options["trimap_band"] < 0:
        raise UserError(f"trimap band must be >= 0 pixels, got {options['trimap_band']}")
    if not 0.0 <= options["trimap_low"] < options["trimap_high"] <= 1.0:
        raise UserError(f"trimap thresholds need 0 <= low < high <= 1, got low {options['trimap_low']} and high "
                        f"{options['trimap_high']}")


def build_cascade(options: dict):
    """MattingCascade(BGMv2, ViTMatte) with the trimap options checked."""
    from bgmatting.models.cascade import MattingCascade

    check_trimap_options(options)
    coarse = coarse_kind(options)
    return MattingCascade(coarse.build(part_options(coarse, options)),
                          VITMATTE.build(part_options(VITMATTE, options)), coarse.name, options["trimap_band"],
                          options["trimap_low"], options["trimap_high"])


def recognise_cascade(arrays: dict):
    """Never: the cascade's checkpoint is a BGMv2 one (``accepts``); there are no cascade weights files."""
    return None


def read_cascade(arrays: dict, options: dict, extra: dict) -> dict:
    """The BGMv2 state of ``arrays`` and the ViTMatte state of ``extra["vitmatte_checkpoint"]`` (raw arrays)."""
    from bgmatting.convert.vitmatte import is_vitmatte_checkpoint

    if not is_vitmatte_checkpoint(extra["vitmatte_checkpoint"]):
        raise UserError(f"--model-vitmatte-checkpoint {options['vitmatte_checkpoint']} is not a ViTMatte checkpoint")
    coarse = coarse_kind(options)
    return {"bgmv2": coarse.read(arrays, part_options(coarse, options)),
            "vitmatte": VITMATTE.read(extra["vitmatte_checkpoint"], options)}


def load_cascade(model, state: dict, options: dict) -> None:
    """Load both parts (each checked against its model)."""
    coarse = coarse_kind(options)
    coarse.load(model.bgmv2, state["bgmv2"], part_options(coarse, options))
    VITMATTE.load(model.vitmatte, state["vitmatte"], options)


def cascade_trimap(coarse_alpha: np.ndarray, band: int = 10, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """The cascade's automatic trimap: :func:`bgmatting.data.trimap.trimap_from_coarse_alpha` of the coarse alpha.

    Args:
        coarse_alpha: (H, W) float in [0, 1]; band, low, high: as ``trimap_from_coarse_alpha``.
    Returns:
        (H, W) uint8 trimap in {0, 128, 255}.
    """
    from bgmatting.data.trimap import trimap_from_coarse_alpha

    return trimap_from_coarse_alpha(coarse_alpha, low=low, high=high, band=band)


def run_cascade(model, src, bgr) -> dict:
    """BGMv2 on (src, bgr) → automatic trimap → ViTMatte on src; ``fgr``, ``err``, ``ref`` are BGMv2's."""
    coarse = get_kind(model.coarse_model_type).run(model.bgmv2, src, bgr)
    trimap = cascade_trimap(coarse["pha"], model.trimap_band, model.trimap_low, model.trimap_high)
    pha = vitmatte_alpha(model.vitmatte, src, trimap[None, None].astype(np.float32) / 255.0)
    return dict(coarse, pha=pha)


def cascade_parts(options: dict) -> dict:
    """The cascade's two models for the static runtimes: ``bgmv2`` from ``--model-checkpoint``, ``vitmatte`` from
    ``--model-vitmatte-checkpoint`` (see ``ModelKind.parts``)."""
    coarse = coarse_kind(options)
    return {"bgmv2": (coarse.name, part_options(coarse, options), None),
            "vitmatte": (VITMATTE.name, part_options(VITMATTE, options), "vitmatte_checkpoint")}


def assemble_cascade(parts: dict, options: dict):
    """The parts (e.g. static runtimes called like the layers) with the trimap settings, as ``run_cascade`` reads a
    :class:`~bgmatting.models.cascade.MattingCascade`."""
    check_trimap_options(options)
    return SimpleNamespace(**parts, coarse_model_type=coarse_kind(options).name, trimap_band=options["trimap_band"],
                           trimap_low=options["trimap_low"], trimap_high=options["trimap_high"])


CASCADE = register_kind(ModelKind(
    name="bgmv2+vitmatte", guide="bgr", options=CASCADE_OPTIONS, build=build_cascade, recognise=recognise_cascade,
    read=read_cascade, load=load_cascade, run=run_cascade, fixed=("backbone", "refine_kernel_size"),
    pad_multiple=4, accepts=("mattingrefine", "mattingbase"), flags=CASCADE_FLAGS,
    checkpoint_options=("vitmatte_checkpoint",), parts=cascade_parts, assemble=assemble_cascade))

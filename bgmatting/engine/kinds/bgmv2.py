"""BackgroundMattingV2 kinds: ``mattingbase`` (coarse network) and ``mattingrefine`` (+ patch refiner).

Options and defaults are the official inference scripts' (``inference_images.py``: refine threshold 0.7, the
model class itself says 0.1 — it only matters with ``refine_mode: thresholding``). The backbone and the refiner's
kernel size are read off the weights and cannot be overridden.
"""
import numpy as np

from bgmatting.engine.kinds.registry import ExportSignature, ModelKind, register_kind
from bgmatting.errors import UserError

REFINE_MODES = ("full", "sampling", "thresholding")
REFINE_OPTIONS = {
    "backbone_scale": 0.25,
    "refine_mode": "sampling",
    "refine_sample_pixels": 80_000,
    "refine_threshold": 0.7,
    "refine_kernel_size": 3,
    "refine_prevent_oversampling": True,
}
BGMV2_FLAGS = {
    "backbone": (str, "backbones", "BackgroundMattingV2 backbone (read off the checkpoint when omitted)"),
    "backbone_scale": (float, None, "image scale of the base network (official default 0.25; 4K: 0.125)"),
    "refine_mode": (str, REFINE_MODES, "refiner: every patch, the top sample-pixels patches, or above threshold"),
    "refine_sample_pixels": (int, None, "sampling: pixels refined (official default 80,000; 4K: 320,000)"),
    "refine_threshold": (float, None, "thresholding: error above which a patch is refined (default 0.7)"),
    "refine_kernel_size": (int, (1, 3), "refiner kernel size (read off the checkpoint)"),
}
_PREPROCESSING = {"inputs": "RGB float32 in [0, 1], NCHW", "pad_multiple": 4, "pad_mode": "edge"}


def check_refine_options(options: dict) -> None:
    """UserError for a refine option out of range (mode, kernel size, scale, sample pixels, threshold)."""
    if options["refine_mode"] not in REFINE_MODES:
        raise UserError(f"unknown refine mode {options['refine_mode']!r}; choose one of {', '.join(REFINE_MODES)}")
    if options["refine_kernel_size"] not in (1, 3):
        raise UserError(f"refine kernel size must be 1 or 3, got {options['refine_kernel_size']}")
    if not 0 < options["backbone_scale"] <= 0.5:
        raise UserError(f"backbone scale must be in (0, 0.5], got {options['backbone_scale']}")
    if options["refine_sample_pixels"] <= 0:
        raise UserError(f"refine sample pixels must be positive, got {options['refine_sample_pixels']}")
    if not 0.0 <= options["refine_threshold"] <= 1.0:
        raise UserError(f"refine threshold must be in [0, 1], got {options['refine_threshold']}")


def build_bgmv2(options: dict):
    """MattingBase (``options`` without refine keys) or MattingRefine from the kind's options (training may add
    ``backbone_pretrained``: weights for a backbone with its own loader)."""
    from bgmatting.models import MattingBase, MattingRefine
    from bgmatting.models.backbones import get_backbone

    get_backbone(options["backbone"])  # one clear line for an unknown name
    pretrained = options.get("backbone_pretrained")
    if "refine_mode" not in options:
        return MattingBase(options["backbone"], backbone_pretrained=pretrained)
    check_refine_options(options)
    return MattingRefine(options["backbone"], backbone_pretrained=pretrained,
                         backbone_scale=options["backbone_scale"],
                         refine_mode=options["refine_mode"], refine_sample_pixels=options["refine_sample_pixels"],
                         refine_threshold=options["refine_threshold"],
                         refine_kernel_size=options["refine_kernel_size"],
                         refine_prevent_oversampling=options["refine_prevent_oversampling"],
                         # same results as the default "unfold", whose gather_nd on the strided view takes ~45 s
                         # per 1080p frame in Paddle 3.3.1 CPU dygraph (gather: < 1 s)
                         refine_patch_crop_method="gather")


def _recognise(refine: bool):
    def recognise(arrays: dict):
        from bgmatting.convert.bgmv2 import has_refiner, rename_torch_keys
        from bgmatting.models.backbones import detect_backbone

        state = rename_torch_keys(arrays)
        if has_refiner(state) != refine or not any(k.startswith("backbone.") for k in state):
            return None
        try:
            found = {"backbone": detect_backbone(state)}
        except UserError:
            return None
        if refine:
            found["refine_kernel_size"] = int(np.shape(state.get("refiner.conv1.weight", np.zeros((1, 1, 3, 3))))[-1])
        return found

    return recognise


def read_bgmv2(arrays: dict, options: dict, extra: dict = None) -> dict:
    """Official ``.pth`` / Paddle-port / our arrays → Paddle names (MattingBase drops a refiner's weights)."""
    from bgmatting.convert.bgmv2 import rename_torch_keys

    state = rename_torch_keys(arrays)
    if "refine_mode" not in options:
        state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
    return state


def load_bgmv2(model, state: dict, options: dict) -> None:
    """Check ``state`` against the model's names and shapes, then load it."""
    from bgmatting.convert.bgmv2 import check_against_model

    expected = {k: v.shape for k, v in model.state_dict().items()}
    kind = "mattingrefine" if "refine_mode" in options else "mattingbase"
    check_against_model(state, expected, f"{kind}({options['backbone']})")
    model.set_state_dict({k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in state.items()})


def numpy_image(tensor) -> np.ndarray:
    """(1, C, H, W) tensor or array → (H, W) if C == 1 else (H, W, C) float32 array."""
    array = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)[0]
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def run_base(model, src, bgr) -> dict:
    """MattingBase on one image → pha, fgr, err (all at the input size), no refined patches."""
    pha, fgr, err, _ = model(src, bgr)
    return dict(pha=numpy_image(pha), fgr=numpy_image(fgr), err=numpy_image(err), ref=None)


def run_refine(model, src, bgr) -> dict:
    """MattingRefine on one image → pha, fgr (input size), err_sm and ref_sm (coarse size)."""
    pha, fgr, _, _, err_sm, ref_sm = model(src, bgr)
    return dict(pha=numpy_image(pha), fgr=numpy_image(fgr), err=numpy_image(err_sm), ref=numpy_image(ref_sm))


MATTINGREFINE = register_kind(ModelKind(
    name="mattingrefine", guide="bgr", options={"backbone": "resnet50", **REFINE_OPTIONS}, build=build_bgmv2,
    recognise=_recognise(True), read=read_bgmv2, load=load_bgmv2, run=run_refine,
    fixed=("backbone", "refine_kernel_size"), baked=tuple(REFINE_OPTIONS), pad_multiple=4,
    export=ExportSignature(("src", "bgr"), (3, 3), ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"),
                           _PREPROCESSING),
    training_type="MattingRefine", flags=BGMV2_FLAGS))
MATTINGBASE = register_kind(ModelKind(
    name="mattingbase", guide="bgr", options={"backbone": "resnet50"}, build=build_bgmv2,
    recognise=_recognise(False), read=read_bgmv2, load=load_bgmv2, run=run_base, fixed=("backbone",),
    pad_multiple=4, export=ExportSignature(("src", "bgr"), (3, 3), ("pha", "fgr", "err", "hid"), _PREPROCESSING),
    training_type="MattingBase", accepts=("mattingrefine",), flags={"backbone": BGMV2_FLAGS["backbone"]}))

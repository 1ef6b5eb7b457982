"""One matting model and its pre/post-processing behind one call: arrays in, alpha/foreground out.

predict.py, the evaluator, the exporter's checks and the web app all go through :class:`Predictor`, so padding,
checkpoint checks and output conventions live in one place.

Extending it:
- a model type is a :class:`ModelKind` in :data:`MODEL_KINDS` (how to build it, which second input it takes —
  ``bgr`` or ``trimap`` — the multiple its sides are padded to, how to load a checkpoint, and how to run it);
- a backend is a callable in :data:`BACKENDS` taking ``(model_kind, options, device)`` and returning a runner
  ``runner(src, guide) -> dict`` of numpy arrays at the model's own resolutions (``pha``/``fgr`` at the padded
  input size, ``err``/``ref`` at any size, ``ref`` may be None). Only ``dygraph`` exists here.
"""
import warnings
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from bgmatting.engine.backends import static_backend
from bgmatting.engine.vitmatte_kind import CASCADE_KIND, VITMATTE_KIND
from bgmatting.errors import UserError

BGMV2_BACKBONES = ("resnet50", "resnet101", "mobilenetv2")
REFINE_MODES = ("full", "sampling", "thresholding")
DEVICES = ("cpu", "gpu")


def _import_paddle():
    warnings.filterwarnings("ignore", message="No ccache found")
    import paddle

    return paddle


@dataclass(frozen=True)
class ModelKind:
    """How the Predictor builds, loads, feeds and reads one model type.

    Attributes:
        guide: name of the second input, ``"bgr"`` (a clean plate, uint8 (H, W, 3)) or ``"trimap"`` (uint8 (H, W)).
        pad_multiple: input sides are padded up to a multiple of this and the outputs cropped back.
        build: ``options -> paddle.nn.Layer`` (options: the Predictor's keyword arguments).
        read: ``(checkpoint_path, options) -> state`` (``{name: array}``), checked against the options before the
            model is built; raises UserError for a checkpoint that does not fit.
        load: ``(model, state, options) -> None``; raises UserError for missing/unexpected keys or shapes.
        run: ``(model, src, guide) -> dict`` with paddle tensors src (1, 3, H, W) and guide (1, C, H, W) in
            [0, 1]; returns numpy ``pha`` (H, W), ``fgr`` (H, W, 3), ``err`` (h, w), ``ref`` (h', w') or None.
        pad_mode: ``numpy.pad`` mode for the padding (``"edge"``; ``"constant"`` pads with zeros).
        options: extra Predictor keyword arguments of this type and their defaults (CLI flags ``--model-<name>``).
    """

    guide: str
    pad_multiple: int
    build: Callable
    read: Callable
    load: Callable
    run: Callable
    pad_mode: str = "edge"
    options: dict = field(default_factory=dict)


def _build_bgmv2(options):
    from bgmatting.models import MattingBase, MattingRefine

    if options["backbone"] not in BGMV2_BACKBONES:
        raise UserError(f"unknown backbone {options['backbone']!r}; choose one of {', '.join(BGMV2_BACKBONES)}")
    if options["model_type"] == "mattingbase":
        return MattingBase(options["backbone"])
    if options["refine_mode"] not in REFINE_MODES:
        raise UserError(f"unknown refine mode {options['refine_mode']!r}; choose one of {', '.join(REFINE_MODES)}")
    if options["refine_kernel_size"] not in (1, 3):
        raise UserError(f"refine kernel size must be 1 or 3, got {options['refine_kernel_size']}")
    if not 0 < options["backbone_scale"] <= 0.5:
        raise UserError(f"backbone scale must be in (0, 0.5], got {options['backbone_scale']}")
    return MattingRefine(options["backbone"], backbone_scale=options["backbone_scale"],
                         refine_mode=options["refine_mode"], refine_sample_pixels=options["refine_sample_pixels"],
                         refine_threshold=options["refine_threshold"],
                         refine_kernel_size=options["refine_kernel_size"],
                         # same results as the default "unfold", whose gather_nd on the strided view takes ~45 s
                         # per 1080p frame in Paddle 3.3.1 CPU dygraph (gather: < 1 s)
                         refine_patch_crop_method="gather")


def _read_bgmv2(path, options):
    """Official ``.pth``, the Paddle port's ``.pdparams``, our ``.pdparams``/``.safetensors`` → Paddle-named state."""
    from bgmatting.convert.bgmv2 import detect_bgmv2_backbone, has_refiner, rename_torch_keys
    from bgmatting.convert.checkpoint_io import load_state_arrays

    state = rename_torch_keys(load_state_arrays(path))
    found = detect_bgmv2_backbone(state)
    if found != options["backbone"]:
        raise UserError(f"checkpoint {path} holds a {found} model but --model-backbone is {options['backbone']}")
    if options["model_type"] == "mattingrefine":
        if not has_refiner(state):
            raise UserError(f"checkpoint {path} has no refiner weights (a MattingBase checkpoint?); "
                            "use --model-type mattingbase")
        kernel = int(state["refiner.conv1.weight"].shape[-1])
        if kernel != options["refine_kernel_size"]:
            raise UserError(f"checkpoint {path} has a refiner with kernel size {kernel} but "
                            f"--model-refine-kernel-size is {options['refine_kernel_size']}")
        return state
    return {k: v for k, v in state.items() if not k.startswith("refiner.")}  # MattingRefine ⊃ MattingBase


def _load_bgmv2(model, state, options):
    """Check ``state`` against the model's names and shapes, then load it."""
    from bgmatting.convert.bgmv2 import check_against_model

    expected = {k: v.shape for k, v in model.state_dict().items()}
    check_against_model(state, expected, f"{options['model_type']}({options['backbone']})")
    model.set_state_dict({k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in state.items()})


def _numpy_image(tensor):
    """(1, C, H, W) tensor → (H, W) if C == 1 else (H, W, C) float32 array."""
    array = tensor.numpy()[0]
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def _run_base(model, src, bgr):
    pha, fgr, err, _ = model(src, bgr)
    return dict(pha=_numpy_image(pha), fgr=_numpy_image(fgr), err=_numpy_image(err), ref=None)


def _run_refine(model, src, bgr):
    pha, fgr, _, _, err_sm, ref_sm = model(src, bgr)
    return dict(pha=_numpy_image(pha), fgr=_numpy_image(fgr), err=_numpy_image(err_sm), ref=_numpy_image(ref_sm))


_BGMV2 = dict(guide="bgr", pad_multiple=4, build=_build_bgmv2, read=_read_bgmv2, load=_load_bgmv2)
MODEL_KINDS = {
    "mattingbase": ModelKind(**_BGMV2, run=_run_base),
    "mattingrefine": ModelKind(**_BGMV2, run=_run_refine),
    "vitmatte": ModelKind(**VITMATTE_KIND),  # trimap matting, see bgmatting/engine/vitmatte_kind.py
    "bgmv2+vitmatte": ModelKind(**CASCADE_KIND),  # BGMv2 coarse alpha → automatic trimap → ViTMatte
}


def set_device(device: str):
    """Select ``cpu`` or ``gpu`` for Paddle; UserError when the GPU is asked for but Paddle has no CUDA."""
    paddle = _import_paddle()
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; choose cpu or gpu")
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UserError("--device gpu needs a CUDA build of Paddle (this one is CPU-only); see README § Set-up")
    paddle.set_device(device)


def _dygraph_backend(kind: ModelKind, options: dict, device: str):
    """Eager Paddle: build, load the checkpoint (if any), eval mode; returns the runner."""
    paddle = _import_paddle()
    set_device(device)
    model = options["model"]
    if model is None:
        state = kind.read(options["checkpoint"], options) if options["checkpoint"] is not None else None
        model = kind.build(options)
        if state is not None:
            kind.load(model, state, options)
    model.eval()

    def runner(src: np.ndarray, guide: np.ndarray) -> dict:
        with paddle.no_grad():
            return kind.run(model, paddle.to_tensor(src), paddle.to_tensor(guide))

    runner.model = model
    return runner


BACKENDS = {"dygraph": _dygraph_backend,  # the static runtimes live in bgmatting/engine/backends.py
            "inference": static_backend("inference", _dygraph_backend), "onnx": static_backend("onnx", _dygraph_backend)}


def to_float_image(image: np.ndarray, name: str) -> np.ndarray:
    """uint8 (0..255) or float (0..1) image → float32 in [0, 1]; UserError for other sample types."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype.kind == "f":
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    raise UserError(f"{name} must be uint8 or float in [0, 1], got {image.dtype}")


def pad_to_multiple(image: np.ndarray, multiple: int, mode: str = "edge") -> np.ndarray:
    """Pad (H, W[, C]) at the bottom/right (``numpy.pad`` ``mode``) so that H and W are multiples of ``multiple``."""
    pad_height, pad_width = -image.shape[0] % multiple, -image.shape[1] % multiple
    if not (pad_height or pad_width):
        return image
    return np.pad(image, [(0, pad_height), (0, pad_width)] + [(0, 0)] * (image.ndim - 2), mode=mode)


def _nchw(image):
    return np.ascontiguousarray((image[:, :, None] if image.ndim == 2 else image).transpose(2, 0, 1)[None])


class Predictor:
    """A matting model with its pre- and post-processing: numpy images in, alpha and foreground out.

    Args:
        model_type: a key of :data:`MODEL_KINDS`: ``"mattingbase"``, ``"mattingrefine"`` (clean plate),
            ``"vitmatte"`` (trimap) or ``"bgmv2+vitmatte"`` (clean plate → automatic trimap → ViTMatte).
        backbone: ``"resnet50"``, ``"resnet101"`` or ``"mobilenetv2"`` (BackgroundMattingV2 models).
        backbone_scale, refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size: as
            :class:`bgmatting.models.MattingRefine` (official defaults; the official CLI's threshold is 0.7).
        checkpoint: path of a ``.pth`` / ``.pdparams`` / ``.safetensors`` checkpoint, or None (random weights).
        device: ``"cpu"`` or ``"gpu"``.
        backend: a key of :data:`BACKENDS`: ``"dygraph"``, ``"inference"`` (Paddle Inference, oneDNN on CPU) or
            ``"onnx"`` (onnxruntime); the last two take an export directory (tools/export.py) as ``checkpoint``,
            or export the checkpoint on the fly.
        cpu_threads: CPU threads of the inference/onnx runtimes (None = all CPUs).
        model: an already built model (e.g. the trainer's); then ``checkpoint`` is not read.
        **model_options: the extra options of the model type (``ModelKind.options``), e.g. ViTMatte's
            ``attention_chunk_size`` or the cascade's ``vitmatte_checkpoint`` (see bgmatting/engine/vitmatte_kind.py).
    Input:
        src: uint8 (H, W, 3) RGB, or float in [0, 1].
        bgr: clean plate, same shape and type rules as ``src`` (BackgroundMattingV2 models).
        trimap: uint8 (H, W), 0/128/255 (trimap model types).
    Output:
        dict of float32 arrays at the input's size: ``pha`` (H, W) in [0, 1]; ``fgr`` (H, W, 3) in [0, 1];
        ``err`` (H, W) in [0, 1], the predicted error map bilinearly upsampled; ``ref`` (H, W) in {0, 1}, the
        refined patches nearest-upsampled (all 0 for MattingBase, which refines nothing). ViTMatte predicts
        alpha only: its ``fgr`` is ``src`` and ``err``/``ref`` are 0 (the cascade's are BackgroundMattingV2's).
        Sides that are not multiples of 4 are padded by edge replication and cropped back; nothing is resized
        (ViTMatte: zero padding to 32 after normalisation, as Hugging Face's processor).
    Example:
        >>> predictor = Predictor("mattingrefine", "resnet50", checkpoint="pytorch_resnet50.pth")
        >>> out = predictor(src=read_image("src.png"), bgr=read_image("bgr.png"))
        >>> out["pha"].shape == src.shape[:2]
        True
    """

    def __init__(self, model_type: str = "mattingrefine", backbone: str = "resnet50", backbone_scale: float = 0.25,
                 refine_mode: str = "sampling", refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1,
                 refine_kernel_size: int = 3, checkpoint=None, device: str = "cpu", backend: str = "dygraph",
                 model=None, cpu_threads: int = None, **model_options):
        if model_type not in MODEL_KINDS:
            raise UserError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_KINDS)}")
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model_type = model_type
        self.kind = MODEL_KINDS[model_type]
        unknown = sorted(set(model_options) - set(self.kind.options))
        if unknown:
            raise UserError(f"{model_type} takes no option {', '.join(unknown)}")
        options = dict(model_type=model_type, backbone=backbone, backbone_scale=backbone_scale,
                       refine_mode=refine_mode, refine_sample_pixels=refine_sample_pixels,
                       refine_threshold=refine_threshold, refine_kernel_size=refine_kernel_size,
                       checkpoint=checkpoint, model=model, cpu_threads=cpu_threads,
                       **{**self.kind.options, **model_options})
        self.runner = BACKENDS[backend](self.kind, options, device)

    @classmethod
    def from_args(cls, args, **overrides):
        """Build from the official CLI's parsed arguments (``args.model_type``, ``args.model_backbone``, …)."""
        options = dict(model_type=args.model_type, backbone=args.model_backbone,
                       backbone_scale=args.model_backbone_scale, refine_mode=args.model_refine_mode,
                       refine_sample_pixels=args.model_refine_sample_pixels,
                       refine_threshold=args.model_refine_threshold,
                       refine_kernel_size=args.model_refine_kernel_size, checkpoint=args.model_checkpoint,
                       device=args.device)
        options.update({name: getattr(args, f"model_{name}") for name in MODEL_KINDS[args.model_type].options
                        if hasattr(args, f"model_{name}")})  # --model-<name> flags of the type's extra options
        options.update(overrides)
        return cls(**options)

    def _guide(self, src, bgr, trimap):
        if self.kind.guide == "bgr":
            if bgr is None:
                raise UserError(f"{self.model_type} needs a clean plate (bgr)")
            if bgr.shape != src.shape:
                raise UserError(f"src is {src.shape[1]}x{src.shape[0]} but the plate is {bgr.shape[1]}x{bgr.shape[0]}"
                                f" (channels {src.shape[2:]} vs {bgr.shape[2:]})")
            return to_float_image(bgr, "bgr")
        if trimap is None:
            raise UserError(f"{self.model_type} needs a trimap")
        if trimap.shape != src.shape[:2]:
            raise UserError(f"src is {src.shape[1]}x{src.shape[0]} but the trimap is "
                            f"{trimap.shape[1]}x{trimap.shape[0]}")
        return to_float_image(trimap, "trimap")

    def __call__(self, src: np.ndarray, bgr: np.ndarray = None, trimap: np.ndarray = None) -> dict:
        if src.ndim != 3 or src.shape[2] != 3:
            raise UserError(f"src must be an (H, W, 3) RGB image, got shape {src.shape}")
        height, width = src.shape[:2]
        guide = self._guide(src, bgr, trimap)
        pad = lambda image: _nchw(pad_to_multiple(image, self.kind.pad_multiple, self.kind.pad_mode))  # noqa: E731
        raw = self.runner(pad(to_float_image(src, "src")), pad(guide))
        padded = raw["pha"].shape[:2]
        err = cv2.resize(raw["err"], padded[::-1], interpolation=cv2.INTER_LINEAR) \
            if raw["err"].shape != padded else raw["err"]
        ref = np.zeros(padded, np.float32) if raw["ref"] is None else \
            cv2.resize(raw["ref"], padded[::-1], interpolation=cv2.INTER_NEAREST)
        outputs = dict(pha=raw["pha"], fgr=raw["fgr"], err=err, ref=ref)
        return {k: np.ascontiguousarray(v[:height, :width], dtype=np.float32) for k, v in outputs.items()}

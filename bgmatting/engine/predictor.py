"""One matting model and its pre/post-processing behind one call: arrays in, alpha/foreground out.

predict.py, the evaluator, the exporter's checks and the web app all go through :class:`Predictor`, so padding,
checkpoint checks and output conventions live in one place. What a model kind is (how to build, read and run
it) is the registry's (:mod:`bgmatting.engine.kinds`); which settings apply is :mod:`bgmatting.engine.loading`'s.

A backend is a callable in :data:`BACKENDS` taking ``(settings, device, model, cpu_threads)`` and returning a
runner ``runner(src, guide) -> dict`` of numpy arrays at the model's own resolutions (``pha``/``fgr`` at the
padded input size, ``err``/``ref`` at any size, ``ref`` may be None).
"""
import warnings

import cv2
import numpy as np

from bgmatting.engine.backends import runtime_available, static_backend
from bgmatting.engine.loading import build_model, resolve_settings
from bgmatting.errors import UserError

DEVICES = ("cpu", "gpu")


def _import_paddle():
    warnings.filterwarnings("ignore", message="No ccache found")
    import paddle

    return paddle


def set_device(device: str):
    """Select ``cpu`` or ``gpu`` for Paddle; UserError when the GPU is asked for but Paddle has no CUDA."""
    paddle = _import_paddle()
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; choose cpu or gpu")
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UserError("--device gpu needs a CUDA build of Paddle (this one is CPU-only); see README § Set-up")
    paddle.set_device(device)


def dygraph_model(settings, device: str, model=None):
    """The eager Paddle model of ``settings`` (``model`` when given, e.g. the trainer's) in eval mode."""
    set_device(device)
    if model is None:
        model = build_model(settings)
    model.eval()
    return model


def _dygraph_backend(settings, device: str, model=None, cpu_threads: int = None):
    """Eager Paddle: build, load the checkpoint (if any), eval mode; ``cpu_threads`` sets Paddle's math-library
    threads (None = Paddle's default); returns the runner."""
    paddle = _import_paddle()
    model = dygraph_model(settings, device, model)
    if cpu_threads is not None:
        paddle.base.core.set_num_threads(int(cpu_threads))

    def runner(src: np.ndarray, guide: np.ndarray) -> dict:
        with paddle.no_grad():
            return settings.kind.run(model, paddle.to_tensor(src), paddle.to_tensor(guide))

    runner.model = model
    return runner


BACKENDS = {"dygraph": _dygraph_backend,  # the static runtimes live in bgmatting/engine/backends.py
            "inference": static_backend("inference", dygraph_model),
            "onnx": static_backend("onnx", dygraph_model)}
AUTO = "auto"
# The runtimes by speed on this project's CPU machine, fastest first, measured with
# ``tools/benchmark.py --preset P --backend inference --compare-backend onnx --compare-torch --threads 2`` (each in
# its own process, turns alternating; loaded machine, 2026-11-30), Paddle Inference / onnxruntime medians:
# hd-mobilenetv2 792 / 803 ms (0.99), hd-resnet50 759 / 893 ms (0.85), 4k-mobilenetv2 6537 / 2435 ms (2.68).
# onnxruntime stays first: on par at HD, 2.7x faster at 4K (20,000 patches: Paddle's per-patch copies dominate),
# and its dynamic-size export serves a folder of any sizes. Reorder when a measurement says otherwise.
RUNTIME_PREFERENCE = ("onnx", "inference")


def default_backend(kind, device: str = "cpu", model=None, source=None) -> str:
    """The backend ``backend=None``/``"auto"`` means: the fastest installed runtime, or ``dygraph`` where no export
    applies.

    ``dygraph`` for: a model passed in memory (training, validation: it changes between calls), kinds with neither
    a static export nor exportable parts, and ``device="gpu"`` (not measured here). ViTMatte (one cached export per
    padded size, :func:`bgmatting.engine.backends.shape_policy`) and the ``bgmv2+vitmatte`` cascade (each part
    exported on its own) run on the runtimes too. An export folder runs on the fastest runtime it has files for.
    Otherwise the first installed runtime of :data:`RUNTIME_PREFERENCE`.
    """
    if model is not None or (kind.export is None and kind.parts is None) or device != "cpu":
        if source is None or source.export_dir is None:
            return "dygraph"
    for name in RUNTIME_PREFERENCE:
        if not runtime_available(name):
            continue
        if source is not None and source.export_dir is not None and name == "onnx" and \
                not (source.export_dir / "model.onnx").is_file():
            continue
        return name
    return "dygraph"


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
        model_type: a registered kind (:func:`bgmatting.engine.kinds.kind_names`): ``"mattingbase"``,
            ``"mattingrefine"`` (clean plate), ``"vitmatte"`` (trimap) or ``"bgmv2+vitmatte"`` (clean plate →
            automatic trimap → ViTMatte); None = the checkpoint's kind (``mattingrefine`` without one).
        backbone: a registered backbone (BackgroundMattingV2 kinds); None = the checkpoint's (``resnet50``).
        checkpoint: any form of :func:`bgmatting.engine.model_source.locate` (model/run/export/Hugging Face folder,
            ``.pth``/``.pdparams``/``.safetensors`` file), or None (random weights).
        config: a training config YAML whose ``model:`` section sets the options, or None.
        device: ``"cpu"`` or ``"gpu"``.
        backend: a key of :data:`BACKENDS`: ``"dygraph"``, ``"inference"`` (Paddle Inference, oneDNN on CPU) or
            ``"onnx"`` (onnxruntime); the last two take an export folder (tools/export.py) as ``checkpoint``,
            or run exports of the checkpoint from the export cache (made on first use, see
            :mod:`bgmatting.engine.export_cache`). None or ``"auto"``: the fastest installed runtime
            (:func:`default_backend`); the chosen one is ``predictor.backend``.
        cpu_threads: CPU threads of the inference/onnx runtimes (None = all CPUs).
        model: an already built model (e.g. the trainer's); then ``checkpoint`` is not read.
        settings: already resolved :class:`bgmatting.engine.loading.ModelSettings` (then ``model_type``,
            ``backbone``, ``checkpoint``, ``config`` and ``options`` are not read).
        **options: the kind's options (``get_kind(model_type).options``), e.g. ``backbone_scale``,
            ``refine_mode``, ``refine_sample_pixels``, ``refine_threshold``, ``refine_kernel_size``, ViTMatte's
            ``attention_chunk_size`` or the cascade's ``vitmatte_checkpoint``; None = the checkpoint's value, else
            the kind's default (official inference defaults). They override the checkpoint's card, except where the
            weights or an export fix them (then a different value is a UserError naming both).
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
        >>> predictor = Predictor.from_pretrained("output/demo/stage2")    # kind, backbone, options from the run
        >>> out = predictor(src=read_image("src.png"), bgr=read_image("bgr.png"))
        >>> out["pha"].shape == src.shape[:2]
        True
    """

    def __init__(self, model_type: str = None, backbone: str = None, *, checkpoint=None, config=None,
                 device: str = "cpu", backend: str = "dygraph", model=None, cpu_threads: int = None,
                 settings=None, **options):
        if backend is not None and backend != AUTO and backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of {', '.join([AUTO, *BACKENDS])}")
        self.settings = settings or resolve_settings(None if model is not None else checkpoint, model_type, config,
                                                     backbone=backbone, **options)
        self.kind = self.settings.kind
        self.model_type = self.kind.name
        self.options = self.settings.options
        if backend is None or backend == AUTO:
            backend = default_backend(self.kind, device, model, self.settings.source)
        self.backend = backend
        self.runner = BACKENDS[backend](self.settings, device, model=model, cpu_threads=cpu_threads)

    @classmethod
    def from_pretrained(cls, path, **overrides):
        """A Predictor for any checkpoint form, its settings read from the model (card or weights).

        Args:
            path: model folder, training run folder, export folder, Hugging Face folder, or weights file.
            **overrides: ``model_type``, ``backbone``, the kind's options, ``backend``, ``device`` …
        Example:
            >>> Predictor.from_pretrained("weights/bgmv2_mobilenetv2", refine_mode="full")
        """
        return cls(checkpoint=path, **overrides)

    @classmethod
    def from_args(cls, args, **overrides):
        """Build from parsed ``--model-*`` flags (:func:`bgmatting.engine.model_args.add_model_arguments`);
        flags left at None take the checkpoint's (or config's) value. ``overrides`` may hold ``settings`` already
        resolved from the same flags, and ``backend``, ``cpu_threads`` …"""
        from bgmatting.engine.model_args import requested_options

        requested = requested_options(args)
        if overrides.get("settings") is not None:
            requested = {"device": requested["device"]}
        return cls(**{**requested, **overrides})

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

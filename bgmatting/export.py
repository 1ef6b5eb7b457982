"""Static export of both model families for Paddle Inference and onnxruntime.

:func:`export_model` writes, into one directory:
- ``model.json`` + ``model.pdiparams``: the ``paddle.jit.save`` program (Paddle 3.3 PIR format);
- ``model.onnx`` (optional): the same program converted by paddle2onnx;
- ``export.json``: what a runtime needs besides the program — model type, the options baked into the graph,
  input/output names and shapes, pre-processing.

BackgroundMattingV2 exports with dynamic batch, height and width (or a fixed size, faster); its refine options (mode, sample pixels,
threshold, kernel size) are fixed at export. The refiner's static path crops with ``gather`` and writes back with
a ``scatter_nd`` overwrite, always refining at least one (dummy, weight 0) patch. In ``model.json`` every
bilinear/nearest resize is the gather + lerp form (oneDNN-safe, see :mod:`bgmatting.models.ops`); ``model.onnx``
is converted from a second trace with ``F.interpolate``, as onnxruntime's native Resize is faster.
ViTMatte exports with dynamic batch and a fixed height and width (``input_size``): its relative-position tables
and window padding are computed from Python ints in the model code.
"""
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from bgmatting.errors import UserError

MODEL_PREFIX = "model"
METADATA_NAME = "export.json"
ONNX_NAME = "model.onnx"
FORMAT_VERSION = 1
ONNX_OPSET = 17

# model type -> (input names, channels per input, output names)
SIGNATURES = {
    "mattingbase": (("src", "bgr"), (3, 3), ("pha", "fgr", "err", "hid")),
    "mattingrefine": (("src", "bgr"), (3, 3), ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")),
    "vitmatte": (("pixel_values",), (4,), ("alpha",)),
}
PREPROCESSING = {
    "mattingbase": {"inputs": "RGB float32 in [0, 1], NCHW", "pad_multiple": 4},
    "mattingrefine": {"inputs": "RGB float32 in [0, 1], NCHW", "pad_multiple": 4},
    "vitmatte": {"inputs": "RGB normalised with mean = std = 0.5, trimap / 255 as 4th channel, NCHW",
                 "mean": 0.5, "std": 0.5, "pad_multiple": 32, "pad_mode": "zeros, bottom/right"},
}


def _import_paddle():
    warnings.filterwarnings("ignore", message="No ccache found")
    warnings.filterwarnings("ignore", message="Tensor do not have 'place' interface")  # harmless, from to_static
    import paddle

    return paddle


def bgmv2_options(model) -> dict:
    """The refine options a MattingBase/MattingRefine bakes into an exported graph (empty for MattingBase)."""
    refiner = getattr(model, "refiner", None)
    if refiner is None:
        return {}
    return dict(backbone_scale=model.backbone_scale, refine_mode=refiner.mode,
                refine_sample_pixels=refiner.sample_pixels, refine_threshold=refiner.threshold,
                refine_kernel_size=refiner.kernel_size, refine_prevent_oversampling=refiner.prevent_oversampling)


def input_shapes(model_type: str, input_size=None) -> list:
    """Input shapes of the exported graph, None = dynamic. BGMv2: ``[None, 3, None, None]`` ×2, or
    ``[None, 3, H, W]`` with a fixed ``input_size`` (multiples of 4; lets every resize use the integer-ratio form,
    several times faster under oneDNN). ViTMatte: ``[None, 4, H, W]``, ``input_size`` required (multiples of 32)."""
    names, channels, _ = SIGNATURES[model_type]
    multiple = PREPROCESSING[model_type]["pad_multiple"]
    if input_size is None and model_type != "vitmatte":
        return [[None, c, None, None] for c in channels]
    if input_size is None or len(input_size) != 2 or any(int(s) <= 0 or int(s) % multiple for s in input_size):
        raise UserError(f"{'ViTMatte exports at a fixed input size: give' if model_type == 'vitmatte' else 'give'} "
                        f"--input-size H W, positive multiples of {multiple} (got {input_size})")
    return [[None, c, int(input_size[0]), int(input_size[1])] for c in channels]


def export_model(model, model_type: str, save_dir, options: dict = None, input_size=None, onnx: bool = False) -> dict:
    """Export ``model`` to ``save_dir`` (created; files there of the same names are replaced).

    Args:
        model: a :class:`bgmatting.models.MattingBase`, :class:`~bgmatting.models.MattingRefine` or
            :class:`~bgmatting.models.ViTMatte` (its weights loaded); switched to eval mode.
        model_type: ``"mattingbase"``, ``"mattingrefine"`` or ``"vitmatte"``.
        save_dir: output directory.
        options: build options recorded in the metadata (e.g. ``backbone``; ViTMatte's architecture), so a runtime
            can check them; the refine options are read off the model.
        input_size: (H, W) fixed in the graph: required for ViTMatte; optional for BGMv2 (None = any size).
        onnx: also write ``model.onnx`` through paddle2onnx (opset 17).
    Returns:
        the metadata written to ``export.json``.
    Example:
        >>> export_model(MattingRefine("mobilenetv2"), "mattingrefine", "out/mbv2", {"backbone": "mobilenetv2"})
    """
    paddle = _import_paddle()
    if model_type not in SIGNATURES:
        raise UserError(f"unknown model type {model_type!r}; choose one of {', '.join(SIGNATURES)}")
    names, _, outputs = SIGNATURES[model_type]
    shapes = input_shapes(model_type, input_size)
    model.eval()
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=save_dir))
    try:
        _save_static(model, shapes, names, staging, gather=True)
        files = [f"{MODEL_PREFIX}.json", f"{MODEL_PREFIX}.pdiparams"]
        if onnx:  # onnxruntime has a fast native bilinear Resize: convert a trace with F.interpolate
            _save_static(model, shapes, names, staging / "onnx", gather=False)
            _write_onnx(staging / "onnx", staging / ONNX_NAME)
            files.append(ONNX_NAME)
        metadata = dict(format=FORMAT_VERSION, model_type=model_type,
                        options={**(options or {}), **(bgmv2_options(model) if model_type != "vitmatte" else {})},
                        inputs=[dict(name=n, shape=s) for n, s in zip(names, shapes)], outputs=list(outputs),
                        preprocessing=PREPROCESSING[model_type], files=files, paddle_version=paddle.__version__)
        (staging / METADATA_NAME).write_text(json.dumps(metadata, indent=2))
        for name in files + [METADATA_NAME]:  # metadata last: a directory with export.json is complete
            os.replace(staging / name, save_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def _save_static(model, shapes, names, directory: Path, gather: bool):
    """``paddle.jit.save`` of ``model`` into ``directory/model.*``; ``gather`` selects the oneDNN-safe resizes."""
    paddle = _import_paddle()
    from bgmatting.models.ops import gather_resize

    specs = [paddle.static.InputSpec(list(shape), "float32", name)  # InputSpec rewrites None → -1 in place
             for shape, name in zip(shapes, names)]
    with gather_resize(gather):
        static = paddle.jit.to_static(model, input_spec=specs, full_graph=True)
        paddle.jit.save(static, str(directory / MODEL_PREFIX))


def _write_onnx(directory: Path, target: Path):
    import paddle2onnx

    # No optimizer: the default, polygraphy, pip-installs onnx_graphsurgeon at run time, and paddle2onnx 2.1's
    # onnxoptimizer pass list has a typo that makes it fail; onnxruntime optimises the graph when loading it.
    paddle2onnx.export(str(directory / f"{MODEL_PREFIX}.json"), str(directory / f"{MODEL_PREFIX}.pdiparams"),
                       str(target), opset_version=ONNX_OPSET, enable_onnx_checker=True, optimize_tool="none")
    if not target.is_file():
        raise RuntimeError(f"paddle2onnx wrote no {target}")


def load_metadata(export_dir) -> dict:
    """Read ``export.json`` of an export directory.

    Raises:
        UserError: no such directory, not an export directory, or a metadata format this code does not know.
    """
    path = Path(export_dir) / METADATA_NAME
    if not Path(export_dir).is_dir():
        raise UserError(f"export directory {export_dir} does not exist")
    if not path.is_file():
        raise UserError(f"{export_dir} is not an export directory (no {METADATA_NAME}; write one with tools/export.py)")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from None
    if metadata.get("format") != FORMAT_VERSION or metadata.get("model_type") not in SIGNATURES:
        raise UserError(f"{path}: unknown export format {metadata.get('format')!r} / model type "
                        f"{metadata.get('model_type')!r}")
    return metadata


def is_export_dir(path) -> bool:
    """True when ``path`` is a directory holding ``export.json``."""
    return path is not None and (Path(path) / METADATA_NAME).is_file()


def load_model(model_type: str, checkpoint, options: dict = None):
    """Build a model and load a checkpoint for export.

    Args:
        model_type: ``"mattingbase"``, ``"mattingrefine"`` or ``"vitmatte"``.
        checkpoint: BGMv2: official ``.pth``, Paddle-port/our ``.pdparams`` or ``.safetensors``; ViTMatte: the
            official ``.pth``, Hugging Face ``model.safetensors`` or our ``.pdparams``.
        options: BGMv2 :class:`bgmatting.engine.predictor.Predictor` arguments (``backbone``, ``backbone_scale``,
            ``refine_*``); unused for ViTMatte (the architecture is read off the checkpoint).
    Returns:
        (model in eval mode, options to record in the export metadata).
    Raises:
        UserError: unknown model type, unreadable checkpoint, or one that does not fit the options.
    """
    if model_type == "vitmatte":
        _import_paddle()
        from bgmatting.convert.checkpoint_io import load_state_arrays
        from bgmatting.convert.vitmatte import convert_vitmatte, infer_vitmatte_config
        from bgmatting.models import ViTMatte

        state, _ = convert_vitmatte(load_state_arrays(checkpoint))
        config = infer_vitmatte_config(state)
        model = ViTMatte(**config)
        model.set_state_dict(state)
        model.eval()
        return model, config
    from bgmatting.engine.predictor import Predictor

    if model_type not in SIGNATURES:
        raise UserError(f"unknown model type {model_type!r}; choose one of {', '.join(SIGNATURES)}")
    options = dict(options or {})
    model = Predictor(model_type, checkpoint=checkpoint, **options).runner.model
    return model, {"backbone": options.get("backbone", "resnet50")}

"""Static export of both model families for Paddle Inference and onnxruntime.

:func:`export_model` writes, into one directory:
- ``model.json`` + ``model.pdiparams``: the ``paddle.jit.save`` program (Paddle 3.3 PIR format);
- ``model.onnx`` (optional): the same program converted by paddle2onnx;
- ``export.json``: what a runtime needs besides the program — model type, the options baked into the graph,
  input/output names and shapes, pre-processing.

BackgroundMattingV2 exports with dynamic batch, height and width (or a fixed size, faster for Paddle Inference);
its refine options (mode, sample pixels, threshold, kernel size) are fixed at export. The refiner's static path
computes each patch from its own pixels (windows gathered from the coarse features and the image, per-patch
interpolation matrices) and adds the refined patches back with ``scatter_nd_add``, always refining at least one
(dummy, weight 0) patch; see :class:`bgmatting.models.bgmv2.refiner.Refiner`. BatchNorm layers are folded into the
preceding convolutions before tracing (:func:`fold_batch_norms`). In ``model.json`` every bilinear resize is a
``trilinear`` one over a depth-1 axis (oneDNN-safe, see :mod:`bgmatting.models.ops`); ``model.onnx`` is converted
from a second trace with ``F.interpolate``, as onnxruntime's native Resize is fast.
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
ONNX_CHANNEL_MULTIPLE = 16  # onnxruntime's NCHWc block with AVX-512 (8 with AVX2: 16 is a multiple)

def _import_paddle():
    warnings.filterwarnings("ignore", message="No ccache found")
    warnings.filterwarnings("ignore", message="Tensor do not have 'place' interface")  # harmless, from to_static
    import paddle

    return paddle


def input_shapes(signature, input_size=None) -> list:
    """Input shapes of the exported graph, None = dynamic: ``[None, C, None, None]`` per input, or
    ``[None, C, H, W]`` with a fixed ``input_size`` (multiples of the kind's pad multiple; BGMv2: lets every resize
    use the integer-ratio form, several times faster under oneDNN). ``signature.fixed_size`` kinds (ViTMatte)
    need ``input_size``.

    Args:
        signature: the kind's :class:`bgmatting.engine.kinds.ExportSignature`.
        input_size: (H, W) or None.
    """
    multiple = signature.preprocessing["pad_multiple"]
    if input_size is None and not signature.fixed_size:
        return [[None, c, None, None] for c in signature.channels]
    if input_size is None or len(input_size) != 2 or any(int(s) <= 0 or int(s) % multiple for s in input_size):
        raise UserError(f"{'this model exports at a fixed input size: give' if signature.fixed_size else 'give'} "
                        f"--input-size H W, positive multiples of {multiple} (got {input_size})")
    return [[None, c, int(input_size[0]), int(input_size[1])] for c in signature.channels]


def export_model(model, signature, model_type: str, save_dir, options: dict = None, input_size=None,
                 onnx: bool = False, write_extra=None) -> dict:
    """Export ``model`` to ``save_dir`` (created; files there of the same names are replaced).

    Args:
        model: a Paddle layer (weights loaded); switched to eval mode.
        signature: its kind's :class:`bgmatting.engine.kinds.ExportSignature` (inputs, outputs, pre-processing).
        model_type: the kind's name, recorded for the runtimes.
        save_dir: output directory.
        options: the options baked into the graph (recorded so that a runtime can refuse other requests).
        input_size: (H, W) fixed in the graph: required when ``signature.fixed_size``; else optional.
        onnx: also write ``model.onnx`` through paddle2onnx (opset 17).
        write_extra: ``folder -> [file names]``: writes further files into the staging folder (e.g. the model
            card, ``model.yaml``), moved in with the rest.
    Returns:
        the metadata written to ``export.json``.
    Example:
        >>> export_model(model, get_kind("mattingrefine").export, "mattingrefine", "out/mbv2", settings.options)
    """
    paddle = _import_paddle()
    shapes = input_shapes(signature, input_size)
    model.eval()
    traced = fold_batch_norms(model)
    widened = pad_conv_channels(traced) if onnx else None  # copied before a trace leaves graph values in the layers
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=save_dir))
    try:
        _save_static(traced, shapes, signature.inputs, staging, gather=True)
        files = [f"{MODEL_PREFIX}.json", f"{MODEL_PREFIX}.pdiparams"]
        if onnx:  # onnxruntime has a fast native bilinear Resize: convert a trace with F.interpolate
            _save_static(widened, shapes, signature.inputs, staging / "onnx", gather=False)
            _write_onnx(staging / "onnx", staging / ONNX_NAME)
            files.append(ONNX_NAME)
        metadata = dict(format=FORMAT_VERSION, model_type=model_type, options=dict(options or {}),
                        inputs=[dict(name=n, shape=s) for n, s in zip(signature.inputs, shapes)],
                        outputs=list(signature.outputs), preprocessing=dict(signature.preprocessing), files=files,
                        paddle_version=paddle.__version__)
        if write_extra is not None:
            files += list(write_extra(staging))
        (staging / METADATA_NAME).write_text(json.dumps(metadata, indent=2, default=list))
        for name in files + [METADATA_NAME]:  # metadata last: a directory with export.json is complete
            os.replace(staging / name, save_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def fold_batch_norms(model):
    """A copy of ``model`` (eval mode) with every BatchNorm2D that follows a Conv2D folded into that conv's weights
    and bias (the BatchNorm becomes an identity). Same function to float32 rounding.

    Why: Paddle Inference 3.3.1's conv+BN fusion leaves the weight scaling as ``multiply`` ops that run on every
    call (~50 of them for BGMv2, ~15 % of its run time under oneDNN). Pairs are found as consecutive children of a
    ``Sequential`` (torchvision's layout: ASPP, MobileNetV2, ResNet's downsample) and as ``convN``/``bnN`` siblings
    (ResNet blocks, the decoder, the refiner); forward code is unchanged.
    """
    import copy

    import numpy as np

    paddle = _import_paddle()
    nn = paddle.nn
    folded = copy.deepcopy(model)
    folded.eval()

    def fold(conv, norm):
        scale = norm.weight.numpy() / np.sqrt(norm._variance.numpy() + norm._epsilon)
        weight = conv.weight.numpy() * scale.reshape([-1] + [1] * (conv.weight.ndim - 1))
        bias = conv.bias.numpy() if conv.bias is not None else np.zeros(weight.shape[0], np.float32)
        bias = (bias - norm._mean.numpy()) * scale + norm.bias.numpy()
        conv.weight.set_value(weight.astype(np.float32))
        if conv.bias is None:
            conv.bias = conv.create_parameter([weight.shape[0]], is_bias=True)
        conv.bias.set_value(bias.astype(np.float32))

    def foldable(conv, norm):
        return (isinstance(conv, nn.Conv2D) and isinstance(norm, nn.BatchNorm2D)
                and conv.weight.shape[0] == norm.weight.shape[0] and getattr(conv, "_data_format", "NCHW") == "NCHW")

    for layer in list(folded.sublayers(include_self=True)):
        children = list(layer.named_children())
        if isinstance(layer, nn.Sequential):
            for (_, conv), (name, norm) in zip(children, children[1:]):
                if foldable(conv, norm):
                    fold(conv, norm)
                    layer._sub_layers[name] = nn.Identity()
            continue
        named = dict(children)
        for name, norm in children:
            if name.startswith("bn") and foldable(named.get("conv" + name[2:]), norm):
                fold(named["conv" + name[2:]], norm)
                setattr(layer, name, nn.Identity())
    return folded


def pad_conv_channels(model, multiple: int = ONNX_CHANNEL_MULTIPLE):
    """A copy of ``model`` whose dense convolutions read a multiple of ``multiple`` input channels: the input is
    extended with copies of its first channels whose weights are 0, so the outputs are the same to the bit (each
    extra term is an exact 0).

    Why: onnxruntime runs a convolution in its blocked NCHWc layout (one GEMM over the whole batch) only when the
    input channels are a multiple of the CPU's block (16 with AVX-512); otherwise it falls back to an im2col + GEMM
    per image. BGMv2 has three such convolutions — the decoder's last (54 channels, at 1/4 resolution) and the
    refiner's conv1 (42) and conv3 (22), which run on thousands of 8×8 patches — and they took ~60 % of the HD
    MobileNetV2 run time in onnxruntime's profile (2 threads). Convolutions with at most 16 input channels (an image;
    the refiner's conv4, fed by a blocked conv) and those with a multiple of 8 (fed by a blocked conv, which pads
    them itself) are left as they are: widening them would only add a copy.
    """
    import copy

    import numpy as np

    paddle = _import_paddle()
    nn = paddle.nn

    class PaddedConv(nn.Layer):
        def __init__(self, conv, extra):
            super().__init__()
            self.conv, self.extra = conv, extra

        def forward(self, x):
            return self.conv(paddle.concat([x, x[:, :self.extra]], axis=1))

    padded = copy.deepcopy(model)
    for layer in list(padded.sublayers(include_self=True)):
        for name, conv in list(layer.named_children()):
            if not isinstance(conv, nn.Conv2D) or conv._groups != 1 or getattr(conv, "_data_format", "NCHW") != "NCHW":
                continue
            channels = conv.weight.shape[1]
            extra = -channels % multiple
            if channels <= 16 or channels % 8 == 0:
                continue
            weight = conv.weight.numpy()
            conv.weight = conv.create_parameter([weight.shape[0], channels + extra, *weight.shape[2:]])
            conv.weight.set_value(np.concatenate([weight, np.zeros_like(weight[:, :extra])], axis=1))
            conv._in_channels = channels + extra
            layer._sub_layers[name] = PaddedConv(conv, extra)
    return padded


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
    if (not isinstance(metadata, dict) or metadata.get("format") != FORMAT_VERSION
            or not isinstance(metadata.get("model_type"), str) or not isinstance(metadata.get("inputs"), list)):
        raise UserError(f"{path}: unknown export format "
                        f"{metadata.get('format') if isinstance(metadata, dict) else metadata!r}")
    return metadata

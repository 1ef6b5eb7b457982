"""Export a model to a static graph for Paddle Inference (and ONNX) with the settings a predictor needs.

Example:
    python tools/export.py --model-checkpoint weights/bgmv2_mobilenetv2 --save-dir export/mbv2_hd --onnx --check
    python tools/export.py --model-checkpoint output/demo/stage2 --model-refine-sample-pixels 320000 \
        --model-backbone-scale 0.125 --save-dir export/demo_4k
    python tools/export.py --model-checkpoint vitmatte-small --input-size 1024 1024 --save-dir export/vitmatte_s_1024
    python predict.py --backend inference --model-checkpoint export/mbv2_hd --src src.png --bgr bgr.png \
        --output-dir out --output-types com

The model flags are predict.py's (``--model-checkpoint``, PaddleSeg's ``--model-path`` is an alias; ``--config``;
``--model-type``, ``--model-backbone`` and the refine options default to the checkpoint's). Writes
SAVE_DIR/model.json + model.pdiparams (paddle.jit.save, PIR), export.json (model type, options baked into the
graph, inputs/outputs, pre-processing), model.yaml (the model card) and, with --onnx, model.onnx.
BackgroundMattingV2 graphs take any batch/height/width (H, W multiples of 4), or a fixed --input-size (faster:
integer-ratio resizes); the refine options are fixed at export. ViTMatte graphs have a fixed --input-size (the
processor pads to multiples of 32). --check runs the export against the dygraph model.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message="No ccache found")

from bgmatting.errors import UserError, cli_main  # noqa: E402

def parse_args(argv=None):
    from bgmatting.cli_help import HelpFormatter
    from bgmatting.engine.model_args import add_model_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_model_arguments(parser, checkpoint_alias="--model-path")
    parser.add_argument("--save-dir", required=True,
                        help="the export folder: model.json + model.pdiparams (+ model.onnx), export.json, model.yaml")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="fixed input size: required for ViTMatte (multiples of 32); optional for BGMv2 "
                             "(multiples of 4; faster under oneDNN, but then only that size runs)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (paddle2onnx, opset 17)")
    parser.add_argument("--check", action="store_true",
                        help="run Paddle Inference (and onnxruntime) on random inputs against the dygraph model")
    return parser.parse_args(argv)


def check_export(model, signature, save_dir, onnx, input_size):
    """Max |difference| of each runtime against dygraph on one random input: {runtime: float}."""
    import numpy as np
    import paddle

    from bgmatting.engine.backends import open_runtime

    rng = np.random.default_rng(0)
    size = input_size or (128, 160)
    if len(signature.inputs) == 1:
        inputs = [rng.uniform(-1, 1, (1, signature.channels[0], *size)).astype(np.float32)]
    else:
        src = rng.random((1, signature.channels[0], *size), dtype=np.float32)
        inputs = [src, np.clip(src + 0.2 * rng.random(src.shape, dtype=np.float32), 0, 1)]
    with paddle.no_grad():
        expected = model(*[paddle.to_tensor(x) for x in inputs])
    expected = [t.numpy() for t in (expected if isinstance(expected, (tuple, list)) else [expected])]
    return {name: max(float(np.abs(a - b).max()) for a, b in zip(open_runtime(name, save_dir)(*inputs), expected))
            for name in (("inference", "onnx") if onnx else ("inference",))}


@cli_main
def main(argv=None):
    args = parse_args(argv)
    from bgmatting.engine.exporting import export_settings
    from bgmatting.engine.loading import resolve_settings
    from bgmatting.engine.model_args import requested_options

    if os.path.exists(args.save_dir) and not os.path.isdir(args.save_dir):
        raise UserError(f"--save-dir {args.save_dir} exists and is not a directory")
    requested = requested_options(args)
    requested.pop("device")
    if requested["checkpoint"] is None:
        raise UserError("give the model to export: --model-checkpoint (or --model-path)")
    if args.model_type is not None:  # check the size before reading the weights
        from bgmatting.engine.kinds import get_kind
        from bgmatting.export import input_shapes

        if get_kind(args.model_type).export is not None:
            input_shapes(get_kind(args.model_type).export, args.input_size)
    from bgmatting.engine.predictor import set_device

    set_device(args.device)  # the model is built (and traced) there; gpu without CUDA → one line
    settings = resolve_settings(**requested)
    model, metadata = export_settings(settings, args.save_dir, args.input_size, args.onnx)
    print(f"exported {settings.kind.name} to {args.save_dir}: {', '.join(metadata['files'])} + export.json")
    if args.check:
        for name, difference in check_export(model, settings.kind.export, args.save_dir, args.onnx,
                                             args.input_size).items():
            print(f"check {name}: max |difference| vs dygraph = {difference:.2e}")


if __name__ == "__main__":
    main()

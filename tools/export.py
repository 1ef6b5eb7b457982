"""Export a model to a static graph for Paddle Inference (and ONNX) with the metadata a predictor needs.

Example:
    python tools/export.py --model-type mattingrefine --model-backbone mobilenetv2 \
        --model-path pytorch_mobilenetv2.pth --save-dir export/mbv2_hd --onnx --check
    python tools/export.py --model-type vitmatte --model-path vitmatte-small/model.safetensors \
        --input-size 1024 1024 --save-dir export/vitmatte_s_1024
    python predict.py --backend inference --model-checkpoint export/mbv2_hd --model-type mattingrefine \
        --model-backbone mobilenetv2 --src src.png --bgr bgr.png --output-dir out --output-types com

Writes SAVE_DIR/model.json + model.pdiparams (paddle.jit.save, PIR), export.json (model type, options baked into
the graph, inputs/outputs, pre-processing) and, with --onnx, model.onnx. BackgroundMattingV2 graphs take any
batch/height/width (H, W multiples of 4), or a fixed --input-size (faster: integer-ratio resizes); the refine
options are fixed at export. ViTMatte graphs have a fixed --input-size (the processor pads to multiples of 32). --check runs the export against the dygraph model.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message="No ccache found")

from bgmatting.errors import UserError, cli_main  # noqa: E402

MODEL_TYPES = ("mattingbase", "mattingrefine", "vitmatte")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", required=True, choices=MODEL_TYPES)
    parser.add_argument("--model-path", required=True,
                        help="checkpoint: BGMv2 .pth/.pdparams/.safetensors; ViTMatte official .pth, HF .safetensors")
    parser.add_argument("--save-dir", required=True)
    parser.add_argument("--model-backbone", default="resnet50", choices=["resnet50", "resnet101", "mobilenetv2"])
    parser.add_argument("--model-backbone-scale", type=float, default=0.25)
    parser.add_argument("--model-refine-mode", default="sampling", choices=["full", "sampling", "thresholding"])
    parser.add_argument("--model-refine-sample-pixels", type=int, default=80_000)
    parser.add_argument("--model-refine-threshold", type=float, default=0.1)
    parser.add_argument("--model-refine-kernel-size", type=int, default=3, choices=[1, 3])
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="fixed input size: required for ViTMatte (multiples of 32); optional for BGMv2 "
                             "(multiples of 4; faster under oneDNN, but then only that size runs)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (paddle2onnx, opset 17)")
    parser.add_argument("--check", action="store_true",
                        help="run Paddle Inference (and onnxruntime) on random inputs against the dygraph model")
    return parser.parse_args(argv)


def bgmv2_options(args) -> dict:
    """Predictor keyword arguments from the official-style flags."""
    return dict(backbone=args.model_backbone, backbone_scale=args.model_backbone_scale,
                refine_mode=args.model_refine_mode, refine_sample_pixels=args.model_refine_sample_pixels,
                refine_threshold=args.model_refine_threshold, refine_kernel_size=args.model_refine_kernel_size)


def check_export(model, model_type, save_dir, onnx, input_size):
    """Max |difference| of each runtime against dygraph on one random input: {runtime: float}."""
    import numpy as np
    import paddle

    from bgmatting.engine.backends import open_runtime

    rng = np.random.default_rng(0)
    if model_type == "vitmatte":
        inputs = [rng.uniform(-1, 1, (1, 4, *input_size)).astype(np.float32)]
    else:
        src = rng.random((1, 3, *(input_size or (128, 160))), dtype=np.float32)
        inputs = [src, np.clip(src + 0.2 * rng.random(src.shape, dtype=np.float32), 0, 1)]
    with paddle.no_grad():
        expected = model(*[paddle.to_tensor(x) for x in inputs])
    expected = [t.numpy() for t in (expected if isinstance(expected, (tuple, list)) else [expected])]
    return {name: max(float(np.abs(a - b).max()) for a, b in zip(open_runtime(name, save_dir)(*inputs), expected))
            for name in (("inference", "onnx") if onnx else ("inference",))}


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.model_path):
        raise UserError(f"--model-path {args.model_path} does not exist")
    if os.path.exists(args.save_dir) and not os.path.isdir(args.save_dir):
        raise UserError(f"--save-dir {args.save_dir} exists and is not a directory")
    if args.model_type == "vitmatte" and args.input_size is None:
        raise UserError("ViTMatte exports at a fixed size: give --input-size H W (multiples of 32)")
    from bgmatting.export import export_model, input_shapes, load_model

    input_shapes(args.model_type, args.input_size)  # validate before loading the weights
    model, options = load_model(args.model_type, args.model_path,
                                None if args.model_type == "vitmatte" else bgmv2_options(args))
    metadata = export_model(model, args.model_type, args.save_dir, options, input_size=args.input_size,
                            onnx=args.onnx)
    print(f"exported {args.model_type} to {args.save_dir}: {', '.join(metadata['files'])} + export.json")
    if args.check:
        for name, difference in check_export(model, args.model_type, args.save_dir, args.onnx,
                                             args.input_size).items():
            print(f"check {name}: max |difference| vs dygraph = {difference:.2e}")


if __name__ == "__main__":
    main()

"""Convert official checkpoints to Paddle ``.pdparams``.

Example:
    python tools/convert_weights.py --src pytorch_resnet50.pth --dst weights/bgmv2_resnet50.pdparams
    python tools/convert_weights.py --src vitmatte-small/model.safetensors --dst weights/vitmatte_s.pdparams

Reads PyTorch zip checkpoints without executing code from them (a restricted unpickler, torch not needed),
Hugging Face ``.safetensors`` and the earlier Paddle port's ``.pdparams``; refuses missing/unexpected keys and
shape mismatches. The result loads with ``model.set_state_dict(paddle.load(DST))``.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message="No ccache found")

from bgmatting.errors import UserError, cli_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="official checkpoint (.pth, .safetensors, .pdparams)")
    parser.add_argument("--dst", required=True, help="output .pdparams")
    parser.add_argument("--backbone", choices=["resnet50", "resnet101", "mobilenetv2"],
                        help="BackgroundMattingV2: expected backbone (inferred from the keys when omitted)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    from bgmatting.convert import convert_checkpoint, save_state

    if not args.dst.endswith(".pdparams"):
        raise UserError(f"--dst must end with .pdparams, got {args.dst}")
    state, info = convert_checkpoint(args.src, args.backbone)
    save_state(state, args.dst)
    details = ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("tensors", "parameters"))
    print(f"converted {args.src} -> {args.dst}: {details}, {info['tensors']} tensors, "
          f"{info['parameters'] / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()

"""Convert official checkpoints to Paddle weights that carry their settings (a model card).

Example:
    python tools/convert_weights.py --src pytorch_resnet50.pth --dst weights/bgmv2_resnet50
    python tools/convert_weights.py --src pytorch_resnet50.pth --dst weights/bgmv2_resnet50.pdparams
    python tools/convert_weights.py --src vitmatte-small --dst weights/vitmatte_s

Reads PyTorch zip checkpoints without executing code from them (a restricted unpickler, torch not needed),
Hugging Face folders / ``.safetensors`` and the earlier Paddle port's ``.pdparams``; refuses missing/unexpected
keys and shape mismatches. ``--dst FOLDER`` writes FOLDER/model.pdparams + FOLDER/model.yaml; ``--dst
NAME.pdparams`` writes NAME.pdparams + NAME.yaml. Either is then enough for every tool:
``python predict.py --model-checkpoint weights/bgmv2_resnet50 --src … --bgr …`` (no other model flag needed).
The weights also load with ``model.set_state_dict(paddle.load(".../model.pdparams"))``.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message="No ccache found")

from bgmatting.errors import UserError, cli_main  # noqa: E402

#: bumped when the conversion rules change (recorded in each card's provenance)
CONVERTER_VERSION = 2


def parse_args(argv=None):
    from bgmatting.cli_help import HelpFormatter
    from bgmatting.models.backbones import backbone_names

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--src", required=True,
                        help="official checkpoint (.pth, .safetensors, .pdparams) or a Hugging Face model folder")
    parser.add_argument("--dst", required=True, help="output folder, or a NAME.pdparams file (+ NAME.yaml)")
    parser.add_argument("--backbone", choices=backbone_names(),
                        help="BackgroundMattingV2: expected backbone (inferred from the keys when omitted)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    from bgmatting.convert import convert_checkpoint
    from bgmatting.engine.loading import resolve_settings, settings_card
    from bgmatting.engine.model_writer import save_model

    settings = resolve_settings(args.src)
    found = settings.options.get("backbone")
    if args.backbone is not None and found != args.backbone:
        raise UserError(f"--backbone {args.backbone} given but the checkpoint holds a {found or settings.kind.name} "
                        "model")
    state, info = convert_checkpoint(settings.source.weights)
    card = settings_card(settings, "model.pdparams", {"tool": "convert_weights", "source": os.path.abspath(args.src),
                                                      "converter_version": CONVERTER_VERSION})
    weights = save_model(state, card, args.dst)
    details = ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("tensors", "parameters"))
    print(f"converted {args.src} -> {weights}: {details}, {info['tensors']} tensors, "
          f"{info['parameters'] / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()

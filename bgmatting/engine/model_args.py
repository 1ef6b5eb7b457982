"""The ``--model-*`` command-line flags shared by predict.py, eval.py and serve.py (official BackgroundMattingV2
names and defaults, plus the trimap-model flags), so that every tool builds its :class:`Predictor` the same way."""
from bgmatting.engine import vitmatte_kind
from bgmatting.engine.predictor import BGMV2_BACKBONES, MODEL_KINDS, REFINE_MODES


def add_model_arguments(parser, *, official_required: bool = False, title: str = "model"):
    """Add the model flags to ``parser`` in their own group and return the group (callers may add more to it).

    Args:
        parser: an ``argparse.ArgumentParser``.
        official_required: as the official inference scripts, ``--model-type`` and ``--model-checkpoint`` are
            required (predict.py); otherwise they default to ``mattingrefine`` / no checkpoint (eval.py, serve.py,
            which offer baselines or random weights).
        title: the group's title in ``--help``.
    Returns:
        the argparse group, whose values ``Predictor.from_args(args)`` reads.
    """
    group = parser.add_argument_group(title)
    if official_required:
        group.add_argument("--model-type", required=True, choices=sorted(MODEL_KINDS))
    else:
        group.add_argument("--model-type", default="mattingrefine", choices=sorted(MODEL_KINDS))
    group.add_argument("--model-backbone", choices=BGMV2_BACKBONES, default=None if official_required else "resnet50",
                       help="BackgroundMattingV2 backbone" + (" (required for BGMv2 models)" if official_required
                                                             else " (default resnet50)"))
    group.add_argument("--model-backbone-scale", type=float, default=0.25)
    group.add_argument("--model-checkpoint", required=official_required,
                       help="checkpoint: official .pth, .pdparams or .safetensors")
    group.add_argument("--model-refine-mode", default="sampling", choices=REFINE_MODES)
    group.add_argument("--model-refine-sample-pixels", type=int, default=80_000)
    group.add_argument("--model-refine-threshold", type=float, default=0.7)
    group.add_argument("--model-refine-kernel-size", type=int, default=3, choices=[1, 3])
    vitmatte_kind.add_arguments(group)
    group.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    return group

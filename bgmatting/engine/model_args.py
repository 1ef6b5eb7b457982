"""The ``--model-*`` command-line flags shared by every tool (predict.py, eval.py, serve.py, tools/export.py,
tools/benchmark.py), generated from the registry so that a kind's options have one flag name everywhere.

Every flag defaults to None = "not asked": the value then comes from the model itself (its card, its weights or
an export's metadata), else ``--config`` (a training config's ``model:`` section), else the kind's default. The
official BackgroundMattingV2 flag names are kept (``--model-type``, ``--model-backbone``,
``--model-backbone-scale``, ``--model-checkpoint``, ``--model-refine-*``).
"""
from bgmatting.engine.kinds import KINDS, kind_names
from bgmatting.models.backbones import backbone_names


def _choices(choices):
    return backbone_names() if choices == "backbones" else choices


def model_flags() -> dict:
    """``{option: (type, choices, help)}`` over every registered kind (first declaration wins)."""
    flags = {}
    for kind in KINDS.values():
        for name, spec in kind.flags.items():
            flags.setdefault(name, spec)
    return flags


def add_model_arguments(parser, *, title: str = "model", checkpoint_alias: str = None):
    """Add the model flags to ``parser`` in their own group and return the group (callers may add more to it).

    Args:
        parser: an ``argparse.ArgumentParser``.
        title: the group's title in ``--help``.
        checkpoint_alias: another name for ``--model-checkpoint`` (tools/export.py keeps PaddleSeg's
            ``--model-path``).
    Returns:
        the argparse group, whose values :func:`requested_options` reads.
    """
    group = parser.add_argument_group(title)
    group.add_argument("--model-type", choices=kind_names(), default=None,
                       help="model kind (read off the checkpoint when omitted)")
    names = ["--model-checkpoint"] + ([checkpoint_alias] if checkpoint_alias else [])
    group.add_argument(*names, dest="model_checkpoint", default=None,
                       help="a model folder, training run folder, export folder, Hugging Face folder, or a weights "
                            "file (official .pth, .pdparams, .safetensors)")
    group.add_argument("--config", default=None,
                       help="training config YAML whose model: section sets the model options (as PaddleSeg's tools)")
    for name, (kind_type, choices, help_text) in model_flags().items():
        group.add_argument("--model-" + name.replace("_", "-"), dest=f"model_{name}", type=kind_type,
                           choices=_choices(choices), default=None, help=help_text)
    group.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                       help="where the model runs (gpu needs a CUDA build of Paddle)")
    return group


def requested_options(args) -> dict:
    """Predictor keyword arguments from parsed flags: ``model_type``, ``checkpoint``, ``config``, ``device`` and
    every ``--model-<option>`` (None where not given)."""
    options = {name: getattr(args, f"model_{name}", None) for name in model_flags()}
    return dict(model_type=args.model_type, checkpoint=args.model_checkpoint, config=args.config,
                device=args.device, **options)


def settings_from_args(args):
    """The :class:`bgmatting.engine.loading.ModelSettings` the flags ask for (checkpoint, config and options
    reconciled; the weights are not loaded yet), so a tool can check its inputs against the kind first."""
    from bgmatting.engine.loading import resolve_settings

    requested = requested_options(args)
    requested.pop("device")
    return resolve_settings(**requested)


def describe(settings) -> str:
    """One line naming the kind and its options, e.g. for a tool's start-up message."""
    options = ", ".join(f"{k}={v}" for k, v in settings.options.items()
                        if k != "vitmatte_config" and v is not None)
    return f"{settings.kind.name} ({options})"

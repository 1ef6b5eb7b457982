"""From a path and the user's requests to a model with its settings: the one place they are reconciled.

Settings come from, lowest precedence first: the kind's defaults, the model card (or what the weights show),
a training config given with ``--config`` (its ``model:`` section), and the options the user asked for. Options
the weights fix (the backbone, the refiner's kernel size, ViTMatte's architecture) and options an export baked
into its graph cannot change: asking for another value is one error naming the recorded and the requested value.

Example:
    >>> settings = resolve_settings("output/demo/stage2", refine_mode="full")
    >>> model = build_model(settings)           # Paddle layer, weights loaded, eval mode
    >>> model = load_model("pytorch_resnet50.pth")   # the same in one call; model.settings says what it is
"""
from dataclasses import dataclass
from typing import Optional

from bgmatting.engine.kinds import get_kind, recognise_weights
from bgmatting.engine.model_source import ModelSource, locate
from bgmatting.errors import UserError

DEFAULT_KIND = "mattingrefine"


@dataclass
class ModelSettings:
    """A model kind with every option resolved, and where its weights are.

    Attributes:
        kind: the :class:`~bgmatting.engine.kinds.ModelKind`.
        options: every option of the kind (``kind.options`` keys), resolved.
        source: the located checkpoint, or None (random weights).
        recorded_kind: the kind the checkpoint holds (may differ: MattingBase from a MattingRefine checkpoint).
    """

    kind: object
    options: dict
    source: Optional[ModelSource] = None
    recorded_kind: Optional[str] = None


def _flag(name: str) -> str:
    return "--model-" + name.replace("_", "-")


def _recorded(source: ModelSource) -> tuple:
    """(kind name, options) a checkpoint records: its card, or what its weights show."""
    if source.card is not None:
        card = source.card
        options = dict(card.get("options") or {})
        if "backbone" in card:
            options["backbone"] = card["backbone"]
        return card["kind"], options
    if source.export_dir is not None:
        from bgmatting.export import load_metadata

        metadata = load_metadata(source.export_dir)
        return metadata["model_type"], dict(metadata.get("options") or {})
    return recognise_weights(source.arrays(), source.path)


def _check_kind(kind, recorded_kind: str, source: ModelSource) -> None:
    if kind.name == recorded_kind or recorded_kind in kind.accepts:
        return
    if recorded_kind == "mattingbase" and kind.name in ("mattingrefine", "bgmv2+vitmatte"):
        raise UserError(f"checkpoint {source.path} has no refiner weights (a MattingBase checkpoint?); "
                        "use --model-type mattingbase")
    if kind.name == "vitmatte":
        raise UserError(f"checkpoint {source.path} is not a ViTMatte checkpoint (it holds a {recorded_kind} model)")
    raise UserError(f"checkpoint {source.path} holds a {recorded_kind} model but --model-type is {kind.name}")


def _check_fixed(kind, recorded: dict, requested: dict, source: ModelSource) -> None:
    """Options the weights fix, and (for exports) options baked into the graph, must not be asked otherwise."""
    locked = set(kind.fixed) | (set(kind.baked) if source.export_dir is not None else set())
    for name in sorted(locked & set(requested) & set(recorded)):
        if requested[name] == recorded[name]:
            continue
        if name == "backbone":
            raise UserError(f"checkpoint {source.path} holds a {recorded[name]} model but {_flag(name)} is "
                            f"{requested[name]}")
        if source.export_dir is not None:
            raise UserError(f"export {source.path} was made with {name.replace('_', ' ')} {recorded[name]!r} but "
                            f"{_flag(name)} {requested[name]!r} was asked for (options baked into an export cannot "
                            "change: export again with the new value, or use the checkpoint)")
        raise UserError(f"checkpoint {source.path} holds {name.replace('_', ' ')} {recorded[name]} but "
                        f"{_flag(name)} is {requested[name]}")


def _further_recorded(kind, asked: dict) -> dict:
    """The options recorded by the further checkpoints a kind takes (the cascade's ViTMatte architecture)."""
    recorded = {}
    for name in kind.checkpoint_options:
        if asked.get(name) is not None:
            _, options = _recorded(locate(asked[name]))
            recorded.update({k: v for k, v in options.items() if k in kind.options and k not in kind.fixed})
    return recorded


def config_options(config_path, model_type: str = None) -> tuple:
    """(kind name, options) from a training config's ``model:`` section (``--config FILE``)."""
    from bgmatting.engine.model_card import training_card

    from bgmatting.config import FREE_FORM, load_config

    raw = load_config(config_path, None, {FREE_FORM: None})
    model_cfg = raw.get("model")
    if not isinstance(model_cfg, dict) or "type" not in model_cfg:
        raise UserError(f"--config {config_path} has no model section with a type")
    card = training_card(model_cfg, {"tool": "config", "source": str(config_path)})
    options = dict(card["options"])
    if "backbone" in card:
        options["backbone"] = card["backbone"]
    return card["kind"], options


def resolve_settings(checkpoint=None, model_type: str = None, config=None, **requested) -> ModelSettings:
    """Reconcile the checkpoint's settings, a training config and the requested options.

    Args:
        checkpoint: any ``--model-checkpoint`` form (:func:`bgmatting.engine.model_source.locate`), or None.
        model_type: requested kind, or None (the checkpoint's, else the config's, else ``mattingrefine``).
        config: a training config YAML whose ``model:`` section gives options, or None.
        **requested: options the user asked for (None values = not asked).
    Returns:
        :class:`ModelSettings`.
    Raises:
        UserError: unknown kind or option, a checkpoint of another kind, or a fixed/baked option asked otherwise.
    """
    requested = {k: v for k, v in requested.items() if v is not None}
    source = locate(checkpoint) if checkpoint is not None else None
    recorded_kind, recorded = _recorded(source) if source is not None else (None, {})
    config_kind, configured = config_options(config) if config is not None else (None, {})
    kind = get_kind(model_type or config_kind or recorded_kind or DEFAULT_KIND)
    unknown = sorted(set(requested) - set(kind.options))
    if unknown:
        raise UserError(f"{kind.name} takes no option {', '.join(unknown)}")
    if source is not None:
        _check_kind(kind, recorded_kind, source)
        _check_fixed(kind, recorded, {**configured, **requested}, source)
    further = _further_recorded(kind, {**configured, **requested})
    options = dict(kind.options)
    for layer in (recorded, further, configured, requested):
        options.update({k: v for k, v in layer.items() if k in kind.options})
    return ModelSettings(kind, options, source, recorded_kind)


def _extra_arrays(settings: ModelSettings) -> dict:
    """Raw arrays of the further checkpoints a kind takes (the cascade's ViTMatte weights)."""
    extra = {}
    for name in settings.kind.checkpoint_options:
        path = settings.options[name]
        if path is None:
            raise UserError(f"{settings.kind.name} needs {_flag(name)} (further weights)")
        source = locate(path)
        if source.export_dir is not None:
            raise UserError(f"{_flag(name)} {path} is an export; {settings.kind.name} needs weights")
        extra[name] = source.arrays()
    return extra


def part_settings(settings: ModelSettings) -> dict:
    """``{attribute: ModelSettings}`` of the parts of a kind made of several models (``kind.parts``: the cascade's
    ``bgmv2`` from the main checkpoint and ``vitmatte`` from ``--model-vitmatte-checkpoint``), each resolved as if
    asked on its own; the static runtimes export and run them separately."""
    _check_further_weights(settings)
    parts = {}
    for attribute, (kind_name, options, weights_option) in settings.kind.parts(settings.options).items():
        path = settings.options[weights_option] if weights_option else \
            (settings.source.path if settings.source is not None else None)
        if weights_option and path is None and settings.source is not None:
            raise UserError(f"{settings.kind.name} needs {_flag(weights_option)} (further weights)")
        parts[attribute] = resolve_settings(path, kind_name, **options)
    return parts


def _check_further_weights(settings: ModelSettings) -> None:
    if settings.source is None and settings.kind.checkpoint_options and \
            any(settings.options[n] for n in settings.kind.checkpoint_options):
        raise UserError(f"{settings.kind.name}: give --model-checkpoint too")


def build_model(settings: ModelSettings):
    """Build the model of ``settings`` and load its weights (random weights without a checkpoint).

    Returns:
        the ``paddle.nn.Layer`` in eval mode, with ``.settings`` (the :class:`ModelSettings`).
    Raises:
        UserError: an export (it has no dygraph weights), weights that do not fit, bad option values.
    """
    source = settings.source
    if source is not None and source.export_dir is not None:
        raise UserError(f"{source.path} is an export (a static program): run it with --backend inference/onnx, or "
                        "give the checkpoint it was exported from")
    state = None
    if source is not None:
        state = settings.kind.read(source.arrays(), settings.options, _extra_arrays(settings))
    _check_further_weights(settings)
    model = settings.kind.build(settings.options)
    if state is not None:
        settings.kind.load(model, state, settings.options)
    model.eval()
    model.settings = settings
    return model


def load_model(checkpoint=None, model_type: str = None, config=None, **requested):
    """The Paddle layer of any checkpoint form, with its settings: :func:`resolve_settings` + :func:`build_model`.

    Example:
        >>> model = load_model("output/demo/stage2")        # a training run folder
        >>> model.settings.kind.name, model.settings.options["backbone"]
        ('mattingrefine', 'mobilenetv2')
    """
    return build_model(resolve_settings(checkpoint, model_type, config, **requested))


def settings_card(settings: ModelSettings, weights: str, provenance: dict) -> dict:
    """The model card recording ``settings`` (kind, every option) for weights named ``weights``."""
    from bgmatting.engine.model_card import make_card

    return make_card(settings.kind.name, settings.options, weights, provenance)

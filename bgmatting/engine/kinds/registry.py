"""The registry of model kinds: what the project knows about each kind of model, declared once.

A :class:`ModelKind` says how to build the model from its options, how to recognise and read its weights, how
to run it on one image, what an export of it looks like and whether it predicts a foreground. The Predictor,
the trainer, the converter, the exporter, every tool and the web app ask this registry; nothing else lists
model kinds. Register a new kind with :func:`register_kind`, as timm's ``@register_model``.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

from bgmatting.errors import UserError


@dataclass(frozen=True)
class ExportSignature:
    """The inputs and outputs of an exported graph.

    Attributes:
        inputs: input names, e.g. ``("src", "bgr")``.
        channels: channels per input, e.g. ``(3, 3)``.
        outputs: output names in order.
        preprocessing: what the graph expects (recorded in ``export.json``; ``pad_multiple`` at least).
        fixed_size: the graph needs a fixed ``--input-size`` (ViTMatte).
    """

    inputs: tuple
    channels: tuple
    outputs: tuple
    preprocessing: dict
    fixed_size: bool = False


@dataclass(frozen=True)
class ModelKind:
    """One kind of model and everything the tools need to handle it.

    Attributes:
        name: registry key (``--model-type``, ``kind`` of a model card).
        guide: second input: ``"bgr"`` (clean plate, uint8 (H, W, 3)) or ``"trimap"`` (uint8 (H, W), 0/128/255).
        options: every option of the kind with its default (``backbone`` included for BGMv2). CLI flags are
            ``--model-<name with dashes>``.
        build: ``options -> paddle.nn.Layer`` (random weights); raises UserError for bad option values.
        recognise: ``{name: array} -> dict or None``: the options that a checkpoint's weights fix (e.g.
            ``{"backbone": "resnet50", "refine_kernel_size": 3}``), or None when the weights are not of this kind.
        read: ``(arrays, options, extra) -> state``: convert raw checkpoint arrays to the model's names; ``extra``
            holds the raw arrays of the options named in ``checkpoint_options``.
        load: ``(model, state, options) -> None``; raises UserError naming missing/unexpected keys and shapes.
        run: ``(model, src, guide) -> dict``: src (1, 3, H, W), guide (1, C, H, W) float32 in [0, 1] (tensors or
            arrays); returns numpy ``pha`` (H, W), ``fgr`` (H, W, 3), ``err`` (h, w), ``ref`` (h', w') or None.
        fixed: options read off the weights that cannot be changed by a flag (a different value is an error).
        baked: options an export bakes into its graph (a different requested value is an error).
        pad_multiple / pad_mode: sides are padded (``numpy.pad`` mode) to this multiple and cropped back.
        export: the exported graph's signature, or None when the kind is not one graph (the cascade: see ``parts``).
        predicts_foreground: False for alpha-only models (their ``fgr`` is the photo).
        training_type: the training config's ``model.type`` of this kind, or None.
        accepts: other kinds whose weights this kind can load (MattingBase from a MattingRefine checkpoint).
        flags: ``{option: (type, choices or None, help)}`` for the options that have a ``--model-*`` flag.
        checkpoint_options: options holding the path of further weights (the cascade's ViTMatte checkpoint).
        training_options: ``model section of a training config -> options`` (default: the keys in ``options``).
        parts: for a kind made of exportable models (the cascade): ``options -> {attribute: (kind name, that part's
            options, the option naming its weights, or None for the main checkpoint)}``; the static runtimes export
            and run each part on its own.
        assemble: with ``parts``: ``({attribute: part model}, options) -> model`` that ``run`` accepts.
    """

    name: str
    guide: str
    options: dict
    build: Callable
    recognise: Callable
    read: Callable
    load: Callable
    run: Callable
    fixed: tuple = ()
    baked: tuple = ()
    pad_multiple: int = 1
    pad_mode: str = "edge"
    export: Optional[ExportSignature] = None
    predicts_foreground: bool = True
    training_type: Optional[str] = None
    accepts: tuple = field(default_factory=tuple)
    flags: dict = field(default_factory=dict)
    checkpoint_options: tuple = ()
    training_options: Optional[Callable] = None
    parts: Optional[Callable] = None
    assemble: Optional[Callable] = None

    def options_from_training(self, model_cfg: dict) -> dict:
        """The kind's options from a training config's ``model`` section."""
        if self.training_options is not None:
            return self.training_options(model_cfg)
        return {k: v for k, v in model_cfg.items() if k in self.options}


#: name → ModelKind
KINDS = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Register (or replace) a model kind; returns it."""
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    """The registered kind ``name``; UserError naming the known kinds otherwise."""
    if name not in KINDS:
        raise UserError(f"unknown model type {name!r}; choose one of {', '.join(KINDS)}")
    return KINDS[name]


def kind_names() -> tuple:
    """Every registered kind's name."""
    return tuple(KINDS)


def kind_for_training_type(training_type: str) -> ModelKind:
    """The kind whose training config ``model.type`` is ``training_type`` (``MattingBase`` …)."""
    for kind in KINDS.values():
        if kind.training_type == training_type:
            return kind
    known = ", ".join(k.training_type for k in KINDS.values() if k.training_type)
    raise UserError(f"config key model.type: unknown model '{training_type}' (known: {known})")


def recognise_weights(arrays: dict, path) -> tuple:
    """(kind name, fixed options) of raw checkpoint arrays: the first kind that recognises them.

    Raises:
        UserError: no registered kind recognises the weights.
    """
    for kind in KINDS.values():
        found = kind.recognise(arrays)
        if found is not None:
            return kind.name, found
    raise UserError(f"{path} holds no model this project knows (first keys: {', '.join(sorted(arrays)[:3])})")

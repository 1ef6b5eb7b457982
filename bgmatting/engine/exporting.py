"""Export a model given by its settings: build it, write the static program and its model card.

Example:
    >>> settings = resolve_settings("weights/bgmv2_mobilenetv2", refine_sample_pixels=320_000)
    >>> model, metadata = export_settings(settings, "export/mbv2_4k")
"""
import os

from bgmatting.engine.kinds import get_kind
from bgmatting.engine.loading import build_model, settings_card
from bgmatting.engine.model_card import write_card
from bgmatting.errors import UserError


def export_settings(settings, save_dir, input_size=None, onnx: bool = False) -> tuple:
    """Build the model of ``settings`` (weights loaded), export it to ``save_dir`` with ``model.yaml``.

    Returns:
        (dygraph model, export metadata).
    Raises:
        UserError: a kind without a static export, a bad input size, weights that do not fit.
    """
    from bgmatting.export import export_model, input_shapes

    signature = settings.kind.export
    if signature is None:
        raise UserError(f"{settings.kind.name} cannot be exported (export its parts separately)")
    input_shapes(signature, input_size)  # validate before loading the weights
    model = build_model(settings)
    source = settings.source
    card = settings_card(settings, "model.pdiparams", {
        "tool": "export", "source": os.path.abspath(source.path) if source is not None else None,
        "input_size": list(input_size) if input_size else None, "onnx": onnx})
    metadata = export_model(model, signature, settings.kind.name, save_dir, settings.options,
                            input_size=input_size, onnx=onnx,
                            write_extra=lambda folder: [write_card(folder, card).name])
    return model, metadata


def export_kind(model, kind_name: str, save_dir, options: dict = None, input_size=None, onnx: bool = False) -> dict:
    """Export an in-memory ``model`` of the registered kind ``kind_name`` (no card: e.g. a model being trained or
    benchmarked); ``options`` are recorded as baked. Returns the export metadata."""
    from bgmatting.export import export_model

    kind = get_kind(kind_name)
    if kind.export is None:
        raise UserError(f"{kind.name} cannot be exported (export its parts separately)")
    return export_model(model, kind.export, kind.name, save_dir, options, input_size=input_size, onnx=onnx)

"""Model kinds: the registry (:mod:`.registry`) and the built-in kinds, registered on import.

Example:
    >>> from bgmatting.engine.kinds import get_kind, kind_names
    >>> kind_names()
    ('mattingrefine', 'mattingbase', 'vitmatte', 'bgmv2+vitmatte')
    >>> get_kind("mattingrefine").options["refine_sample_pixels"]
    80000
"""
from bgmatting.engine.kinds import bgmv2, cascade, vitmatte  # noqa: F401  (register the built-in kinds)
from bgmatting.engine.kinds.registry import (KINDS, ExportSignature, ModelKind, get_kind, kind_for_training_type,
                                             kind_names, recognise_weights, register_kind)

__all__ = ["KINDS", "ExportSignature", "ModelKind", "get_kind", "kind_for_training_type", "kind_names",
           "recognise_weights", "register_kind"]

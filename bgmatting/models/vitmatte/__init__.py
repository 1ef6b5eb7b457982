"""ViTMatte (trimap-based matting with a plain ViT): ``ViTMatte`` and its size presets."""
from bgmatting.models.vitmatte.vitmatte import MODEL_DEFAULTS, VITMATTE_SIZES, ViTMatte, build_vitmatte

__all__ = ["ViTMatte", "VITMATTE_SIZES", "MODEL_DEFAULTS", "build_vitmatte"]

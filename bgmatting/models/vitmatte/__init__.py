"""ViTMatte (trimap-based matting with a plain ViT): ``ViTMatte`` and its size presets."""
from bgmatting.models.vitmatte.vitmatte import VITMATTE_SIZES, ViTMatte

__all__ = ["ViTMatte", "VITMATTE_SIZES"]

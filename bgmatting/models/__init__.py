"""Models: ``MattingBase`` and ``MattingRefine`` (BackgroundMattingV2), ``ViTMatte``."""
from bgmatting.models.bgmv2 import MattingBase, MattingRefine
from bgmatting.models.vitmatte import ViTMatte

__all__ = ["MattingBase", "MattingRefine", "ViTMatte"]

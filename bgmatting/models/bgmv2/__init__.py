"""BackgroundMattingV2 in Paddle."""
from bgmatting.models.bgmv2.base import MattingBase
from bgmatting.models.bgmv2.refine import MattingRefine
from bgmatting.models.bgmv2.refiner import Refiner

__all__ = ["MattingBase", "MattingRefine", "Refiner"]

"""bgmatting: background matting (BackgroundMattingV2) and trimap matting (ViTMatte) in PaddlePaddle."""
__version__ = "0.1.0"

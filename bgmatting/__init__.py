"""bgmatting: background matting (BackgroundMattingV2) and trimap matting (ViTMatte) in PaddlePaddle.

Example:
    >>> import bgmatting
    >>> model = bgmatting.load_model("weights/bgmv2_mobilenetv2")     # any checkpoint form; model.settings
    >>> predictor = bgmatting.Predictor.from_pretrained("output/demo/stage2")
"""
import warnings

warnings.filterwarnings("ignore", message="No ccache found")  # Paddle's start-up warning, on every import

__version__ = "0.1.0"


def load_model(checkpoint=None, model_type: str = None, config=None, **options):
    """The Paddle layer of any checkpoint form with its settings (``model.settings``); see
    :func:`bgmatting.engine.loading.load_model`."""
    from bgmatting.engine.loading import load_model as load

    return load(checkpoint, model_type, config, **options)


def __getattr__(name):
    if name == "Predictor":  # imported on first use: ``import bgmatting`` stays light
        from bgmatting.engine.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'bgmatting' has no attribute {name!r}")

"""The official ``com`` cut-out, shared by predict.py and the web app."""
import numpy as np


def cutout_rgba(fgr: np.ndarray, pha: np.ndarray) -> np.ndarray:
    """The official ``com`` output: foreground where alpha > 0 (judged at the PNG's 8-bit precision, so a pixel
    whose alpha rounds to 0 is black and transparent), alpha in the 4th channel.

    Args:
        fgr: float (H, W, 3) in [0, 1]; pha: float (H, W) in [0, 1].
    Returns:
        float32 (H, W, 4) RGBA in [0, 1].
    """
    visible = pha[:, :, None] >= 0.5 / 255.0
    return np.concatenate([fgr * visible, pha[:, :, None]], axis=2).astype(np.float32)

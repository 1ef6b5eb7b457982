"""Time and peak memory of one ViTMatte forward pass at a given resolution (for tools/benchmark.py).

Example:
    >>> from bgmatting.models.vitmatte.profile import measure_vitmatte_in_subprocess
    >>> measure_vitmatte_in_subprocess(size="small", height=2160, width=3840)
    {'size': 'small', 'height': 2160, 'width': 3840, 'tokens': 32400, 'seconds': ..., 'peak_rss_mb': ...}
"""
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

# Defaults that keep ViTMatte-S at 3840x2160 within a few GB on CPU (see README, "4K on bounded memory").
DEFAULT_ATTENTION_CHUNK = 1024
DEFAULT_DECODER_TILE = 512


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_vitmatte(size="small", height=2160, width=3840, attention_chunk_size=DEFAULT_ATTENTION_CHUNK,
                     decoder_tile_size=DEFAULT_DECODER_TILE, decoder_tile_overlap=64, depth=None, seed=0):
    """Run one random-weight ViTMatte forward (pre-processing, model, crop) on a random image + trimap.

    Memory is this process's peak so far, so call it in a fresh process (:func:`measure_vitmatte_in_subprocess`)
    for a per-resolution figure.

    Args:
        size: "small" or "base".
        height, width: image size in pixels.
        attention_chunk_size: query tokens per attention slice (None: plain attention).
        decoder_tile_size, decoder_tile_overlap: tiled decoder (None: untiled).
        depth: number of ViT blocks (None: the 12 of ViTMatte), for quick checks only.
        seed: seed of the random image and trimap.
    Returns:
        dict(size, height, width, tokens, attention_chunk_size, decoder_tile_size, seconds, peak_rss_mb).
    """
    from bgmatting.models.vitmatte import ViTMatte
    from bgmatting.models.vitmatte_processing import SIZE_DIVISOR, predict_alpha

    model = ViTMatte(size, backbone={"depth": depth} if depth else None, attention_chunk_size=attention_chunk_size,
                     decoder_tile_size=decoder_tile_size, decoder_tile_overlap=decoder_tile_overlap)
    model.eval()
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(height, width))
    start = time.perf_counter()
    predict_alpha(model, image, trimap)
    seconds = time.perf_counter() - start
    padded = [-(-n // SIZE_DIVISOR) * SIZE_DIVISOR for n in (height, width)]
    patch = model.size_divisor
    return dict(size=size, height=height, width=width, tokens=(padded[0] // patch) * (padded[1] // patch),
                attention_chunk_size=attention_chunk_size, decoder_tile_size=decoder_tile_size,
                seconds=round(seconds, 3), peak_rss_mb=round(peak_rss_mb(), 1))


def measure_vitmatte_in_subprocess(**kwargs) -> dict:
    """:func:`measure_vitmatte` in a fresh Python process, so ``peak_rss_mb`` is that run's own peak.

    Args:
        kwargs: arguments of :func:`measure_vitmatte`.
    Returns:
        its result dict.
    Raises:
        RuntimeError: the child process failed (its stderr tail is in the message).
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    code = (
        "import json, sys, warnings; warnings.filterwarnings('ignore', message='No ccache found'); "
        f"sys.path.insert(0, {root!r}); from bgmatting.models.vitmatte.profile import measure_vitmatte; "
        f"print(json.dumps(measure_vitmatte(**json.loads({json.dumps(kwargs)!r}))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ViTMatte measurement failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])

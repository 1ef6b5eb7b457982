"""Measure how well clean-plate alignment undoes a hand-held plate, on synthetic pairs with known ground truth.

Each pair: a procedural subject (bgmatting.data.synthetic) composited onto a textured background; the plate is
the same background seen by a moved camera (shift, rotation about the centre) with a different exposure, and
both images get independent sensor noise. Each alignment mode is scored by

- ``geo_px``: mean distance, in pixels, between the image corners mapped by the estimated and the true
  plate → photo homography;
- ``bg_err``: mean |aligned plate − true background| over the frame, in 8-bit grey levels (what the matting
  network sees as "background changed");
- ``sad`` / ``mse``: a difference matte ``alpha = clip((max_c |src − plate| − 0.05) / 0.15, 0, 1)`` against the
  ground-truth alpha over the whole image (SAD = Σ|Δα|/1000, MSE = mean(Δα²)×1e3). A difference matte is a
  crude matting model, but it needs no trained weights and, like BGMv2, reads "foreground" wherever the plate
  and the photo disagree — so it shows honestly what misalignment costs and how much alignment recovers.

``perfect`` is the same pair with a perfectly aligned plate (only the independent noise differs).

Example:
    python tools/eval_alignment.py --size 540 960 --pairs 8 --seed 0 --clutter 300
"""
import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bgmatting.data.alignment import ALIGNMENT_MODES, PlateAligner, corner_distances
from bgmatting.data.io import to_uint8
from bgmatting.data.synthetic import composite, make_background, make_foreground

SCENARIOS = {
    "shift": dict(shift=(3.0, -2.0), angle=0.0, exposure=1.0),
    "rotate": dict(shift=(0.0, 0.0), angle=1.0, exposure=1.0),
    "exposure+20%": dict(shift=(0.0, 0.0), angle=0.0, exposure=1.2),
    "exposure-20%": dict(shift=(0.0, 0.0), angle=0.0, exposure=0.8),
    "all": dict(shift=(3.0, -2.0), angle=1.0, exposure=0.8),
}
NOISE = 2.0 / 255.0


def add_clutter(scene, rng, count):
    """Draw ``count`` small random rectangles, lines and letters (a cluttered room's corners) onto ``scene``.

    Args:
        scene: float32 (H, W, 3) in [0, 1], modified in place and returned.
    """
    height, width = scene.shape[:2]
    unit = max(2, min(height, width) // 60)
    for _ in range(count):
        colour = tuple(float(c) for c in rng.random(3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(scene, (x, y), (x + int(rng.integers(unit, 6 * unit)), y + int(rng.integers(unit, 6 * unit))),
                          colour, -1, cv2.LINE_AA)
        elif kind == 1:
            end = (x + int(rng.integers(-8, 9)) * unit, y + int(rng.integers(-8, 9)) * unit)
            cv2.line(scene, (x, y), end, colour, max(1, unit // 2), cv2.LINE_AA)
        else:
            letters = "".join(chr(c) for c in rng.integers(65, 91, size=3))
            cv2.putText(scene, letters, (x, y), cv2.FONT_HERSHEY_SIMPLEX, unit / 8, colour, max(1, unit // 3),
                        cv2.LINE_AA)
    return cv2.GaussianBlur(scene, (0, 0), 0.8) if count else scene  # a lens is never perfectly sharp


def make_handheld_pair(size, rng, shift=(0.0, 0.0), angle=0.0, exposure=1.0, clutter=0):
    """A photo, its true background, and a plate from a moved camera with a different exposure.

    Args:
        size: (height, width).
        rng: numpy random generator.
        clutter: number of small shapes added to the smooth procedural background (0 = a bare wall).
        shift: camera shift (dx, dy) in pixels; angle: rotation in degrees about the centre;
        exposure: gain applied to the plate (1.2 = 20 % brighter).
    Returns:
        dict of uint8 ``src`` (H, W, 3), uint8 ``plate`` (H, W, 3), float32 ``background`` (H, W, 3) in [0, 1]
        (the background exactly as in ``src``), float32 ``pha`` (H, W) in [0, 1], and ``homography``
        (3, 3): the true map from plate to source pixel coordinates.
    """
    height, width = size
    margin = int(0.05 * max(height, width)) + 8
    scene = add_clutter(make_background((height + 2 * margin, width + 2 * margin), rng), rng, clutter)
    background = scene[margin:margin + height, margin:margin + width]
    fgr, pha = make_foreground((height, width), rng)
    centre = (width / 2 + margin - 0.5, height / 2 + margin - 0.5)
    motion = cv2.getRotationMatrix2D(centre, angle, 1.0)
    motion[:, 2] += shift
    moved = cv2.warpAffine(scene, motion, scene.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    plate = moved[margin:margin + height, margin:margin + width] * exposure
    to_scene, motion_3x3 = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1.0]]), np.vstack([motion, [0, 0, 1]])
    homography = np.linalg.inv(to_scene) @ np.linalg.inv(motion_3x3) @ to_scene
    noisy = lambda image: to_uint8(image + rng.normal(0.0, NOISE, image.shape).astype(np.float32))  # noqa: E731
    return dict(src=noisy(composite(fgr, pha, background)), plate=noisy(plate), background=background, pha=pha,
                homography=homography)


def difference_matte(src: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """``clip((max_c |src − plate| − 0.05) / 0.15, 0, 1)`` → float32 (H, W) in [0, 1]; inputs uint8 (H, W, 3)."""
    difference = np.abs(src.astype(np.float32) - plate.astype(np.float32)).max(axis=2) / 255.0
    return np.clip((difference - 0.05) / 0.15, 0.0, 1.0)


def corner_error(estimated, true, size):
    """Mean distance (pixels) between the image corners mapped by two (3, 3) homographies."""
    return float(corner_distances(estimated, true, size).mean())


def score(pair, plate, homography):
    """geo_px (corner error of ``homography``), bg_err (grey levels), whole-image SAD (/1000) and MSE (×1e3) of
    the difference matte for ``plate``."""
    background_error = np.abs(plate.astype(np.float32) / 255.0 - pair["background"]).mean() * 255.0
    delta = difference_matte(pair["src"], plate) - pair["pha"]
    return dict(geo_px=corner_error(homography, pair["homography"], pair["pha"].shape),
                bg_err=float(background_error), sad=float(np.abs(delta).sum() / 1000.0),
                mse=float((delta**2).mean() * 1e3))


def evaluate(size, pairs, seed, clutter, scenarios=SCENARIOS):
    """Mean scores per scenario and method → {scenario: {method: {bg_err, sad, mse, seconds}}}."""
    results = {}
    for name, perturbation in scenarios.items():
        totals = {}
        for index in range(pairs):
            perfect = make_handheld_pair(size, np.random.default_rng([seed, index]), clutter=clutter)
            pair = make_handheld_pair(size, np.random.default_rng([seed, index]), clutter=clutter, **perturbation)
            identity = np.eye(3)
            plates = {"perfect": (perfect["plate"], identity, 0.0), "none": (pair["plate"], identity, 0.0)}
            for mode in ALIGNMENT_MODES:
                start = time.perf_counter()
                result = PlateAligner(mode)(pair["src"], pair["plate"])
                plates[mode] = (result.plate, result.homography, time.perf_counter() - start)
            for method, (plate, homography, seconds) in plates.items():
                scores = score(pair if method != "perfect" else perfect, plate, homography)
                scores["seconds"] = seconds
                for key, value in scores.items():
                    totals.setdefault(method, {}).setdefault(key, []).append(value)
        results[name] = {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in totals.items()}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(540, 960), metavar=("H", "W"))
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clutter", type=int, default=300,
                        help="small shapes drawn on the background (0 = the bare procedural background)")
    args = parser.parse_args(argv)
    results = evaluate(tuple(args.size), args.pairs, args.seed, args.clutter)
    print(f"{args.pairs} pairs of {args.size[0]}x{args.size[1]}, clutter {args.clutter}, seed {args.seed}; "
          "difference matte vs ground truth over the whole image")
    print(f"{'scenario':<14}{'method':<12}{'geo_px':>8}{'bg_err':>8}{'SAD':>9}{'MSE':>9}{'s/pair':>8}")
    for scenario, methods in results.items():
        for method, s in methods.items():
            print(f"{scenario:<14}{method:<12}{s['geo_px']:8.3f}{s['bg_err']:8.2f}{s['sad']:9.3f}{s['mse']:9.2f}"
                  f"{s['seconds']:8.3f}")


if __name__ == "__main__":
    main()

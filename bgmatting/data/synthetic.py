"""Procedural matting data written in the public on-disk layouts (DESIGN.md §3), deterministic by seed.

A foreground is a head-and-shoulders silhouette with soft edges, hair-like strands one pixel wide with
anti-aliased (fractional) coverage, a semi-transparent veil and a motion-blurred arm; backgrounds are
textured (gradients, shapes, noise). Every item ``i`` of a call with seed ``s`` is drawn from its own
generator seeded with ``(s, kind, i)``, so it does not depend on how many items are written.

Writers (all return the list of written files and take ``root, n, size, seed``; ``size`` is an int for a
square or ``(height, width)``):

- :func:`make_fgr_pha_dataset`: ``ROOT/{train,valid}/{fgr,pha}/clipNNNN/NNNN.png`` (VideoMatte240K-like; the
  validation split may be named ``test`` as VideoMatte240K's).
- :func:`make_photomatte85`: ``ROOT/NNNN.png`` RGBA, alpha in the alpha channel.
- :func:`make_comp1k`: ``ROOT/{merged,alpha_copy,trimaps}/fgN_bgM.png`` + ``ROOT/fg/fgN.png`` + ``ROOT/bg/bgM.png``.
- :func:`make_backgrounds`: ``ROOT/NNNN.jpg``.
- :func:`make_clean_plate_pairs`: ``ROOT/{src,bgr,pha,fgr}/NNNN.png`` (photo, clean plate, ground truth).

Example:
    >>> from bgmatting.data.synthetic import make_fgr_pha_dataset
    >>> files = make_fgr_pha_dataset("/tmp/synth", n=4, size=64, seed=0)
"""
from pathlib import Path

import cv2
import numpy as np

from bgmatting.data.io import write_image
from bgmatting.data.trimap import trimap_from_alpha

_KINDS = {"fgr": 1, "bgr": 2, "comp1k_fg": 3, "comp1k_bg": 4, "plate": 5, "photomatte": 6, "valid": 7}


def _size(size):
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def item_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """The generator for item ``index`` of ``kind`` (a key of the module's kinds) under ``seed``."""
    return np.random.default_rng([seed, _KINDS[kind], index])


def _smooth_field(rng, height, width, channels, cells=4):
    """Low-frequency random field (H, W, C) in [0, 1]: bicubic upsampling of a small random grid."""
    grid = rng.random((cells, cells, channels)).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(field.reshape(height, width, channels), 0.0, 1.0)


def make_background(size, rng: np.random.Generator) -> np.ndarray:
    """A textured background: a colour gradient, random rectangles and circles, fine noise, slight blur.

    Args:
        size: int or (height, width).
        rng: numpy random generator.
    Returns:
        float32 array (H, W, 3) in [0, 1].
    """
    height, width = _size(size)
    image = _smooth_field(rng, height, width, 3, cells=int(rng.integers(2, 5)))
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(float(c) for c in rng.random(3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        extent = int(rng.integers(max(2, min(height, width) // 10), max(3, min(height, width) // 3)))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + extent, y + extent // 2), colour, -1, cv2.LINE_AA)
        else:
            cv2.circle(image, (x, y), extent // 2, colour, -1, cv2.LINE_AA)
    image += rng.normal(0.0, 0.04, image.shape).astype(np.float32)
    image = cv2.GaussianBlur(image, (3, 3), 0.7)
    return np.clip(image, 0.0, 1.0)


def _bezier(p0, p1, p2, steps=24):
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _draw_strands(rng, alpha_canvas, centre, radius, count):
    """Hair: quadratic Bézier curves 1 px wide (anti-aliased, so coverage is fractional) leaving the head."""
    height, width = alpha_canvas.shape
    for _ in range(count):
        angle = rng.uniform(-np.pi * 0.95, -np.pi * 0.05)  # upper half of the head
        direction = np.array([np.cos(angle), np.sin(angle)])
        start = centre + direction * radius * 0.9
        length = radius * rng.uniform(0.4, 1.2)
        bend = np.array([-direction[1], direction[0]]) * length * rng.uniform(-0.6, 0.6)
        end = start + direction * length + bend * 0.5
        control = start + direction * length * 0.5 + bend
        points = _bezier(start, control, end)
        points = np.clip(points, [0, 0], [width - 1, height - 1]) * 16  # 4 fractional bits
        strand = np.zeros(alpha_canvas.shape, np.uint8)  # OpenCV anti-aliases only 8-bit canvases
        cv2.polylines(strand, [points.astype(np.int32)], False, int(rng.integers(128, 256)), 1, cv2.LINE_AA, 4)
        np.maximum(alpha_canvas, strand.astype(np.float32) / 255.0, out=alpha_canvas)


def _motion_blur(mask, rng, length):
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(mask, -1, kernel / max(kernel.sum(), 1e-6))


def make_foreground(size, rng: np.random.Generator):
    """A procedural person-like foreground with soft edges, hair strands, a veil and a motion-blurred arm.

    Args:
        size: int or (height, width).
        rng: numpy random generator.
    Returns:
        (fgr, pha): fgr float32 (H, W, 3) in [0, 1], defined everywhere (also where pha = 0);
        pha float32 (H, W) in [0, 1] with fully opaque, fractional and zero regions.
    """
    height, width = _size(size)
    short = min(height, width)
    centre = np.array([width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.5)])
    radius = short * rng.uniform(0.13, 0.2)

    body = np.zeros((height, width), np.float32)
    cv2.circle(body, tuple(int(c) for c in centre), int(radius), 1.0, -1, cv2.LINE_AA)
    shoulders = (int(centre[0]), int(centre[1] + radius * 2.4))
    cv2.ellipse(body, shoulders, (int(radius * 2.2), int(radius * 1.6)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    body = cv2.GaussianBlur(body, (0, 0), rng.uniform(0.5, 1.2))

    hair = np.zeros_like(body)
    _draw_strands(rng, hair, centre, radius, int(rng.integers(25, 60)))

    veil = np.zeros_like(body)
    veil_centre = (int(centre[0] + rng.uniform(-1, 1) * radius), int(centre[1] + radius * 1.5))
    cv2.ellipse(veil, veil_centre, (int(radius * 1.6), int(radius * 0.6)), float(rng.uniform(0, 180)), 0, 360,
                float(rng.uniform(0.3, 0.6)), -1, cv2.LINE_AA)
    veil = cv2.GaussianBlur(veil, (0, 0), 1.0)

    arm = np.zeros_like(body)
    side = 1 if rng.random() < 0.5 else -1
    arm_start = (int(centre[0] + side * radius * 1.5), int(centre[1] + radius * 2.0))
    arm_end = (int(arm_start[0] + side * radius * 1.2), int(arm_start[1] - radius * rng.uniform(0.5, 1.5)))
    cv2.line(arm, arm_start, arm_end, 1.0, max(2, int(radius * 0.35)), cv2.LINE_AA)
    arm = _motion_blur(arm, rng, int(rng.integers(5, 12)))

    pha = np.clip(np.maximum.reduce([body, hair, veil, arm]), 0.0, 1.0)

    skin = _smooth_field(rng, height, width, 3, cells=3) * 0.6 + rng.random(3).astype(np.float32) * 0.4
    fgr = skin.copy()
    layers = ((hair, rng.random(3) * 0.5), (veil * (body < 0.5), rng.random(3)), (arm, rng.random(3)))
    for mask, colour in layers:
        weight = (mask > 0.02)[:, :, None]
        fgr = np.where(weight, colour.astype(np.float32), fgr)
    fgr = np.clip(fgr + rng.normal(0.0, 0.02, fgr.shape).astype(np.float32), 0.0, 1.0)
    return fgr, pha.astype(np.float32)


def composite(fgr: np.ndarray, pha: np.ndarray, bgr: np.ndarray) -> np.ndarray:
    """``fgr·pha + bgr·(1 − pha)``.

    Args:
        fgr, bgr: float (H, W, 3) in [0, 1]; pha: float (H, W) in [0, 1].
    Returns:
        float32 (H, W, 3) in [0, 1].
    """
    alpha = pha[:, :, None]
    return (fgr * alpha + bgr * (1.0 - alpha)).astype(np.float32)


def make_fgr_pha_dataset(root, n: int, size=64, seed: int = 0, n_valid=None, clip_length: int = 4,
                         valid_name: str = "valid") -> list:
    """Write ``ROOT/{train,valid}/{fgr,pha}/clipNNNN/NNNN.png`` (paired by sorted relative path).

    Args:
        n: number of training pairs; ``n_valid`` validation pairs (default ``max(2, n // 4)``).
        clip_length: frames per ``clipNNNN`` sub-folder (exercises nested layouts like VideoMatte240K).
        valid_name: the validation split's folder, ``valid`` or ``test`` (VideoMatte240K's name).
    """
    root = Path(root)
    n_valid = max(2, n // 4) if n_valid is None else n_valid
    written = []
    for split, count, kind in (("train", n, "fgr"), (valid_name, n_valid, "valid")):
        for index in range(count):
            fgr, pha = make_foreground(size, item_rng(seed, kind, index))
            relative = Path(f"clip{index // clip_length:04d}") / f"{index:04d}.png"
            for name, image in (("fgr", fgr), ("pha", pha)):
                path = root / split / name / relative
                write_image(path, image)
                written.append(path)
    return written


def make_photomatte85(root, n: int, size=64, seed: int = 0) -> list:
    """Write ``ROOT/NNNN.png``: RGBA foregrounds with the ground-truth alpha in the alpha channel."""
    written = []
    for index in range(n):
        fgr, pha = make_foreground(size, item_rng(seed, "photomatte", index))
        path = Path(root) / f"{index:04d}.png"
        write_image(path, np.concatenate([fgr, pha[:, :, None]], axis=2))
        written.append(path)
    return written


def make_backgrounds(root, n: int, size=64, seed: int = 0, extension: str = ".jpg") -> list:
    """Write ``ROOT/NNNN.jpg`` textured backgrounds."""
    written = []
    for index in range(n):
        path = Path(root) / f"{index:04d}{extension}"
        write_image(path, make_background(size, item_rng(seed, "bgr", index)))
        written.append(path)
    return written


def make_comp1k(root, n: int, size=64, seed: int = 0, backgrounds_per_fg: int = 2) -> list:
    """Write the Composition-1k test layout: ``merged/ alpha_copy/ trimaps/`` named ``fgN_bgM.png``, + ``fg/ bg/``.

    Each of the ``n`` foregrounds is composited onto ``backgrounds_per_fg`` backgrounds; trimaps come from
    the ground-truth alpha (:func:`bgmatting.data.trimap.trimap_from_alpha`, kernels ~size/16).
    """
    root = Path(root)
    kernel = max(2, _size(size)[0] // 16)
    written = []
    for fg_index in range(n):
        fgr, pha = make_foreground(size, item_rng(seed, "comp1k_fg", fg_index))
        write_image(root / "fg" / f"fg{fg_index}.png", fgr)
        trimap = trimap_from_alpha(pha, kernel, kernel)
        for k in range(backgrounds_per_fg):
            bg_index = fg_index * backgrounds_per_fg + k
            bgr = make_background(size, item_rng(seed, "comp1k_bg", bg_index))
            write_image(root / "bg" / f"bg{bg_index}.png", bgr)
            name = f"fg{fg_index}_bg{bg_index}.png"
            outputs = (("merged", composite(fgr, pha, bgr)), ("alpha_copy", pha), ("trimaps", trimap))
            for folder, image in outputs:
                write_image(root / folder / name, image)
                written.append(root / folder / name)
    return written


def make_clean_plate_pairs(root, n: int, size=64, seed: int = 0) -> list:
    """Write ``ROOT/{src,bgr,pha,fgr}/NNNN.png``: a photo, its (perfect) clean plate and the ground truth."""
    root = Path(root)
    written = []
    for index in range(n):
        rng = item_rng(seed, "plate", index)
        fgr, pha = make_foreground(size, rng)
        bgr = make_background(size, rng)
        name = f"{index:04d}.png"
        for folder, image in (("src", composite(fgr, pha, bgr)), ("bgr", bgr), ("pha", pha), ("fgr", fgr)):
            write_image(root / folder / name, image)
            written.append(root / folder / name)
    return written

"""Procedural matting data written in the public on-disk layouts (DESIGN.md §3), deterministic by seed.

A foreground is a head-and-torso subject with what real mattes have: hair of many thin curved strands at several
opacities (drawn supersampled, so coverage is fractional), sometimes a fur-like collar, a semi-transparent woven
scarf or veil with a fringe, a motion-blurred arm and sometimes a subject in motion, colour spill on the edges, and
colours drawn from the same muted "natural" distribution as the backgrounds (or from the scene's own colours, for
the layouts that generate subject and scene together). Backgrounds are natural-image-like: multi-scale (1/f)
noise coloured with scene colours, a lighting gradient, shapes at several scales (some textured, some out of focus),
stripes, sensor noise. No photographs are used (none ship with the project's dependencies). Every item ``i`` of a
call with seed ``s`` is drawn from its own generator seeded with ``(s, kind, i)``, so it does not depend on how many
items are written.

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


def _fractal_noise(rng, height, width, channels=1, octaves=5, persistence=0.55):
    """Multi-scale (1/f-like) noise (H, W, C) with values around [0, 1]: octaves of smooth fields, each twice as
    fine and ``persistence`` times as strong as the last — the statistics of natural images, not of one scale."""
    field = np.zeros((height, width, channels), np.float32)
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 1) + 1
        field += amplitude * (_smooth_field(rng, height, width, channels, cells=min(cells, max(height, width))) - 0.5)
        total += amplitude
        amplitude *= persistence
    return np.clip(field / total * 1.6 + 0.5, 0.0, 1.0)


def natural_colours(rng, n: int) -> np.ndarray:
    """``n`` RGB colours (n, 3) float32 drawn as scenes' colours are: mostly muted (low saturation), a range of
    brightness, a few saturated. Foregrounds and backgrounds draw from this one distribution, so subjects often
    share colours with the scene behind them."""
    hue = rng.random(n) * 180.0
    saturation = np.where(rng.random(n) < 0.75, rng.uniform(0.05, 0.45, n), rng.uniform(0.45, 0.95, n)) * 255.0
    value = rng.uniform(0.15, 0.95, n) * 255.0
    hsv = np.stack([hue, saturation, value], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255.0


def _colourise(field, colours):
    """Map a scalar field (H, W, 1) in [0, 1] through a piecewise-linear ramp of ``colours`` (k, 3)."""
    positions = np.linspace(0.0, 1.0, len(colours))
    return np.stack([np.interp(field[:, :, 0], positions, colours[:, c]) for c in range(3)], axis=2).astype(np.float32)


def _random_polygon(rng, centre, extent, corners):
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = extent * rng.uniform(0.4, 1.0, corners)
    points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    return points.astype(np.int32)


def make_background(size, rng: np.random.Generator, palette=None) -> np.ndarray:
    """A natural-image-like background: a lighting gradient, multi-scale (fractal) noise coloured with a few scene
    colours, shapes at several scales (rectangles, discs, polygons, lines; some textured, some out of focus),
    occasional stripes, sensor noise and a slight blur.

    Args:
        size: int or (height, width).
        rng: numpy random generator.
        palette: optional (k, 3) colours to draw from (default :func:`natural_colours`).
    Returns:
        float32 array (H, W, 3) in [0, 1].
    """
    height, width = _size(size)
    short = min(height, width)
    palette = natural_colours(rng, 6) if palette is None else np.asarray(palette, np.float32)
    colours = palette[rng.integers(0, len(palette), 3)]
    image = _colourise(_fractal_noise(rng, height, width, 1, octaves=int(rng.integers(3, 7))), colours)
    image = image * 0.7 + 0.3 * _smooth_field(rng, height, width, 3, cells=int(rng.integers(2, 5)))
    # lighting: a linear gradient in a random direction
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * cols / width + np.sin(angle) * rows / height)
    image *= (1.0 + rng.uniform(0.1, 0.5) * (ramp - ramp.mean()))[:, :, None]
    for _ in range(int(rng.integers(4, 14))):
        layer = np.zeros((height, width), np.float32)
        centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        extent = float(short * rng.uniform(0.03, 0.35))
        shape = rng.random()
        if shape < 0.3:
            x, y = int(centre[0]), int(centre[1])
            cv2.rectangle(layer, (x, y), (x + int(extent * 1.5), y + int(extent)), 1.0, -1, cv2.LINE_AA)
        elif shape < 0.55:
            cv2.circle(layer, tuple(int(c) for c in centre), int(extent), 1.0, -1, cv2.LINE_AA)
        elif shape < 0.85:
            cv2.fillPoly(layer, [_random_polygon(rng, centre, extent, int(rng.integers(3, 8)))], 1.0, cv2.LINE_AA)
        else:
            end = centre + rng.uniform(-1, 1, 2) * extent * 3
            cv2.line(layer, tuple(int(c) for c in centre), tuple(int(c) for c in end), 1.0,
                     max(1, int(rng.integers(1, max(2, short // 40)))), cv2.LINE_AA)
        if rng.random() < 0.3:  # out of focus
            layer = cv2.GaussianBlur(layer, (0, 0), float(rng.uniform(1.0, 4.0)))
        colour = palette[rng.integers(len(palette))] * rng.uniform(0.8, 1.2) + rng.normal(0, 0.05, 3)
        fill = np.broadcast_to(colour.astype(np.float32), image.shape)
        if rng.random() < 0.4:  # textured surface
            fill = fill * (0.75 + 0.5 * _fractal_noise(rng, height, width, 1, octaves=4))
        image = fill * layer[:, :, None] + image * (1 - layer[:, :, None])
    if rng.random() < 0.25:  # stripes (blinds, shelves, fabric) across a band
        period = float(rng.uniform(3, 12))
        stripes = 0.5 + 0.5 * np.sin((cols * np.cos(angle) + rows * np.sin(angle)) * 2 * np.pi / period)
        band = _smooth_field(rng, height, width, 1, cells=3)[:, :, 0] > 0.6
        image = np.where(band[:, :, None], image * (0.7 + 0.3 * stripes[:, :, None]), image)
    image += rng.normal(0.0, rng.uniform(0.005, 0.03), image.shape).astype(np.float32)
    sigma = float(rng.uniform(0.3, 1.2))
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _bezier(p0, p1, p2, steps=24):
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _cubic(p0, p1, p2, p3, steps=32):
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _coverage_canvas(shape, supersample):
    return np.zeros((shape[0] * supersample, shape[1] * supersample), np.uint8)


def _strand_points(rng, start, direction, length, curl, wave):
    """Points of one curved strand: a cubic Bézier bending sideways by ``curl`` plus a sinusoidal ``wave``."""
    normal = np.array([-direction[1], direction[0]])
    bend1, bend2 = rng.uniform(-curl, curl, 2) * length
    points = _cubic(start, start + direction * length / 3 + normal * bend1,
                    start + direction * length * 2 / 3 + normal * bend2,
                    start + direction * length + normal * rng.uniform(-curl, curl) * length)
    if wave:
        t = np.linspace(0.0, 1.0, len(points))[:, None]
        points = points + normal * np.sin(t * np.pi * rng.uniform(2, 6) + rng.uniform(0, 6.3)) * wave * t
    return points


def _draw_strand_layers(rng, shape, strands, supersample=2, levels=(0.3, 0.55, 0.8, 1.0)):
    """Coverage (H, W) of many thin strands at several opacities.

    Strands are drawn 1 px wide (anti-aliased) on a ``supersample``× canvas and area-averaged down, so a strand's
    coverage is fractional (≈ 1/supersample of a pixel); strands of one opacity share a canvas (OpenCV blends
    anti-aliased lines over what is there, so crossings add up), and the opacity layers combine as
    ``1 − Π(1 − aᵢ)``.

    Args:
        strands: list of point arrays (N, 2) in pixel coordinates (x, y).
    """
    height, width = shape
    canvases = [_coverage_canvas(shape, supersample) for _ in levels]
    scale = supersample * 16  # 4 fractional bits
    for points in strands:
        level = int(rng.integers(len(levels)))
        points = np.clip(points, -width, 2 * width) * scale
        thickness = 1 if rng.random() < 0.8 else 2
        cv2.polylines(canvases[level], [points.astype(np.int32)], False, 255, thickness, cv2.LINE_AA, 4)
    transparency = np.ones((height, width), np.float32)
    for opacity, canvas in zip(levels, canvases):
        coverage = cv2.resize(canvas.astype(np.float32) / 255.0, (width, height), interpolation=cv2.INTER_AREA)
        transparency *= 1.0 - opacity * coverage
    return np.clip(1.0 - transparency, 0.0, 1.0)


def _draw_strands(rng, alpha_canvas, centre, radius, count):
    """Hair (the earlier single-opacity form, kept for callers): quadratic Bézier curves 1 px wide (anti-aliased)
    leaving the upper half of a head, combined into ``alpha_canvas`` by maximum."""
    height, width = alpha_canvas.shape
    for _ in range(count):
        angle = rng.uniform(-np.pi * 0.95, -np.pi * 0.05)
        direction = np.array([np.cos(angle), np.sin(angle)])
        start = centre + direction * radius * 0.9
        length = radius * rng.uniform(0.4, 1.2)
        bend = np.array([-direction[1], direction[0]]) * length * rng.uniform(-0.6, 0.6)
        points = _bezier(start, start + direction * length * 0.5 + bend, start + direction * length + bend * 0.5)
        points = np.clip(points, [0, 0], [width - 1, height - 1]) * 16
        strand = np.zeros(alpha_canvas.shape, np.uint8)
        cv2.polylines(strand, [points.astype(np.int32)], False, int(rng.integers(128, 256)), 1, cv2.LINE_AA, 4)
        np.maximum(alpha_canvas, strand.astype(np.float32) / 255.0, out=alpha_canvas)


def _motion_blur(mask, rng, length):
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(mask, -1, kernel / max(kernel.sum(), 1e-6))


def _over(fgr, pha, colour, coverage):
    """Layer ``colour`` (H, W, 3) with ``coverage`` (H, W) over the premultiplied-consistent (fgr, pha): the
    'over' operator, so fgr stays the true colour of what is seen through overlapping translucent layers."""
    coverage = np.clip(coverage, 0.0, 1.0)
    new_pha = coverage + pha * (1.0 - coverage)
    weight = (pha * (1.0 - coverage))[:, :, None]
    mixed = (colour * coverage[:, :, None] + fgr * weight) / np.maximum(new_pha, 1e-6)[:, :, None]
    fgr = np.where((new_pha > 1e-6)[:, :, None], mixed, np.where((coverage > 0)[:, :, None], colour, fgr))
    return fgr.astype(np.float32), new_pha.astype(np.float32)


def _textured(rng, height, width, colour, strength=0.25):
    """A colour with a multi-scale texture (H, W, 3)."""
    texture = _fractal_noise(rng, height, width, 1, octaves=4) - 0.5
    tint = _smooth_field(rng, height, width, 3, cells=3) - 0.5
    return np.clip(colour + texture * strength + tint * 0.1, 0.0, 1.0).astype(np.float32)


def _pick_colour(rng, palette, share):
    """A colour from ``palette`` (slightly varied) with probability ``share``, else a fresh natural colour."""
    if palette is not None and len(palette) and rng.random() < share:
        return np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 0.03, 3), 0, 1).astype(np.float32)
    return natural_colours(rng, 1)[0]


def make_foreground(size, rng: np.random.Generator, palette=None):
    """A procedural person-like foreground with what real mattes have.

    A head and a torso with soft edges and textured skin/clothing; hair of many thin curved strands at several
    opacities (fractional coverage, crossings, waves); sometimes a fur-like collar (dense short strands along the
    shoulders); a semi-transparent woven scarf or veil (opacity × weave texture, fringe); a motion-blurred arm and
    sometimes a whole subject in motion; colour spill (the scene's colour bleeding onto the edges). Colours come from
    :func:`natural_colours` or, with ``palette``, often from the scene's own colours.

    Args:
        size: int or (height, width).
        rng: numpy random generator.
        palette: optional (k, 3) colours of the background this subject will stand in front of.
    Returns:
        (fgr, pha): fgr float32 (H, W, 3) in [0, 1], defined everywhere (also where pha = 0);
        pha float32 (H, W) in [0, 1] with fully opaque, fractional and zero regions.
    """
    height, width = _size(size)
    short = min(height, width)
    centre = np.array([width * rng.uniform(0.35, 0.65), height * rng.uniform(0.33, 0.5)])
    radius = short * rng.uniform(0.12, 0.2)
    share = 0.5 if palette is not None else 0.0

    skin = _textured(rng, height, width, _pick_colour(rng, palette, share * 0.5), 0.15)
    fgr, pha = skin.copy(), np.zeros((height, width), np.float32)
    head = np.zeros((height, width), np.float32)
    cv2.ellipse(head, tuple(int(c) for c in centre), (int(radius * rng.uniform(0.85, 1.0)), int(radius)), 0, 0, 360,
                1.0, -1, cv2.LINE_AA)
    head = cv2.GaussianBlur(head, (0, 0), float(rng.uniform(0.5, 1.2)))
    fgr, pha = _over(fgr, pha, skin, head)

    torso = np.zeros_like(head)
    shoulders = np.array([centre[0], centre[1] + radius * rng.uniform(2.2, 2.6)])
    half_width = radius * rng.uniform(1.8, 2.6)
    cv2.ellipse(torso, tuple(int(c) for c in shoulders), (int(half_width), int(radius * 1.6)), 0, 0, 360, 1.0, -1,
                cv2.LINE_AA)
    cv2.rectangle(torso, (int(shoulders[0] - half_width), int(shoulders[1])),
                  (int(shoulders[0] + half_width), height + 5), 1.0, -1, cv2.LINE_AA)
    neck = (int(centre[0] - radius * 0.35), int(centre[1] + radius * 0.5))
    cv2.rectangle(torso, neck, (int(centre[0] + radius * 0.35), int(shoulders[1])), 1.0, -1)
    torso = cv2.GaussianBlur(torso, (0, 0), float(rng.uniform(0.5, 1.2)))
    clothing = _textured(rng, height, width, _pick_colour(rng, palette, share), 0.3)
    fgr, pha = _over(fgr, pha, clothing, torso)

    strands = []
    if rng.random() < 0.45:  # fur-like collar: dense short strands along the shoulder line
        for _ in range(int(rng.integers(150, 400))):
            angle = rng.uniform(-np.pi * 0.97, -np.pi * 0.03)
            direction = np.array([np.cos(angle), np.sin(angle)])
            start = shoulders + np.array([np.cos(angle) * half_width, np.sin(angle) * radius * 1.6]) * rng.uniform(
                0.85, 1.0)
            strands.append(_strand_points(rng, start, direction, radius * rng.uniform(0.08, 0.3), 0.4, 0.0))
        collar = _draw_strand_layers(rng, (height, width), strands)
        fur = _textured(rng, height, width, _pick_colour(rng, palette, share), 0.2)
        fgr, pha = _over(fgr, pha, fur, collar)

    hair_colour = _pick_colour(rng, palette, share * 0.5) * rng.uniform(0.3, 1.0)
    hair_fill = _textured(rng, height, width, hair_colour, 0.12)
    cap = np.zeros_like(head)  # the hair mass on the head, then strands leaving it
    cv2.ellipse(cap, tuple(int(c) for c in centre), (int(radius * 1.05), int(radius * 1.05)), 0, 180, 360, 1.0, -1,
                cv2.LINE_AA)
    cap = cv2.GaussianBlur(cap, (0, 0), 1.0) * (rng.random() < 0.7)
    fgr, pha = _over(fgr, pha, hair_fill, cap)
    hair = []
    long_hair = rng.random() < 0.5
    for _ in range(int(rng.integers(60, 240))):
        angle = rng.uniform(-np.pi * 1.05, np.pi * 0.05) if long_hair else rng.uniform(-np.pi * 0.95, -np.pi * 0.05)
        direction = np.array([np.cos(angle), np.sin(angle)])
        if long_hair and direction[1] > -0.3:  # long hair falls down the sides
            direction = np.array([np.sign(direction[0]) * 0.3, 1.0]) / np.hypot(0.3, 1.0)
        start = centre + np.array([np.cos(angle), np.sin(angle)]) * radius * rng.uniform(0.75, 1.0)
        length = radius * (rng.uniform(0.8, 2.5) if long_hair else rng.uniform(0.3, 1.2))
        hair.append(_strand_points(rng, start, direction, length, 0.5, radius * 0.08 * rng.random()))
    fgr, pha = _over(fgr, pha, hair_fill, _draw_strand_layers(rng, (height, width), hair))

    if rng.random() < 0.8:  # semi-transparent textured fabric: a scarf or a veil with a weave and a fringe
        fabric = np.zeros_like(head)
        side = 1 if rng.random() < 0.5 else -1  # over a shoulder's edge: half over the body, half over the scene
        fabric_centre = (int(shoulders[0] + side * half_width * rng.uniform(0.8, 1.1)),
                         int(shoulders[1] + radius * rng.uniform(-0.5, 0.8)))
        axes = (int(radius * rng.uniform(0.8, 1.5)), int(radius * rng.uniform(0.8, 1.6)))
        cv2.ellipse(fabric, fabric_centre, axes, float(rng.uniform(-30, 30)), 0, 360, 1.0, -1, cv2.LINE_AA)
        fabric = cv2.GaussianBlur(fabric, (0, 0), float(rng.uniform(0.7, 2.0)))
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
        period = float(rng.uniform(2.5, 6.0))
        weave = (0.5 + 0.5 * np.sin(cols * 2 * np.pi / period)) * (0.5 + 0.5 * np.sin(rows * 2 * np.pi / period))
        texture = 0.55 + 0.3 * weave + 0.3 * (_fractal_noise(rng, height, width, 1, octaves=4)[:, :, 0] - 0.5)
        opacity = float(rng.uniform(0.2, 0.7))
        coverage = np.clip(fabric * opacity * texture, 0.0, 0.95)
        fringe = []
        for _ in range(int(rng.integers(10, 40))):  # loose threads at the lower edge
            angle = rng.uniform(0.2, np.pi - 0.2)
            start = np.array(fabric_centre) + np.array([np.cos(angle) * axes[0], np.sin(angle) * axes[1]]) * 0.95
            fringe.append(_strand_points(rng, start, np.array([0.0, 1.0]), radius * rng.uniform(0.1, 0.4), 0.3, 0.0))
        coverage = 1.0 - (1.0 - coverage) * (1.0 - opacity * _draw_strand_layers(rng, (height, width), fringe))
        fabric_fill = _textured(rng, height, width, _pick_colour(rng, palette, share), 0.2)
        fgr, pha = _over(fgr, pha, fabric_fill, coverage)

    arm = np.zeros_like(head)
    side = 1 if rng.random() < 0.5 else -1
    arm_start = (int(centre[0] + side * radius * 1.5), int(centre[1] + radius * 2.0))
    arm_end = (int(arm_start[0] + side * radius * 1.2), int(arm_start[1] - radius * rng.uniform(0.5, 1.5)))
    cv2.line(arm, arm_start, arm_end, 1.0, max(2, int(radius * 0.35)), cv2.LINE_AA)
    arm = _motion_blur(arm, rng, int(rng.integers(5, 12)))
    fgr, pha = _over(fgr, pha, _textured(rng, height, width, _pick_colour(rng, palette, share * 0.5), 0.1), arm)

    if rng.random() < 0.2:  # the whole subject moves: blur colour premultiplied, then un-premultiply
        length = int(rng.integers(3, max(4, short // 25)))
        kernel_seed = int(rng.integers(1 << 30))  # one direction for colour and alpha
        blur = lambda image: _motion_blur(image, np.random.default_rng(kernel_seed), length)  # noqa: E731
        premultiplied = np.stack([blur(fgr[:, :, c] * pha) for c in range(3)], axis=2)
        pha = np.clip(blur(pha), 0.0, 1.0)
        fgr = np.where((pha > 1e-4)[:, :, None], premultiplied / np.maximum(pha, 1e-4)[:, :, None], fgr)

    if rng.random() < 0.6:  # colour spill: the scene's light on the subject's translucent and edge pixels
        spill = _pick_colour(rng, palette, 1.0) if palette is not None else natural_colours(rng, 1)[0]
        edge = 1.0 - cv2.GaussianBlur(pha, (0, 0), float(rng.uniform(1.0, 3.0)))
        amount = np.clip(edge * rng.uniform(0.2, 0.6), 0.0, 1.0)[:, :, None]
        fgr = fgr * (1 - amount) + spill * amount

    fgr = np.clip(fgr + rng.normal(0.0, 0.015, fgr.shape).astype(np.float32), 0.0, 1.0)
    return fgr.astype(np.float32), np.clip(pha, 0.0, 1.0).astype(np.float32)


def background_palette(background: np.ndarray, rng: np.random.Generator, n: int = 6) -> np.ndarray:
    """``n`` colours (n, 3) sampled from a background's pixels, for :func:`make_foreground`'s ``palette``."""
    height, width = background.shape[:2]
    return background[rng.integers(0, height, n), rng.integers(0, width, n)].astype(np.float32)


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
        bgr = make_background(size, rng)
        fgr, pha = make_foreground(size, rng, palette=background_palette(bgr, rng))  # shares the scene's colours
        name = f"{index:04d}.png"
        for folder, image in (("src", composite(fgr, pha, bgr)), ("bgr", bgr), ("pha", pha), ("fgr", fgr)):
            write_image(root / folder / name, image)
            written.append(root / folder / name)
    return written

"""The official BackgroundMattingV2 training augmentation, in NumPy/OpenCV, driven by an explicit generator.

Per sample (``dataset/augmentation.py`` + the dataset pipelines of ``train_base.py``/``train_refine.py``):

- foreground and alpha, with the *same* parameters (they are warped as one 4-channel image, so they stay
  aligned): random affine + resize to ``size`` (torchvision ``RandomAffine`` parameters scaled by
  ``max(size/w, size/h)``, bilinear, zero fill, centre crop), horizontal flip, box blur (PIL ``BoxBlur``),
  sharpen (PIL ``SHARPEN``); then torchvision ``ColorJitter`` on the foreground only;
- background: its own affine + resize, flip, box blur, sharpen and colour jitter.

Per batch (the in-loop part of the official trainers), :func:`random_crop` then :func:`simulate_plate`, the
clean-plate imperfection simulation: shadow cast on the source background only (p=0.3), composite, sensor
noise on source and plate (p=0.4), plate colour jitter (kornia style, p=0.8) and plate misalignment (p=0.3).

Images are float32 (H, W, C) arrays in [0, 1]; batches are (B, H, W, C). Every probability and range comes
from the ``augment`` section of the training config (:data:`bgmatting.config.TRAIN_DEFAULTS`). All randomness
comes from the ``rng`` argument (a ``numpy.random.Generator``), so a run is reproducible from its seed.
"""
import math

import cv2
import numpy as np

_SHARPEN = np.array([[-2, -2, -2], [-2, 32, -2], [-2, -2, -2]], np.float32) / 16.0
_GREY = np.array([0.299, 0.587, 0.114], np.float32)


# ----------------------------------------------------------------------------------------------- geometry


def sample_affine(rng, degrees, translate=None, scale=None, shear=None, image_size=(1, 1)):
    """torchvision ``RandomAffine.get_params``: (angle°, (tx, ty) px, scale, (shear_x°, shear_y°)).

    Args:
        degrees, scale, shear: (low, high) ranges (``scale``/``shear``/``translate`` may be None).
        translate: (fx, fy) maximal shift as a fraction of ``image_size`` = (width, height).
    """
    angle = rng.uniform(degrees[0], degrees[1])
    tx = ty = 0.0
    if translate is not None:
        tx = float(round(rng.uniform(-1, 1) * translate[0] * image_size[0]))
        ty = float(round(rng.uniform(-1, 1) * translate[1] * image_size[1]))
    factor = rng.uniform(scale[0], scale[1]) if scale is not None else 1.0
    shear_x = rng.uniform(shear[0], shear[1]) if shear is not None else 0.0
    return angle, (tx, ty), factor, (shear_x, 0.0)


def affine_matrix(in_size, out_size, angle, translate, scale, shear):
    """2×3 forward matrix: rotate/shear/scale about the input centre, shift, and centre on the output.

    The rotation-scale-shear block is torchvision's ``_get_inverse_affine_matrix`` inverted.

    Args:
        in_size, out_size: (width, height) in pixels.
    """
    rot = math.radians(angle)
    sx, sy = (math.radians(s) for s in shear)
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    linear = np.array([[a, b], [c, d]]) * scale
    in_centre = np.array([(in_size[0] - 1) / 2, (in_size[1] - 1) / 2])
    out_centre = np.array([(out_size[0] - 1) / 2, (out_size[1] - 1) / 2]) + np.asarray(translate, float)
    return np.hstack([linear, (out_centre - linear @ in_centre)[:, None]]).astype(np.float64)


def warp(image, matrix, out_size, interpolation=cv2.INTER_LINEAR):
    """``cv2.warpAffine`` with zero fill that keeps a trailing channel axis of size 1."""
    warped = cv2.warpAffine(image, matrix, tuple(out_size), flags=interpolation,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.reshape(out_size[1], out_size[0], image.shape[2]) if image.ndim == 3 else warped


def affine_and_resize(image, rng, size, degrees, translate, scale, shear):
    """Official ``(Pair)RandomAffineAndResize``: affine with scale/translate ×max(size/w, size/h), to size×size.

    Args:
        image: (H, W, C) float32; warped as one image, so stacked channels (fgr + alpha) share the parameters.
        size: output side in pixels.
    Returns:
        (size, size, C) float32.
    """
    h, w = image.shape[:2]
    factor = max(size / w, size / h)
    angle, shift, zoom, shear_angles = sample_affine(
        rng, degrees, [t * factor for t in translate], [s * factor for s in scale], shear, (w, h))
    matrix = affine_matrix((w, h), (size, size), angle, shift, zoom, shear_angles)
    return warp(image, matrix, (size, size))


# ------------------------------------------------------------------------------------------------ filters


def hflip(image, rng, prob):
    """Mirror left-right with probability ``prob``."""
    return image[:, ::-1].copy() if rng.random() < prob else image


def box_blur(image, rng, prob, max_radius):
    """PIL ``BoxBlur(r)`` (a (2r+1)² mean, edge pixels extended) with r ∈ {0..max_radius}, probability ``prob``."""
    if rng.random() >= prob:
        return image
    radius = int(rng.integers(0, max_radius + 1))
    if radius == 0:
        return image
    blurred = cv2.blur(image, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REPLICATE)
    return blurred.reshape(image.shape)


def sharpen(image, rng, prob):
    """PIL ``ImageFilter.SHARPEN`` (3×3 kernel, 32 centre / −2 around, /16), clipped, probability ``prob``.

    As PIL, the one-pixel border is left as it was.
    """
    if rng.random() >= prob:
        return image
    sharpened = np.clip(cv2.filter2D(image, -1, _SHARPEN), 0.0, 1.0).reshape(image.shape)
    result = image.copy()
    result[1:-1, 1:-1] = sharpened[1:-1, 1:-1]
    return result


def _grey(image):
    return image @ _GREY


def _shift_hue(image, shift):
    """Rotate the hue by ``shift`` turns (−0.5..0.5)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + shift * 360.0, 360.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def color_jitter(image, rng, brightness, contrast, saturation, hue, style="torchvision"):
    """Random brightness, contrast, saturation and hue in a random order.

    Factors are drawn from [max(0, 1−x), 1+x] and the hue shift from [−hue, hue] (in turns).

    ``style="torchvision"`` (PIL ``ImageEnhance``, used on the foreground/background images): brightness
    scales, contrast blends with the mean grey level, saturation blends with the grey image.
    ``style="kornia"`` (kornia 0.4 ``ColorJitter``, used on the clean plate): brightness adds ``factor − 1``,
    contrast multiplies, saturation scales HSV saturation.

    Args:
        image: (H, W, 3) float32 in [0, 1].
    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    factors = [rng.uniform(max(0.0, 1 - x), 1 + x) for x in (brightness, contrast, saturation)]
    hue_shift = rng.uniform(-hue, hue)
    image = image.astype(np.float32)
    for op in rng.permutation(4):
        if op == 0:
            image = image + (factors[0] - 1) if style == "kornia" else image * factors[0]
        elif op == 1:
            mean = 0.0 if style == "kornia" else float(_grey(image).mean())
            image = mean + factors[1] * (image - mean)
        elif op == 2:
            grey = _grey(image)[:, :, None]
            if style == "kornia":
                hsv = cv2.cvtColor(np.clip(image, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
                hsv[:, :, 1] = np.clip(hsv[:, :, 1] * factors[2], 0.0, 1.0)
                image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            else:
                image = grey + factors[2] * (image - grey)
        else:
            image = _shift_hue(np.clip(image, 0.0, 1.0), hue_shift)
        image = np.clip(image, 0.0, 1.0).astype(np.float32)
    return image


# ------------------------------------------------------------------------------------------ sample level


def augment_foreground(fgr, pha, rng, cfg, size, train=True, valid_scale=(0.3, 1.0)):
    """The official foreground/alpha pipeline.

    Args:
        fgr: (H, W, 3) float32 in [0, 1]; pha: (H, W) float32 in [0, 1].
        cfg: the ``augment.fgr`` config section; size: output side.
        train: False → the validation pipeline (affine with ``valid_scale`` only).
    Returns:
        (fgr (size, size, 3), pha (size, size)), float32 in [0, 1], geometrically aligned.
    """
    affine = dict(cfg["affine"], scale=cfg["affine"]["scale"] if train else valid_scale)
    pair = affine_and_resize(np.dstack([fgr, pha]).astype(np.float32), rng, size, **affine)
    if train:
        pair = hflip(pair, rng, cfg["hflip"])
        pair = box_blur(pair, rng, cfg["box_blur"]["prob"], cfg["box_blur"]["max_radius"])
        pair = sharpen(pair, rng, cfg["sharpen"])
    fgr, pha = pair[:, :, :3], np.clip(pair[:, :, 3], 0.0, 1.0)
    if train:
        fgr = color_jitter(fgr, rng, *cfg["color_jitter"])
    return np.ascontiguousarray(fgr), np.ascontiguousarray(pha)


def augment_background(bgr, rng, cfg, size, train=True, valid_scale=(1.0, 1.2)):
    """The official background pipeline; ``bgr`` (H, W, 3) float32 → (size, size, 3) float32 in [0, 1]."""
    affine = dict(cfg["affine"], scale=cfg["affine"]["scale"] if train else valid_scale)
    bgr = affine_and_resize(bgr.astype(np.float32), rng, size, **affine)
    if train:
        bgr = hflip(bgr, rng, cfg["hflip"])
        bgr = box_blur(bgr, rng, cfg["box_blur"]["prob"], cfg["box_blur"]["max_radius"])
        bgr = sharpen(bgr, rng, cfg["sharpen"])
        bgr = color_jitter(bgr, rng, *cfg["color_jitter"])
    return np.ascontiguousarray(bgr)


# ------------------------------------------------------------------------------------------- batch level


def random_crop(batches, rng, low, high, multiple=1):
    """Official random crop: width and height drawn from [low, high), rounded down to ``multiple``; every image
    is scaled (bilinear) to cover that size, then centre-cropped. One size for the whole batch.

    ``train_base``: low=256, high=512, multiple=1 (square resize of a square input); ``train_refine``:
    1024, 2048, multiple=4.

    Args:
        batches: list of (B, H, W, C) arrays sharing H and W.
    Returns:
        list of (B, h, w, C) float32 arrays.
    """
    width = int(rng.integers(low, high)) // multiple * multiple
    height = int(rng.integers(low, high)) // multiple * multiple
    src_h, src_w = batches[0].shape[1:3]
    scale = max(width / src_w, height / src_h)
    new_w, new_h = int(src_w * scale), int(src_h * scale)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    results = []
    for batch in batches:
        resized = [cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).reshape(new_h, new_w, -1)
                   for image in batch]
        results.append(np.stack(resized)[:, top:top + height, left:left + width].astype(np.float32))
    return results


def _chosen(rng, batch_size, prob):
    return np.flatnonzero(rng.random(batch_size) < prob)


def cast_shadow(src_bgr, pha, rng, cfg):
    """Darken the source background with a moved, blurred copy of the alpha (the plate keeps no shadow).

    ``shadow = pha·strength·U`` (U ~ U(0,1) per batch), one random affine for the batch (nearest, zero
    fill), box blur k×k with k ∈ [blur[0], blur[1]) (reflect borders); ``src_bgr −= shadow``, clipped.

    Args:
        src_bgr: (B, H, W, 3); pha: (B, H, W, 1). Only the samples drawn with probability ``cfg["prob"]`` change.
    """
    chosen = _chosen(rng, len(src_bgr), cfg["prob"])
    if not len(chosen):
        return src_bgr
    src_bgr = src_bgr.copy()
    strength = cfg["strength"] * rng.random()
    h, w = pha.shape[1:3]
    params = sample_affine(rng, cfg["degrees"], cfg["translate"], cfg["scale"], cfg["shear"], (w, h))
    matrix = affine_matrix((w, h), (w, h), *params)
    kernel = int(rng.integers(cfg["blur"][0], cfg["blur"][1]))
    for i in chosen:
        shadow = warp(pha[i] * strength, matrix, (w, h), cv2.INTER_NEAREST)
        shadow = cv2.blur(shadow, (kernel, kernel), borderType=cv2.BORDER_REFLECT_101).reshape(h, w, 1)
        src_bgr[i] = np.clip(src_bgr[i] - shadow, 0.0, 1.0)
    return src_bgr


def add_noise(images, rng, chosen, sigma):
    """Gaussian noise ``N(0,1)·sigma·U`` (U ~ U(0,1) per call) on the ``chosen`` samples, clipped to [0, 1]."""
    if not len(chosen):
        return images
    images = images.copy()
    amount = sigma * rng.random()
    images[chosen] = np.clip(images[chosen] + rng.standard_normal(images[chosen].shape) * amount, 0.0, 1.0)
    return images.astype(np.float32)


def simulate_plate(pha, fgr, bgr, rng, cfg):
    """Composite a training source and make its clean plate imperfect, as the official trainers do.

    Order: shadow on the source background → composite ``src = fgr·pha + src_bgr·(1 − pha)`` → noise on src
    and plate (same samples, independent noise) → kornia-style colour jitter on the plate (per-sample
    parameters) → one small random affine for the chosen plates (nearest, zero fill).

    Args:
        pha: (B, H, W, 1); fgr, bgr: (B, H, W, 3); float32 in [0, 1].
        cfg: the ``augment.plate`` config section.
    Returns:
        (src, bgr): (B, H, W, 3) float32 in [0, 1] — the photo and the (imperfect) plate given to the model.
    """
    src_bgr = cast_shadow(bgr, pha, rng, cfg["shadow"])
    src = (fgr * pha + src_bgr * (1.0 - pha)).astype(np.float32)
    noisy = _chosen(rng, len(src), cfg["noise"]["prob"])
    src = add_noise(src, rng, noisy, cfg["noise"]["sigma"])
    bgr = add_noise(bgr, rng, noisy, cfg["noise"]["sigma"])
    jitter = cfg["jitter"]
    chosen = _chosen(rng, len(bgr), jitter["prob"])
    if len(chosen):
        bgr = bgr.copy()
        for i in chosen:
            bgr[i] = color_jitter(bgr[i], rng, jitter["brightness"], jitter["contrast"], jitter["saturation"],
                                  jitter["hue"], style="kornia")
    misalign = cfg["misalign"]
    chosen = _chosen(rng, len(bgr), misalign["prob"])
    if len(chosen):
        bgr = bgr.copy()
        h, w = bgr.shape[1:3]
        params = sample_affine(rng, misalign["degrees"], misalign["translate"], None, None, (w, h))
        matrix = affine_matrix((w, h), (w, h), *params)
        for i in chosen:
            bgr[i] = warp(bgr[i], matrix, (w, h), cv2.INTER_NEAREST)
    return src, bgr.astype(np.float32)

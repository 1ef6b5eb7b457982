"""Augmentation: fgr/alpha stay aligned and in range through every op; each op does what it claims."""
import copy

import numpy as np
import pytest

from bgmatting.config import TRAIN_DEFAULTS
from bgmatting.data import augment
from bgmatting.data.synthetic import item_rng, make_background, make_foreground


def _pair(size=48, seed=0):
    """A foreground whose red channel equals its alpha, so any misalignment shows as a difference."""
    _, pha = make_foreground(size, item_rng(seed, "fgr", 0))
    fgr = np.dstack([pha, np.full_like(pha, 0.5), 1 - pha])
    return fgr.astype(np.float32), pha


def _always(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.update(hflip=1.0, box_blur={"prob": 1.0, "max_radius": 3}, sharpen=1.0, color_jitter=[0.0, 0.0, 0.0, 0.0])
    return cfg


@pytest.mark.parametrize("seed", range(4))
def test_foreground_pipeline_keeps_alignment_and_range(seed):
    fgr, pha = _pair(60, seed)
    out_fgr, out_pha = augment.augment_foreground(fgr, pha, np.random.default_rng(seed),
                                                  _always(TRAIN_DEFAULTS["augment"]["fgr"]), 32)
    assert out_fgr.shape == (32, 32, 3) and out_pha.shape == (32, 32)
    assert out_pha.min() >= 0 and out_pha.max() <= 1 and out_fgr.min() >= 0 and out_fgr.max() <= 1
    np.testing.assert_allclose(out_fgr[:, :, 0], out_pha, atol=1e-6)
    assert out_pha.max() > 0.5  # the subject is still in the picture


def test_full_train_pipeline_with_colour_jitter_stays_in_range():
    fgr, pha = make_foreground(40, item_rng(1, "fgr", 0))
    cfg = TRAIN_DEFAULTS["augment"]
    for seed in range(3):
        out_fgr, out_pha = augment.augment_foreground(fgr, pha, np.random.default_rng(seed), cfg["fgr"], 24)
        out_bgr = augment.augment_background(make_background(40, np.random.default_rng(seed)),
                                             np.random.default_rng(seed), cfg["bgr"], 24)
        for image in (out_fgr, out_pha, out_bgr):
            assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
        assert out_bgr.shape == (24, 24, 3)


def test_identity_affine_returns_the_input_and_downscale_keeps_the_centre():
    image = np.random.default_rng(0).random((16, 16, 4)).astype(np.float32)
    same = augment.affine_and_resize(image, np.random.default_rng(0), 16, degrees=(0, 0), translate=(0, 0),
                                     scale=(1, 1), shear=(0, 0))
    np.testing.assert_allclose(same, image, atol=1e-6)
    big = np.zeros((33, 33, 1), np.float32)
    big[15:18, 15:18] = 1  # a 3x3 block at the centre of a 33x33 image
    small = augment.affine_and_resize(big, np.random.default_rng(0), 11, degrees=(0, 0), translate=(0, 0),
                                      scale=(1, 1), shear=(0, 0))
    assert small.shape == (11, 11, 1) and np.unravel_index(small.argmax(), small.shape)[:2] == (5, 5)


def test_flip_blur_sharpen_change_the_image():
    rng = np.random.default_rng(0)
    image = rng.random((8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(augment.hflip(image, rng, 1.0), image[:, ::-1])
    assert augment.hflip(image, rng, 0.0) is image
    step = np.zeros((5, 5, 1), np.float32)
    step[:, 3:] = 1
    # with max_radius 1 the drawn radius is 0 or 1; draw until it is 1: a 3x3 mean across the edge gives 1/3
    blurred = step
    while blurred is step or np.array_equal(blurred, step):
        blurred = augment.box_blur(step, rng, 1.0, 1)
    assert blurred[2, 2, 0] == pytest.approx(1 / 3) and blurred[2, 3, 0] == pytest.approx(2 / 3)
    sharp = augment.sharpen(np.full((5, 5, 1), 0.5, np.float32), rng, 1.0)
    np.testing.assert_allclose(sharp, 0.5, atol=1e-6)  # the kernel sums to 1: flat images are unchanged
    spike = np.full((5, 5, 1), 0.5, np.float32)
    spike[2, 2] = 0.6
    assert augment.sharpen(spike, rng, 1.0)[2, 2, 0] == pytest.approx(0.5 + 0.1 * 32 / 16)


def test_colour_jitter_styles():
    image = np.random.default_rng(0).uniform(0.2, 0.6, (6, 6, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    scaled = augment.color_jitter(image, rng, 0.3, 0.0, 0.0, 0.0, style="torchvision")
    ratio = scaled / image
    assert np.ptp(ratio) < 1e-4 and 0.7 <= ratio.mean() <= 1.3 and abs(ratio.mean() - 1) > 1e-3
    shifted = augment.color_jitter(image, rng, 0.3, 0.0, 0.0, 0.0, style="kornia")
    offset = shifted - image
    assert np.ptp(offset) < 1e-4 and abs(offset.mean()) <= 0.3
    unchanged = augment.color_jitter(image, rng, 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(unchanged, image, atol=1e-5)


def test_random_crop_sizes_and_alignment():
    fgr, pha = _pair(64)
    rng = np.random.default_rng(0)
    for multiple in (1, 4):
        cropped_pha, cropped_fgr = augment.random_crop([pha[None, :, :, None], fgr[None]], rng, 20, 60, multiple)
        h, w = cropped_pha.shape[1:3]
        assert 20 - multiple < h < 60 and 20 - multiple < w < 60 and h % multiple == 0 and w % multiple == 0
        np.testing.assert_allclose(cropped_fgr[..., 0], cropped_pha[..., 0], atol=1e-6)


def _plate_cfg(**probs):
    cfg = copy.deepcopy(TRAIN_DEFAULTS["augment"]["plate"])
    for name in cfg:
        cfg[name]["prob"] = probs.get(name, 0.0)
    return cfg


def _batch(n=3, size=32):
    fgr, pha = zip(*(make_foreground(size, item_rng(0, "fgr", i)) for i in range(n)))
    bgr = [make_background(size, item_rng(0, "bgr", i)) for i in range(n)]
    return np.stack(pha)[..., None], np.stack(fgr), np.stack(bgr)


def test_plate_simulation_off_gives_the_exact_composite():
    pha, fgr, bgr = _batch()
    src, plate = augment.simulate_plate(pha, fgr, bgr, np.random.default_rng(0), _plate_cfg())
    np.testing.assert_allclose(src, fgr * pha + bgr * (1 - pha), atol=1e-6)
    np.testing.assert_array_equal(plate, bgr)


@pytest.mark.parametrize("name", ["shadow", "noise", "jitter", "misalign"])
def test_each_plate_imperfection(name):
    pha, fgr, bgr = _batch()
    cfg = _plate_cfg(**{name: 1.0})
    cfg["shadow"]["strength"] = 1.0
    cfg["misalign"]["translate"] = [0.1, 0.1]  # the official 1 % is below one pixel at this test size
    rng = np.random.default_rng(5)
    src, plate = augment.simulate_plate(pha, fgr, bgr, rng, cfg)
    composite = fgr * pha + bgr * (1 - pha)
    for image in (src, plate):
        assert image.shape == bgr.shape and image.min() >= 0 and image.max() <= 1
    if name == "shadow":  # darker source background, untouched plate
        np.testing.assert_array_equal(plate, bgr)
        assert np.all(src <= composite + 1e-6) and (composite - src).max() > 0.01
    elif name == "noise":  # noise on both, independent
        assert np.abs(src - composite).mean() > 1e-4 and np.abs(plate - bgr).mean() > 1e-4
        assert not np.allclose(src - composite, plate - bgr)
    else:  # the plate changes, the source does not
        np.testing.assert_allclose(src, composite, atol=1e-6)
        assert np.abs(plate - bgr).mean() > 1e-3


class _FixedRng:
    """Stands in for a numpy Generator: returns preset draws so one op can be compared with the reference."""

    def __init__(self, uniforms=(), order=(), integer=0):
        self.uniforms, self.order, self.integer = list(uniforms), order, integer

    def random(self):
        return 0.0  # always below the probability: the op is applied

    def uniform(self, low, high):
        return self.uniforms.pop(0)

    def integers(self, low, high):
        return self.integer

    def permutation(self, n):
        return np.array(self.order)


def _rgb8(seed=0):
    return (np.random.default_rng(seed).random((16, 18, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("radius", [1, 2, 5])
def test_box_blur_matches_pil(radius):
    from PIL import Image, ImageFilter

    image = _rgb8()
    expected = np.asarray(Image.fromarray(image).filter(ImageFilter.BoxBlur(radius)), np.float32)
    ours = augment.box_blur(image.astype(np.float32), _FixedRng(integer=radius), 1.0, 5)
    assert np.abs(ours - expected).max() <= 1.0  # PIL rounds to 8 bits


def test_sharpen_matches_pil_including_the_untouched_border():
    from PIL import Image, ImageFilter

    image = _rgb8(1)
    expected = np.asarray(Image.fromarray(image).filter(ImageFilter.SHARPEN), np.float32)
    ours = augment.sharpen(image.astype(np.float32) / 255, _FixedRng(), 1.0) * 255
    assert np.abs(ours - expected).max() <= 0.51


@pytest.mark.parametrize("op, factor", [(0, 1.1), (1, 0.9), (2, 1.2), (3, 0.03)])
def test_colour_jitter_matches_torchvision_on_pil(op, factor):
    from PIL import Image
    import torchvision.transforms.functional as TF

    reference = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue][op]
    image = _rgb8(2)
    expected = np.asarray(reference(Image.fromarray(image), factor), np.float32)
    draws = [1.0, 1.0, 1.0, 0.0]
    draws[op] = factor
    ours = augment.color_jitter(image.astype(np.float32) / 255, _FixedRng(draws, [op]), 0.15, 0.15, 0.15, 0.05) * 255
    difference = np.abs(ours - expected)
    if op < 3:
        assert difference.max() <= 1.5  # 8-bit rounding (PIL's contrast also rounds the mean grey level)
    else:  # PIL's HSV holds hue, saturation and value in 8 bits
        assert difference.mean() <= 2.0 and difference.max() <= 16


@pytest.mark.parametrize("angle, shift, scale, shear", [(3.0, (2, -1), 1.2, (4.0, 0.0)), (-5.0, (0, 0), 0.8, (0.0, 0.0)),
                                                         (4.0, (-2, 3), 0.9, (-3.0, 0.0))])
def test_affine_matches_torchvision_on_pil(angle, shift, scale, shear):
    import cv2
    from PIL import Image
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    rows, cols = np.indices((40, 48))
    image = np.dstack([128 + 100 * np.sin(cols / 5), 128 + 100 * np.cos(rows / 6),
                       128 + 60 * np.sin((rows + cols) / 7)]).astype(np.uint8)
    expected = np.asarray(TF.affine(Image.fromarray(image), angle=angle, translate=list(shift), scale=scale,
                                    shear=list(shear), interpolation=InterpolationMode.BILINEAR), np.float32)
    matrix = augment.affine_matrix((48, 40), (48, 40), angle, shift, scale, shear)
    ours = augment.warp(image.astype(np.float32), matrix, (48, 40))
    # compare where the source covers the whole bilinear footprint (the two libraries treat edges differently)
    covered = augment.warp(np.ones((40, 48, 1), np.float32), matrix, (48, 40))[:, :, 0] > 0.999
    covered = cv2.erode(covered.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert covered.mean() > 0.5
    assert np.abs(ours - expected)[covered].max() <= 1.5  # PIL's fixed-point bilinear weights

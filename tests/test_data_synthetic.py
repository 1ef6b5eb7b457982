"""Synthetic data: the public layouts, determinism by seed, thin/soft structures, and the CLI."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from bgmatting.data import synthetic
from bgmatting.data.io import read_alpha, read_image, read_rgba, read_trimap

ROOT = Path(__file__).resolve().parents[1]


def _relative(files, root):
    return sorted(str(Path(f).relative_to(root)) for f in files)


def test_fgr_pha_layout_is_paired_and_deterministic(tmp_path):
    first = synthetic.make_fgr_pha_dataset(tmp_path / "a", n=5, size=48, seed=3)
    second = synthetic.make_fgr_pha_dataset(tmp_path / "b", n=5, size=48, seed=3)
    other = synthetic.make_fgr_pha_dataset(tmp_path / "c", n=5, size=48, seed=4)
    for split, count in (("train", 5), ("valid", 2)):
        fgr = sorted((tmp_path / "a" / split / "fgr").rglob("*.png"))
        pha = sorted((tmp_path / "a" / split / "pha").rglob("*.png"))
        assert len(fgr) == len(pha) == count
        assert [p.relative_to(tmp_path / "a" / split / "fgr") for p in fgr] == \
               [p.relative_to(tmp_path / "a" / split / "pha") for p in pha]
    assert (tmp_path / "a" / "train" / "fgr" / "clip0001" / "0004.png").exists()  # nested clips of 4 frames
    for a, b in zip(sorted(first), sorted(second)):
        assert a.read_bytes() == b.read_bytes()
    assert _relative(first, tmp_path / "a") == _relative(other, tmp_path / "c")
    assert any(a.read_bytes() != c.read_bytes() for a, c in zip(sorted(first), sorted(other)))


def test_foreground_has_opaque_soft_and_thin_structures():
    _, pha = synthetic.make_foreground(128, synthetic.item_rng(0, "fgr", 0))
    assert pha.dtype == np.float32 and pha.min() >= 0 and pha.max() <= 1
    assert (pha == 1).mean() > 0.05 and (pha == 0).mean() > 0.2
    assert ((pha > 0.05) & (pha < 0.95)).mean() > 0.01
    # Hair strands are 1-2 px wide: an opening with a 3x3 square removes them, so many covered pixels vanish.
    covered = (pha > 0.3).astype(np.uint8)
    opened = cv2.morphologyEx(covered, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    assert (covered & (1 - opened)).sum() > 100


def test_photomatte85_is_rgba_with_alpha(tmp_path):
    files = synthetic.make_photomatte85(tmp_path, n=2, size=(40, 56), seed=0)
    assert [f.name for f in files] == ["0000.png", "0001.png"]
    rgba = read_rgba(files[0])
    assert rgba.shape == (40, 56, 4)
    assert 0 < (rgba[:, :, 3] == 255).mean() < 1 and (rgba[:, :, 3] == 0).any()


def test_comp1k_layout_merged_is_the_composite_and_trimap_covers_fractional_alpha(tmp_path):
    synthetic.make_comp1k(tmp_path, n=2, size=64, seed=1)
    names = sorted(p.name for p in (tmp_path / "merged").iterdir())
    assert names == ["fg0_bg0.png", "fg0_bg1.png", "fg1_bg2.png", "fg1_bg3.png"]
    for folder in ("alpha_copy", "trimaps"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == names
    assert len(list((tmp_path / "fg").iterdir())) == 2 and len(list((tmp_path / "bg").iterdir())) == 4
    alpha = read_alpha(tmp_path / "alpha_copy" / "fg1_bg2.png")
    trimap = read_trimap(tmp_path / "trimaps" / "fg1_bg2.png")
    assert set(np.unique(trimap)) == {0, 128, 255}
    assert np.all(trimap[(alpha > 0.01) & (alpha < 0.99)] == 128)
    fg = read_image(tmp_path / "fg" / "fg1.png") / 255.0
    bg = read_image(tmp_path / "bg" / "bg2.png") / 255.0
    expected = fg * alpha[:, :, None] + bg * (1 - alpha[:, :, None])
    merged = read_image(tmp_path / "merged" / "fg1_bg2.png") / 255.0
    assert np.abs(merged - expected).max() < 3 / 255  # rounding of three 8-bit images


def test_clean_plate_pairs_and_backgrounds(tmp_path):
    synthetic.make_clean_plate_pairs(tmp_path / "cp", n=2, size=48, seed=0)
    for folder in ("src", "bgr", "pha", "fgr"):
        assert sorted(p.name for p in (tmp_path / "cp" / folder).iterdir()) == ["0000.png", "0001.png"]
    src = read_image(tmp_path / "cp" / "src" / "0000.png").astype(int)
    bgr = read_image(tmp_path / "cp" / "bgr" / "0000.png").astype(int)
    pha = read_alpha(tmp_path / "cp" / "pha" / "0000.png")
    assert np.abs(src - bgr)[pha == 0].max() <= 1 and np.abs(src - bgr)[pha == 1].mean() > 10
    backgrounds = synthetic.make_backgrounds(tmp_path / "bg", n=3, size=32, seed=0)
    assert [read_image(p).shape for p in backgrounds] == [(32, 32, 3)] * 3
    assert read_image(backgrounds[0]).std() > 10  # textured, not flat


def test_cli_writes_all_layouts_and_rejects_bad_input(tmp_path):
    run = [sys.executable, str(ROOT / "tools" / "make_synthetic.py"), "--out", str(tmp_path / "s")]
    done = subprocess.run(run + ["--n", "2", "--size", "32"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for folder in ("videomatte/train/fgr", "photomatte85", "comp1k/merged", "backgrounds/valid", "clean_plate/bgr"):
        assert any((tmp_path / "s" / folder).rglob("*.*")), folder
    bad = subprocess.run(run + ["--n", "0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --n must be at least 1, got 0"


# ------------------------------------------------------------------------------------- richer synthetic data

def test_generators_are_deterministic_by_seed():
    for seed in (0, 5):
        first = synthetic.make_foreground(96, synthetic.item_rng(seed, "fgr", 3))
        again = synthetic.make_foreground(96, synthetic.item_rng(seed, "fgr", 3))
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
        assert np.array_equal(synthetic.make_background(96, synthetic.item_rng(seed, "bgr", 1)),
                              synthetic.make_background(96, synthetic.item_rng(seed, "bgr", 1)))
    other = synthetic.make_foreground(96, synthetic.item_rng(1, "fgr", 3))
    assert not np.array_equal(first[1], other[1])


def _foregrounds(n=12, size=160):
    return [synthetic.make_foreground(size, synthetic.item_rng(0, "fgr", i)) for i in range(n)]


def test_hair_is_many_thin_strands_at_varied_opacity():
    for _, pha in _foregrounds(6):
        covered = ((pha > 0.02) & (pha < 0.98)).astype(np.uint8)
        opened = cv2.morphologyEx(covered, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        thin = covered & (1 - opened)
        assert thin.sum() > 80  # thin fractional structures
        levels = np.histogram(pha[thin > 0], bins=10, range=(0, 1))[0]
        assert (levels > 10).sum() >= 5  # coverage spread over many levels, not one opacity
        count, _ = cv2.connectedComponents((pha > 0.02).astype(np.uint8))
        assert count >= 2


def test_some_subjects_have_wide_translucent_regions_and_some_move():
    translucent = [((pha > 0.1) & (pha < 0.8)).astype(np.uint8) for _, pha in _foregrounds()]
    opened = [cv2.morphologyEx(t, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).sum() for t in translucent]
    assert sum(o > 200 for o in opened) >= 4  # fabric/veil: translucent areas wider than a strand


def test_foreground_colour_is_defined_and_spill_tints_edges():
    for fgr, pha in _foregrounds(4):
        assert fgr.dtype == np.float32 and np.isfinite(fgr).all() and fgr.min() >= 0 and fgr.max() <= 1
        assert fgr[pha == 0].std() > 0.01  # defined (not black) where the subject is absent


def test_palette_makes_subjects_share_colours_with_the_scene():
    def distance(palette):
        gaps = []
        for i in range(10):
            background = synthetic.make_background(96, synthetic.item_rng(0, "bgr", i))
            fgr, pha = synthetic.make_foreground(96, synthetic.item_rng(0, "fgr", i),
                                                 palette=synthetic.background_palette(
                                                     background, synthetic.item_rng(0, "plate", i))
                                                 if palette else None)
            subject = fgr[pha > 0.99].mean(axis=0)
            gaps.append(np.abs(background.reshape(-1, 3) - subject).sum(axis=1).min())
        return np.median(gaps)

    assert distance(True) <= distance(False)


def test_backgrounds_have_structure_at_several_scales():
    image = synthetic.make_background(128, synthetic.item_rng(0, "bgr", 0)).mean(axis=2)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean())))
    radius = np.hypot(*np.meshgrid(np.arange(-64, 64), np.arange(-64, 64)))
    bands = [spectrum[(radius >= low) & (radius < high)].mean() for low, high in ((1, 4), (4, 12), (12, 32))]
    assert all(b > 0 for b in bands) and bands[0] > bands[1] > bands[2]  # falling, as natural images (1/f)
    assert bands[2] > bands[0] * 0.002


def test_generation_is_fast_enough_for_hundreds_of_images():
    import time

    start = time.time()
    synthetic.make_foreground(320, synthetic.item_rng(0, "fgr", 0))
    synthetic.make_background(320, synthetic.item_rng(0, "bgr", 0))
    assert time.time() - start < 3.0

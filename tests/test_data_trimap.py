"""Trimaps from ground-truth alpha (eroded known regions) and from a coarse alpha (grown unknown band)."""
import numpy as np

from bgmatting.data.trimap import random_trimap, trimap_from_alpha, trimap_from_coarse_alpha


def _disc(size=41, radius=10):
    rows, cols = np.indices((size, size))
    return ((rows - size // 2) ** 2 + (cols - size // 2) ** 2 <= radius**2).astype(np.float32)


def test_trimap_from_alpha_erodes_known_regions_by_the_kernel():
    alpha = _disc()
    alpha[20, 5] = 0.5  # an isolated fractional pixel must be unknown
    trimap = trimap_from_alpha(alpha, fg_kernel=5, bg_kernel=3)
    assert set(np.unique(trimap)) == {0, 128, 255}
    assert trimap[20, 5] == 128 and trimap[20, 20] == 255 and trimap[0, 0] == 0
    # the disc's edge pixel on the centre row (column 10) is foreground in alpha but unknown after erosion by 5
    assert alpha[20, 10] == 1 and trimap[20, 10] == 128 and trimap[20, 13] == 255
    # background erosion by 3 (radius 1): the background pixel touching the disc is unknown, one further is not
    assert trimap[20, 9] == 128 and trimap[20, 7] == 0
    unknown_wide = (trimap_from_alpha(alpha, 15, 15) == 128).sum()
    assert unknown_wide > (trimap == 128).sum()


def test_random_trimap_is_reproducible():
    alpha = _disc()
    first = random_trimap(alpha, np.random.default_rng(3))
    assert np.array_equal(first, random_trimap(alpha, np.random.default_rng(3)))
    assert any(not np.array_equal(first, random_trimap(alpha, np.random.default_rng(s))) for s in range(4, 10))


def test_trimap_from_coarse_alpha_marks_soft_pixels_and_an_edge_band():
    alpha = _disc()
    hard = trimap_from_coarse_alpha(alpha, band=0)
    assert np.array_equal(hard, np.where(alpha == 1, 255, 0))  # no soft pixels, no band: a binary trimap
    banded = trimap_from_coarse_alpha(alpha, band=2)
    assert banded[20, 20] == 255 and banded[0, 0] == 0
    assert banded[20, 10] == 128 and banded[20, 9] == 128  # within 2 px of the edge, on both sides
    assert banded[20, 7] == 0 and banded[20, 13] == 255  # 3 px away: known
    soft = alpha * 0.5
    assert np.all(trimap_from_coarse_alpha(soft, band=0)[alpha == 1] == 128)

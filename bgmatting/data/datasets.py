"""Training/validation samples for BackgroundMattingV2: foreground/alpha pairs composited on backgrounds.

A sample is addressed by its *sample number*, not drawn from a stateful generator: training sample ``k``
uses the foreground at position ``k mod N`` of a seeded permutation for epoch ``k // N`` (backgrounds
likewise, independently, as the official ``ZipDataset`` pairs them by index modulo length after shuffling),
and augments with a generator seeded by ``(seed, k)``. Hence a run resumed at iteration ``i`` sees exactly
the samples an uninterrupted run would, and data-parallel ranks read disjoint samples.

Example:
    >>> samples = MattingSamples.from_config(cfg, "train")
    >>> pha, fgr, bgr = samples.sample(0)     # (S, S, 1), (S, S, 3), (S, S, 3) float32 in [0, 1]
"""
import functools
from pathlib import Path

import numpy as np

from bgmatting.data import augment
from bgmatting.data.io import read_image
from bgmatting.data.layouts import background_paths, fgr_pha_items, load_foreground
from bgmatting.errors import UserError

FGR_PHA_LAYOUT = "ROOT/fgr/... and ROOT/pha/... images paired by relative path (e.g. VideoMatte240K/train)"
BACKGROUNDS_LAYOUT = "a folder of background images (any nesting)"


def require_path(key: str, path, layout: str) -> Path:
    """Return ``path`` as a Path, or raise one UserError line naming the config key, the path and the layout."""
    if path in (None, ""):
        raise UserError(f"config key {key} is not set; expected {layout} (set it with --opts {key}=PATH)")
    if not Path(path).is_dir():
        raise UserError(f"config key {key}: folder not found: {path}; expected {layout}")
    return Path(path)


class MattingSamples:
    """Augmented (pha, fgr, bgr) samples at a fixed resolution, addressed by sample number.

    Args:
        items: foreground items of :func:`bgmatting.data.layouts.fgr_pha_items` (``{"fgr", "pha"}`` paths).
        backgrounds: background image paths.
        augment_cfg: the ``augment`` config section.
        resolution: output side S (official: 512 base, 2048 refine).
        seed: base seed.
        train: True → official training augmentation and shuffling; False → the validation pipeline on
            ``valid_samples`` evenly spaced items (official ``SampleDataset``), fixed per index.
        valid_samples: number of validation samples (ignored when training).
    Output of :meth:`sample`:
        pha (S, S, 1), fgr (S, S, 3), bgr (S, S, 3): float32 in [0, 1].
    Example:
        >>> samples = MattingSamples(items, backgrounds, cfg["augment"], 512, seed=0)
        >>> pha, fgr, bgr = samples.sample(123)
    """

    def __init__(self, items, backgrounds, augment_cfg, resolution, seed=0, train=True, valid_samples=50):
        if not items or not backgrounds:
            raise UserError("a matting dataset needs at least one foreground/alpha pair and one background")
        self.items, self.backgrounds = list(items), list(backgrounds)
        self.cfg, self.resolution, self.seed, self.train = augment_cfg, int(resolution), int(seed), train
        self.valid_samples = min(valid_samples, max(len(self.items), len(self.backgrounds)))

    @classmethod
    def from_config(cls, cfg: dict, split: str):
        """Build the ``split`` ("train" or "valid") samples from a training config, checking the paths."""
        data = cfg["data"]
        root = require_path(f"data.{split}.root", data[split]["root"], FGR_PHA_LAYOUT)
        backgrounds = require_path(f"data.{split}.backgrounds", data[split]["backgrounds"], BACKGROUNDS_LAYOUT)
        return cls(fgr_pha_items(root), background_paths(backgrounds), cfg["augment"], data["resolution"],
                   seed=cfg["train"]["seed"], train=split == "train", valid_samples=data["valid_samples"])

    def __len__(self):
        """Number of distinct samples: the foreground count when training, ``valid_samples`` otherwise."""
        return len(self.items) if self.train else self.valid_samples

    @functools.lru_cache(maxsize=4)
    def _permutation(self, kind: int, epoch: int, size: int):
        return np.random.default_rng([self.seed, kind, epoch]).permutation(size)

    def _indices(self, number: int):
        if not self.train:
            total = max(len(self.items), len(self.backgrounds))
            index = number * total // self.valid_samples
            return index % len(self.items), index % len(self.backgrounds)
        n_fg, n_bg = len(self.items), len(self.backgrounds)
        fg = self._permutation(0, number // n_fg, n_fg)[number % n_fg]
        bg = self._permutation(1, number // n_bg, n_bg)[number % n_bg]
        return int(fg), int(bg)

    def sample(self, number: int):
        """The augmented sample ``number`` (any non-negative int when training; < len(self) otherwise)."""
        fg_index, bg_index = self._indices(number)
        rng = np.random.default_rng([self.seed, 2 if self.train else 3, number])
        fgr, pha = load_foreground(self.items[fg_index])
        bgr = read_image(self.backgrounds[bg_index]).astype(np.float32) / 255.0
        cfg = self.cfg
        fgr, pha = augment.augment_foreground(fgr, pha, rng, cfg["fgr"], self.resolution, self.train,
                                              cfg["valid_fgr_scale"])
        bgr = augment.augment_background(bgr, rng, cfg["bgr"], self.resolution, self.train, cfg["valid_bgr_scale"])
        return pha[:, :, None], fgr, bgr


class SampleRange:
    """A map-style view of the training samples one process reads, for ``paddle.io.DataLoader``.

    Item ``k`` of this view is sample ``((start_iter + k // B) · world + rank) · B + k mod B`` of ``samples``
    (B = per-process batch size), i.e. iteration ``start_iter + k // B`` of this rank.

    Args:
        samples: :class:`MattingSamples`; start_iter/stop_iter: iteration range; batch_size: per process;
        rank, world: this process and the number of processes.
    """

    def __init__(self, samples, start_iter, stop_iter, batch_size, rank=0, world=1):
        self.samples, self.start, self.batch_size = samples, start_iter, batch_size
        self.length = max(0, stop_iter - start_iter) * batch_size
        self.rank, self.world = rank, world

    def __len__(self):
        return self.length

    def __getitem__(self, k):
        iteration = self.start + k // self.batch_size
        number = (iteration * self.world + self.rank) * self.batch_size + k % self.batch_size
        return self.samples.sample(number)


class ValidRange:
    """Map-style view of the validation samples (all of them, in order) for ``paddle.io.DataLoader``."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, k):
        return self.samples.sample(k)


def collate_numpy(batch):
    """Stack a list of (pha, fgr, bgr) tuples into (B, H, W, C) float32 arrays (kept as NumPy)."""
    return [np.stack(field).astype(np.float32) for field in zip(*batch)]

"""Training/validation samples for BackgroundMattingV2: foreground/alpha pairs composited on backgrounds.

A sample is addressed by its *sample number*, not drawn from a stateful generator: training sample ``k``
uses the foreground at position ``k mod N`` of a seeded permutation for epoch ``k // N`` (backgrounds
likewise, independently, as the official ``ZipDataset`` pairs them by index modulo length after shuffling),
and augments with a generator seeded by ``(seed, k)``. Hence a run resumed at iteration ``i`` sees exactly
the samples an uninterrupted run would, and data-parallel ranks read disjoint samples.

A bad file (unreadable or corrupt image, fgr/pha size mismatch, an image the augmentation cannot take) does not
stop the sample: the foreground (or background) is replaced by the next one in the list, deterministically, and the
sample carries a note of what was replaced (:class:`Sample` ``.problems``) for the trainer to count and warn about.
The validation split may be named ``valid/`` or ``test/`` (:func:`bgmatting.data.layouts.split_folders`).

Example:
    >>> samples = MattingSamples.from_config(cfg, "train")
    >>> pha, fgr, bgr = samples.sample(0)     # (S, S, 1), (S, S, 3), (S, S, 3) float32 in [0, 1]
"""
import functools
from pathlib import Path

import numpy as np

from bgmatting.data import augment
from bgmatting.data.io import read_image
from bgmatting.data.layouts import background_paths, fgr_pha_items, load_foreground, split_folders
from bgmatting.errors import UserError

FGR_PHA_LAYOUT = "ROOT/fgr/... and ROOT/pha/... images paired by relative path (e.g. VideoMatte240K/train)"
BACKGROUNDS_LAYOUT = "a folder of background images (any nesting)"
#: replacements tried for one sample before giving up (each replaces one bad foreground or background)
MAX_REPLACEMENTS = 20


def require_path(key: str, path, layout: str, validation: bool = False) -> Path:
    """Return ``path`` as a Path, or raise one UserError line naming the config key, the path and the layout.

    ``validation``: a missing ``…/valid`` (``…/test``) may be its ``…/test`` (``…/valid``) twin; the error then
    names both folders looked for.
    """
    if path in (None, ""):
        raise UserError(f"config key {key} is not set; expected {layout} (set it with --opts {key}=PATH)")
    candidates = split_folders(path) if validation else [Path(path)]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = " or ".join(str(c) for c in candidates)
    raise UserError(f"config key {key}: folder not found: {looked}; expected {layout}")


class BadSample(Exception):
    """A foreground pair or background that cannot be made into a sample.

    Args:
        role: "foreground" or "background"; index: its position in the item/background list; reason: the error.
    """

    def __init__(self, role: str, index: int, reason: str):
        super().__init__(f"bad {role}: {reason}")
        self.role, self.index = role, index


class Sample(tuple):
    """The ``(pha, fgr, bgr)`` of one sample; ``problems`` lists ``(file key, message)`` of the bad files replaced."""

    def __new__(cls, fields, problems=()):
        sample = super().__new__(cls, fields)
        sample.problems = tuple(problems)
        return sample


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
        validation = split == "valid"
        root = require_path(f"data.{split}.root", data[split]["root"], FGR_PHA_LAYOUT, validation)
        backgrounds = require_path(f"data.{split}.backgrounds", data[split]["backgrounds"], BACKGROUNDS_LAYOUT,
                                   validation)
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

    def files(self) -> int:
        """Number of foreground pairs and backgrounds (what a share of bad files is a share of)."""
        return len(self.items) + len(self.backgrounds)

    def sample(self, number: int) -> Sample:
        """The augmented sample ``number`` (any non-negative int when training; < len(self) otherwise).

        A bad foreground (background) is replaced by another one drawn with a generator seeded by (seed, number,
        attempt), up to :data:`MAX_REPLACEMENTS` times; the returned :class:`Sample` lists them in ``problems``.

        Raises:
            UserError: every replacement was bad too.
        """
        fg_index, bg_index = self._indices(number)
        problems = []
        for attempt in range(MAX_REPLACEMENTS):
            try:
                return Sample(self._augmented(number, fg_index, bg_index), problems)
            except BadSample as bad:
                problems.append((f"{bad.role} {bad.index}", str(bad)))
                rng = np.random.default_rng([self.seed, 8, number, attempt])
                if bad.role == "foreground":
                    fg_index = int(rng.integers(len(self.items)))
                else:
                    bg_index = int(rng.integers(len(self.backgrounds)))
        raise UserError(f"{MAX_REPLACEMENTS} bad files in a row (the last {problems[-1][1]}); is most of the "
                        "dataset unreadable?")

    def _augmented(self, number: int, fg_index: int, bg_index: int):
        """(pha, fgr, bgr) of foreground ``fg_index`` on background ``bg_index`` with sample ``number``'s
        augmentation; raises :class:`BadSample` naming the part that failed."""
        rng = np.random.default_rng([self.seed, 2 if self.train else 3, number])
        cfg = self.cfg
        try:
            fgr, pha = load_foreground(self.items[fg_index])
            fgr, pha = augment.augment_foreground(fgr, pha, rng, cfg["fgr"], self.resolution, self.train,
                                                  cfg["valid_fgr_scale"])
        except Exception as error:  # any bad file: corrupt, size mismatch, or one the augmentation cannot take
            item = self.items[fg_index]
            files = " + ".join(str(item[k]) for k in ("fgr", "pha", "rgba") if k in item)
            raise BadSample("foreground", fg_index, _describe(error, files)) from None
        try:
            bgr = read_image(self.backgrounds[bg_index]).astype(np.float32) / 255.0
            bgr = augment.augment_background(bgr, rng, cfg["bgr"], self.resolution, self.train,
                                             cfg["valid_bgr_scale"])
        except Exception as error:
            raise BadSample("background", bg_index, _describe(error, str(self.backgrounds[bg_index]))) from None
        return pha[:, :, None], fgr, bgr


def _describe(error: Exception, files: str = "") -> str:
    """One line for an error: a UserError's message (it names the file), else the files and the error."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, UserError):
        return text
    return f"{files}: {type(error).__name__}: {text}" if files else f"{type(error).__name__}: {text}"


class SampleFailure:
    """What a dataset view returns instead of raising: an exception inside a ``paddle.io.DataLoader`` (its reader
    thread or a worker) leaves the main process waiting forever, so errors travel as data (:func:`unpack_batch`)."""

    def __init__(self, message: str):
        self.message = message


def _guarded(sample, number: int):
    """``sample(number)``, or a :class:`SampleFailure` with the error's message."""
    try:
        return sample(number)
    except Exception as error:  # anything: it must reach the main process as data, not hang it
        return SampleFailure(f"sample {number}: {_describe(error)}")


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
        return _guarded(self.samples.sample, number)


class ValidRange:
    """Map-style view of the validation samples (all of them, in order) for ``paddle.io.DataLoader``."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, k):
        return _guarded(self.samples.sample, k)


_PLACEHOLDER = np.zeros((1, 1, 1, 1), np.float32)  # the arrays of a failed batch (the DataLoader needs arrays)


def collate_numpy(batch):
    """Collate (pha, fgr, bgr) samples for ``paddle.io.DataLoader``; read the result with :func:`unpack_batch`.

    Returns:
        ``[pha, fgr, bgr, problems, failure]``: (B, H, W, C) float32 arrays (kept as NumPy), the ``(file key,
        message)`` pairs of the bad files replaced (:class:`Sample`), and "" or the message of a sample that failed
        (:class:`SampleFailure`; the arrays are then placeholders).
    """
    failures = [sample.message for sample in batch if isinstance(sample, SampleFailure)]
    if not failures:
        try:
            arrays = [np.stack(field).astype(np.float32) for field in zip(*batch)]
        except Exception as error:  # never raise inside the DataLoader (see SampleFailure)
            failures = [f"cannot batch the samples: {_describe(error)}"]
    if failures:
        return [_PLACEHOLDER] * 3 + [[], failures[0]]
    problems = [list(problem) for sample in batch for problem in getattr(sample, "problems", ())]
    return arrays + [problems, ""]


def unpack_batch(batch):
    """``(fields, problems)`` of a batch of :func:`collate_numpy`.

    Raises:
        UserError: a sample of the batch failed (its message).
    """
    *fields, problems, failure = batch
    if failure:
        raise UserError(failure)
    return fields, problems

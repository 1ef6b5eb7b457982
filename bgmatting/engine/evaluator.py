"""Evaluation protocols over the public layouts → per-image and mean metrics.

Three sources of samples, one loop (:func:`evaluate`):

- :class:`PhotoMatte85Benchmark` — background matting. Foreground ``i`` (sorted) is warped onto an
  ``R×R`` canvas with the official validation affine (``PairRandomAffineAndResize``: ±5° rotation, ±10 %
  shift, ±5° shear, scale ``fg_scale`` of the cover size) and composited onto background ``j`` (drawn by the
  same generator) under its own affine (scale 1–1.2). The clean plate is that background, optionally made
  imperfect (``perturb``: shadow, noise, jitter, misalign — the training-time simulation of
  :func:`bgmatting.data.augment.simulate_plate`, here applied to every image). Every draw of image ``i``
  comes from ``numpy.random.default_rng([seed, i])``: same seed → same images → same numbers, for any
  subset or order. The metric region is a trimap from the 8-bit GT alpha: 3×3 elliptical kernel, 10
  iterations of erosion (foreground = eroded α = 255, background = dilated α = 0), unknown elsewhere
  (≈ a 10-px band, as the Paddle port's ``gen_trimap``).
- :class:`Comp1kBenchmark` — trimap matting on ``merged/ alpha_copy/ trimaps/`` (+ ``fg/``).
- :class:`SavedPredictions` — already computed alphas against ground truth (and trimaps).

Predictions are rounded to 8 bits before scoring — what a saved PNG holds — so scoring a model directly and
scoring its saved predictions give the same numbers. Ground truth is scored as read. Alpha files are read by
sample type (:func:`bgmatting.data.io.read_alpha`): 8-bit / 255, 16-bit / 65535, float (TIFF) as stored; a float
alpha holding NaN/±inf or values outside [0, 1] is refused with one error naming the file rather than scored.

Example:
    >>> bench = PhotoMatte85Benchmark("PhotoMatte85", "backgrounds", resolution=2048, seed=0)
    >>> result = evaluate(bench, DifferenceBaseline(0.1))
    >>> result.means["sad"]
"""
import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import cv2
import numpy as np
from tqdm import tqdm

from bgmatting import metrics
from bgmatting.config import TRAIN_DEFAULTS
from bgmatting.data import augment, layouts
from bgmatting.data.io import check_same_size, read_alpha, read_image, to_uint8
from bgmatting.data.trimap import BACKGROUND, FOREGROUND, UNKNOWN
from bgmatting.errors import UserError

PERTURBATIONS = ("shadow", "noise", "jitter", "misalign")
TRIMAP_KERNEL = 3
TRIMAP_ITERATIONS = 10


@dataclass(frozen=True)
class Protocol:
    """A named evaluation convention.

    Attributes:
        name: ``"standard"`` or ``"paddle-port"``.
        convention: the metric convention of :mod:`bgmatting.metrics`.
        fg_scale: foreground scale range (of the cover size) for the PhotoMatte85 compositing.
        bg_scale: background scale range.
    """

    name: str
    convention: str
    fg_scale: tuple
    bg_scale: tuple


PROTOCOLS = {
    # official validation pipeline (train_base/train_refine valid: fg scale 0.3–1, bg 1–1.2), DIM metrics
    "standard": Protocol("standard", "standard", (0.3, 1.0), (1.0, 1.2)),
    # zackzhao1/BackgroundMattingV2-paddle eval.py: fg scale 0.55–0.9, its ×2 SAD/MSE with the +1 denominator
    "paddle-port": Protocol("paddle-port", "paddle-port", (0.55, 0.9), (1.0, 1.2)),
}


@dataclass
class EvalSample:
    """One image to score.

    Attributes:
        name: relative name (used for saved files and the per-image table).
        pha: ground-truth alpha, float32 (H, W) in [0, 1].
        trimap: uint8 (H, W) in {0, 128, 255}, or None to score the whole image.
        src: uint8 (H, W, 3) RGB photo (None for saved predictions).
        bgr: uint8 (H, W, 3) clean plate given to the model, or None.
        fgr: ground-truth foreground, uint8 (H, W, 3), or None.
        pred: a saved predicted alpha, float32 (H, W) in [0, 1], or None (then a model predicts it).
        trimap_is_input: the trimap is a model input (Composition-1k); False when it is derived from the
            ground truth only to define the metric region (PhotoMatte85), so the model never sees it.
    """

    name: str
    pha: np.ndarray
    trimap: Optional[np.ndarray] = None
    src: Optional[np.ndarray] = None
    bgr: Optional[np.ndarray] = None
    fgr: Optional[np.ndarray] = None
    pred: Optional[np.ndarray] = None
    trimap_is_input: bool = True


def trimap_from_gt(pha8: np.ndarray, kernel: int = TRIMAP_KERNEL, iterations: int = TRIMAP_ITERATIONS) -> np.ndarray:
    """The PhotoMatte85 metric region: unknown where the alpha is not 0/255 within ``iterations`` steps.

    Args:
        pha8: uint8 (H, W) ground-truth alpha.
    Returns:
        uint8 (H, W): 255 where the eroded alpha is 255, 0 where the dilated alpha is 0, 128 elsewhere.
    """
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    trimap = np.full(pha8.shape, UNKNOWN, np.uint8)
    trimap[cv2.erode(pha8, element, iterations=iterations) == 255] = FOREGROUND
    trimap[cv2.dilate(pha8, element, iterations=iterations) == 0] = BACKGROUND
    return trimap


def _plate_config(perturb) -> dict:
    """The training ``augment.plate`` section with probability 1 for the chosen imperfections, 0 otherwise."""
    unknown = sorted(set(perturb) - set(PERTURBATIONS))
    if unknown:
        raise UserError(f"unknown --bgr-perturb {', '.join(unknown)}; choose from {', '.join(PERTURBATIONS)}")
    plate = copy.deepcopy(TRAIN_DEFAULTS["augment"]["plate"])
    for name in PERTURBATIONS:
        plate[name]["prob"] = 1.0 if name in perturb else 0.0
    return plate


class PhotoMatte85Benchmark:
    """PhotoMatte85 composited onto backgrounds at a fixed resolution, deterministic by seed.

    Args:
        data: PhotoMatte85 folder (RGBA PNGs, or ``fgr/`` + ``pha/``).
        backgrounds: folder of background images.
        resolution: side R of the square evaluation canvas (default 2048 as the official/Paddle port).
        seed: integer seed; image i uses ``default_rng([seed, i])``.
        protocol: a key of :data:`PROTOCOLS` (chooses the foreground scale range).
        perturb: subset of :data:`PERTURBATIONS` applied to every plate.
    Output:
        ``bench[i]`` → :class:`EvalSample` with src, bgr, fgr uint8 (R, R, 3), pha float32 (R, R), trimap.
    Example:
        >>> bench = PhotoMatte85Benchmark("PhotoMatte85", "backgrounds", resolution=512, seed=1)
        >>> sample = bench[0]
    """

    def __init__(self, data, backgrounds, resolution: int = 2048, seed: int = 0, protocol: str = "standard",
                 perturb=()):
        if resolution < 8:
            raise UserError(f"--resolution must be at least 8, got {resolution}")
        if seed < 0:
            raise UserError(f"--seed must be a non-negative integer, got {seed}")
        self.items = layouts.photomatte85_items(data)
        self.backgrounds = layouts.background_paths(backgrounds)
        self.resolution, self.seed = int(resolution), int(seed)
        self.protocol = PROTOCOLS[protocol]
        self.perturb = tuple(perturb)
        self.plate = _plate_config(self.perturb)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int) -> EvalSample:
        item = self.items[index]
        rng = np.random.default_rng([self.seed, index])
        fgr, pha = layouts.load_foreground(item)
        fgr, pha = augment.augment_foreground(fgr, pha, rng, TRAIN_DEFAULTS["augment"]["fgr"], self.resolution,
                                              train=False, valid_scale=self.protocol.fg_scale)
        background = read_image(self.backgrounds[int(rng.integers(len(self.backgrounds)))])
        bgr = augment.augment_background(background.astype(np.float32) / 255.0, rng,
                                         TRAIN_DEFAULTS["augment"]["bgr"], self.resolution, train=False,
                                         valid_scale=self.protocol.bg_scale)
        pha8 = to_uint8(pha)
        pha = pha8.astype(np.float32) / 255.0
        src, plate = augment.simulate_plate(pha[None, :, :, None], fgr[None], bgr[None], rng, self.plate)
        return EvalSample(name=item["name"], pha=pha, trimap=trimap_from_gt(pha8), src=to_uint8(src[0]),
                          bgr=to_uint8(plate[0]), fgr=to_uint8(fgr), trimap_is_input=False)


class Comp1kBenchmark:
    """Composition-1k style test set: ``merged/`` photos, ``alpha_copy/`` GT, ``trimaps/`` (+ ``fg/``).

    Args:
        data: the test folder.
        trimap_threshold: None (trimaps must hold only 0/128/255) or an int to quantise them
            (see :func:`bgmatting.data.layouts.load_trimap`).
    Output:
        ``bench[i]`` → :class:`EvalSample` with src, pha, trimap (and fgr when ``fg/`` has it).
    Example:
        >>> result = evaluate(Comp1kBenchmark("Composition-1k-testset"), predictor, clamp=True)
    """

    def __init__(self, data, trimap_threshold=None):
        self.items = layouts.comp1k_items(data)
        self.trimap_threshold = trimap_threshold

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int) -> EvalSample:
        item = self.items[index]
        src, pha = read_image(item["merged"]), read_alpha(item["alpha"])
        trimap = layouts.load_trimap(item["trimap"], self.trimap_threshold)
        check_same_size(pha, src, item["alpha"], item["merged"])
        check_same_size(trimap, src, item["trimap"], item["merged"])
        fgr = None
        if "fg" in item:
            fgr = read_image(item["fg"])
            check_same_size(fgr, src, item["fg"], item["merged"])
        return EvalSample(name=item["name"], pha=pha, trimap=trimap, src=src, fgr=fgr)


class SavedPredictions:
    """Saved predicted alphas scored against GT alphas (and trimaps; without, the whole image counts).

    Args:
        pred_dir, gt_dir, trimap_dir: folders paired by relative path (see
            :func:`bgmatting.data.layouts.prediction_items`).
        trimap_threshold: as :class:`Comp1kBenchmark`.
    Output:
        ``preds[i]`` → :class:`EvalSample` with ``pred`` set.
    Example:
        >>> result = evaluate(SavedPredictions("out/pha", "comp1k/alpha_copy", "comp1k/trimaps"))
    """

    def __init__(self, pred_dir, gt_dir, trimap_dir=None, trimap_threshold=None):
        self.items = layouts.prediction_items(pred_dir, gt_dir, trimap_dir)
        self.trimap_threshold = trimap_threshold

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int) -> EvalSample:
        item = self.items[index]
        pred, pha = read_alpha(item["pred"]), read_alpha(item["gt"])
        check_same_size(pred, pha, item["pred"], item["gt"])
        trimap = None
        if "trimap" in item:
            trimap = layouts.load_trimap(item["trimap"], self.trimap_threshold)
            check_same_size(trimap, pha, item["trimap"], item["gt"])
        return EvalSample(name=item["name"], pha=pha, trimap=trimap, pred=pred)


class DifferenceBaseline:
    """Trivial clean-plate baseline: α = 1 where max_c |src − bgr| > threshold, else 0; fgr = src.

    Args:
        threshold: difference in [0, 1] above which a pixel counts as foreground.
    Input:
        src, bgr: uint8 (H, W, 3).
    Output:
        dict(pha float32 (H, W) in {0, 1}, fgr float32 (H, W, 3) in [0, 1]).
    Example:
        >>> DifferenceBaseline(0.1)(src, bgr)["pha"]
    """

    def __init__(self, threshold: float = 0.1):
        self.threshold = float(threshold)

    def __call__(self, src, bgr=None, trimap=None):
        if bgr is None:
            raise UserError("the difference baseline needs a clean plate (bgr)")
        difference = np.abs(src.astype(np.int16) - bgr.astype(np.int16)).max(axis=2) / 255.0
        return {"pha": (difference > self.threshold).astype(np.float32), "fgr": src.astype(np.float32) / 255.0}


class TrimapBaseline:
    """Trivial trimap baseline: α = trimap / 255 (0 background, 128/255 ≈ 0.5 unknown, 1 foreground).

    Input:
        src: uint8 (H, W, 3) (unused); trimap: uint8 (H, W) in {0, 128, 255}.
    Output:
        dict(pha float32 (H, W) in [0, 1]).
    Example:
        >>> TrimapBaseline()(src, trimap=trimap)["pha"]
    """

    def __call__(self, src, bgr=None, trimap=None):
        if trimap is None:
            raise UserError("the trimap baseline needs input trimaps (--layout comp1k)")
        return {"pha": trimap.astype(np.float32) / 255.0}


BASELINES = {"difference": DifferenceBaseline, "trimap": TrimapBaseline}


@dataclass
class EvalResult:
    """Per-image rows and their means.

    Attributes:
        rows: one dict per image: ``name``, the metrics (sad, mse ×1e3, grad, conn, fgr_mse ×1e3 when
            available; sad and mse only for paddle-port), ``pixels`` (region size), ``seconds`` (model time;
            absent for saved predictions).
        means: metric name → mean over the images that have it (fgr_mse needs a predicted and a GT foreground).
        convention: the metric convention used.
    """

    rows: list
    convention: str
    means: dict = field(default_factory=dict)

    def __post_init__(self):
        for key in ("sad", "mse", "grad", "conn", "fgr_mse"):
            values = [row[key] for row in self.rows if key in row]
            if values:
                self.means[key] = float(np.mean(values))


def clamp_known(pred: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Force the prediction to 0 / 1 where the trimap is 0 / 255 (ViTMatte/MEMatte-style inference)."""
    pred = pred.copy()
    pred[trimap == BACKGROUND] = 0.0
    pred[trimap == FOREGROUND] = 1.0
    return pred


def _predict(sample: EvalSample, predict_fn):
    if sample.pred is not None:
        return sample.pred, None, None
    if predict_fn is None:
        raise UserError(f"no model or saved prediction for {sample.name}")
    start = time.perf_counter()
    out = predict_fn(sample.src, bgr=sample.bgr, trimap=sample.trimap if sample.trimap_is_input else None)
    seconds = time.perf_counter() - start
    pha, fgr = np.asarray(out["pha"]), out.get("fgr")
    if pha.shape != sample.pha.shape:
        raise ValueError(f"the model returned an alpha of shape {pha.shape} for {sample.name}, expected "
                         f"{sample.pha.shape}")
    return pha, (None if fgr is None else np.asarray(fgr)), seconds


def evaluate(samples, predict_fn: Callable = None, convention: str = "standard", clamp: bool = False,
             callbacks=(), progress: bool = True, limit: int = None, score_fgr: bool = True,
             share: range = None) -> EvalResult:
    """Score every sample.

    Args:
        samples: a sequence of :class:`EvalSample` (e.g. a benchmark object).
        predict_fn: ``predict_fn(src, bgr=None, trimap=None) -> dict(pha (H, W) in [0, 1][, fgr (H, W, 3)])``
            for samples without a saved prediction (e.g. a :class:`bgmatting.engine.predictor.Predictor`).
        convention: metric convention (``"standard"`` or ``"paddle-port"``).
        clamp: force known regions of input trimaps on the prediction (see :func:`clamp_known`); this changes
            Grad, Conn and whole-image numbers, not SAD/MSE over the unknown band. Ignored for trimaps that only
            define the metric region.
        callbacks: callables ``cb(sample, pred_pha8, pred_fgr8, row)`` run per image (saving, picture report);
            pred_pha8 is uint8 (H, W), pred_fgr8 uint8 (H, W, 3) or None.
        progress: show a tqdm bar.
        limit: score only the first ``limit`` samples.
        score_fgr: False ignores the model's ``fgr`` (for alpha-only models whose ``fgr`` is not a prediction,
            such as ViTMatte's, which returns the photo).
        share: score only these indices of the (limited) samples, e.g. one rank's
            (:meth:`bgmatting.pipeline.ranks.Ranks.share`).
    Returns:
        :class:`EvalResult`.
    """
    rows = []
    count = len(samples) if limit is None else min(limit, len(samples))
    indices = range(count) if share is None else range(min(share.start, count), min(share.stop, count))
    for index in tqdm(indices, desc="eval", unit="img", disable=not progress):
        sample = samples[index]
        pred, pred_fgr, seconds = _predict(sample, predict_fn)
        if clamp and sample.trimap is not None and sample.trimap_is_input:
            pred = clamp_known(pred, sample.trimap)
        pred8 = to_uint8(pred)
        row = {"name": sample.name, **metrics.alpha_metrics(pred8, sample.pha, sample.trimap, convention)}
        fgr8 = None if pred_fgr is None or not score_fgr else to_uint8(pred_fgr)
        if convention == "standard" and fgr8 is not None and sample.fgr is not None:
            row["fgr_mse"] = metrics.fgr_mse(fgr8, sample.fgr, sample.pha, sample.trimap) * 1e3
        if seconds is not None:
            row["seconds"] = seconds
        for callback in callbacks:
            callback(sample, pred8, fgr8, row)
        rows.append(row)
    return EvalResult(rows=rows, convention=convention)

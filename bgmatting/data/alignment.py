"""Clean-plate alignment: warp and colour-correct a clean plate so that it matches the photo it belongs to.

A hand-held plate is shifted, slightly rotated and differently exposed compared with the shot; BackgroundMattingV2
then mistakes every background edge for foreground. Three steps, each optional after the first:

1. ``homography`` — as the official ``--preprocess-alignment`` (``inference_utils.HomographicAlignment``): ORB
   features, the best 15 % of the brute-force matches (Hamming distance here; the official matcher used L2 on
   binary descriptors), a RANSAC homography, and plate pixels that fall outside the frame taken from the source.
2. ``ecc`` — sub-pixel refinement of that homography by maximising the enhanced correlation coefficient
   (``cv2.findTransformECC``), restricted to the source's background (pixels that agree with the plate), so the
   subject does not pull the fit.
3. ``full`` — additionally match exposure and white balance: a per-channel gain and offset, fitted robustly
   (RANSAC over pixels, then least squares over the inliers) on the background region, applied to the plate.

Estimation runs at a working resolution (``work_size`` pixels on the long side) and the homography is scaled
back, so 4K frames cost about as much as 1080p ones.

Example:
    >>> aligner = PlateAligner(mode="full")
    >>> result = aligner(src, bgr)          # src, bgr: uint8 (H, W, 3) RGB
    >>> result.plate.shape == src.shape
    True
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

ALIGNMENT_MODES = ("homography", "ecc", "full")
_MIN_INLIERS = 8
_COLOUR_TOLERANCE = 0.04  # max per-channel residual (in [0, 1]) of a background pixel after colour matching
_SATURATED = 250 / 255.0


@dataclass
class AlignmentResult:
    """The aligned plate and how it was obtained.

    Attributes:
        plate: uint8 (H, W, 3) RGB plate in the source's frame, exposure-matched in ``full`` mode.
        homography: float64 (3, 3) mapping plate pixel coordinates to source pixel coordinates.
        inside: bool (H, W), True where the plate covers the source frame (elsewhere the source was copied).
        gain, offset: float64 (3,) per-channel colour transform applied (``plate*gain + offset`` in [0, 1]).
        inliers: RANSAC inliers of the feature homography (0 when it failed).
        background_fraction: share of the frame the colour fit judged to be background (NaN if not computed).
        warning: empty, or one line explaining why a step fell back (e.g. too few features).
    """

    plate: np.ndarray
    homography: np.ndarray
    inside: np.ndarray
    gain: np.ndarray = field(default_factory=lambda: np.ones(3))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    inliers: int = 0
    background_fraction: float = float("nan")
    warning: str = ""


def _grey(image):
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _resize(image, scale):
    if scale >= 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _to_small(full_shape, small_shape):
    """Affine (3, 3) from full- to reduced-resolution pixel coordinates, as cv2.resize maps them
    (pixel centres at integers: x → (x + 0.5)·s − 0.5)."""
    sy, sx = small_shape[0] / full_shape[0], small_shape[1] / full_shape[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _plausible(homography):
    """Reject homographies that flip, collapse or blow up the image (a failed fit, not a camera shake)."""
    if homography is None or not np.all(np.isfinite(homography)):
        return False
    homography = homography / homography[2, 2]
    determinant = np.linalg.det(homography[:2, :2])
    return 0.5 < determinant < 2.0 and np.abs(homography[2, :2]).max() < 1e-3


def corner_distances(a: np.ndarray, b: np.ndarray, shape) -> np.ndarray:
    """Distances (pixels, shape (4,)) between the four corners of an image of ``shape`` (H, W, ...) mapped by the
    (3, 3) homographies ``a`` and ``b``."""
    height, width = shape[:2]
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1.0]]).T
    pa, pb = a @ corners, b @ corners
    return np.linalg.norm(pa[:2] / pa[2] - pb[:2] / pb[2], axis=0)


def warp_plate(src: np.ndarray, bgr: np.ndarray, homography: np.ndarray):
    """Warp ``bgr`` into ``src``'s frame; pixels the plate does not cover are copied from ``src`` (as official).

    Args:
        src: uint8 (H, W, 3); bgr: uint8 (h, w, 3) plate; homography: (3, 3) plate → source pixel coordinates.
    Returns:
        (plate uint8 (H, W, 3), inside bool (H, W)).
    """
    height, width = src.shape[:2]
    warped = cv2.warpPerspective(bgr, homography, (width, height), flags=cv2.INTER_CUBIC)
    coverage = cv2.warpPerspective(np.ones(bgr.shape[:2], np.float32), homography, (width, height),
                                   flags=cv2.INTER_LINEAR)
    inside = coverage > 0.999
    warped[~inside] = src[~inside]
    return warped, inside


def background_mask(agrees: np.ndarray, plate_grey: np.ndarray, tolerance: int = 3, grow: int = 3) -> np.ndarray:
    """Source pixels usable for geometric refinement: all but the subject.

    Disagreement between the photo and the roughly aligned plate has two causes: the subject, and residual
    misalignment, which shows as thin lines along the plate's own edges. Thin disagreement within ``tolerance``
    pixels of a plate edge is therefore kept (it carries the alignment signal); the subject is every disagreeing
    blob wider than that, plus thin disagreement away from plate edges (hair strands), grown by ``grow`` pixels.

    Args:
        agrees: bool (H, W), True where the plate matches the source after colour matching.
        plate_grey: uint8 (H, W) grey plate, warped like ``agrees``.
    Returns:
        uint8 (H, W) mask, 1 = background.
    """
    gradient = cv2.magnitude(cv2.Sobel(plate_grey, cv2.CV_32F, 1, 0), cv2.Sobel(plate_grey, cv2.CV_32F, 0, 1))
    edges = (gradient > 8 * 4).astype(np.uint8)  # Sobel sums 4 weights per side: > 8 grey levels per pixel
    near_edges = cv2.dilate(edges, np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)).astype(bool)
    disagrees = (~agrees).astype(np.uint8)
    blobs = cv2.morphologyEx(disagrees, cv2.MORPH_OPEN,
                             cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1)))
    subject = blobs | (disagrees & ~near_edges)
    subject = cv2.dilate(subject, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return (1 - subject).astype(np.uint8)


def _gradient_magnitude(grey):
    """float32 |∇| of a lightly blurred grey image (σ = 1 px)."""
    grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def _edge_correlation(src_grey, bgr_grey, homography, mask):
    """Zero-mean normalised correlation of the gradient magnitudes of the photo and of the plate warped by
    ``homography``, over ``mask`` (bool) where the plate covers the frame; -1 when nothing is left to compare."""
    size = src_grey.shape[::-1]
    plate = cv2.warpPerspective(_gradient_magnitude(bgr_grey), homography, size, flags=cv2.INTER_LINEAR)
    covered = cv2.warpPerspective(np.ones(bgr_grey.shape, np.float32), homography, size) > 0.999
    use = mask & covered
    if use.sum() < 100:
        return -1.0
    a, b = _gradient_magnitude(src_grey)[use], plate[use]
    return float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std() + 1e-6))


class _Features:
    """ORB keypoints and descriptors of one grey image."""

    def __init__(self, detector, grey):
        keypoints, descriptors = detector.detectAndCompute(grey, None)
        self.points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
        self.descriptors = descriptors


def fit_colour_transform(src: np.ndarray, plate: np.ndarray, valid: np.ndarray, rng=None, hypotheses: int = 300):
    """Robust per-channel ``src ≈ plate*gain + offset`` over the background, which is unknown in advance.

    A joint RANSAC over the three channels (two random pixels give one gain/offset per channel; a pixel is an
    inlier when every channel's residual is below the tolerance) finds the dominant transform even when the
    subject covers most of the frame; least squares over the inliers then refines it.

    Args:
        src, plate: float32 (H, W, 3) in [0, 1], already geometrically aligned.
        valid: bool (H, W), pixels allowed in the fit (inside the plate, not saturated).
    Returns:
        (gain (3,), offset (3,), background bool (H, W)): the transform and the pixels that agree with it.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    candidates = np.flatnonzero(valid)
    identity = (np.ones(3), np.zeros(3), valid.copy())
    if candidates.size < 100:
        return identity
    sample = rng.choice(candidates, size=min(candidates.size, 5000), replace=False)
    x = plate.reshape(-1, 3)[sample].astype(np.float64)
    y = src.reshape(-1, 3)[sample].astype(np.float64)
    best_count, best = np.count_nonzero(np.abs(y - x).max(axis=1) < _COLOUR_TOLERANCE), (np.ones(3), np.zeros(3))
    pairs = rng.integers(0, len(sample), size=(hypotheses, 2))
    for i, j in pairs:
        dx = x[i] - x[j]
        if np.abs(dx).min() < 0.1:
            continue
        gain = (y[i] - y[j]) / dx
        if np.any(gain < 0.5) or np.any(gain > 2.0):
            continue
        offset = y[i] - gain * x[i]
        count = np.count_nonzero(np.abs(y - (x * gain + offset)).max(axis=1) < _COLOUR_TOLERANCE)
        if count > best_count:
            best_count, best = count, (gain, offset)
    gain, offset = best
    inliers = np.abs(y - (x * gain + offset)).max(axis=1) < _COLOUR_TOLERANCE
    if np.count_nonzero(inliers) >= 50:
        for c in range(3):
            design = np.stack([x[inliers, c], np.ones(np.count_nonzero(inliers))], axis=1)
            gain[c], offset[c] = np.linalg.lstsq(design, y[inliers, c], rcond=None)[0]
    residual = np.abs(src.astype(np.float64) - (plate * gain + offset)).max(axis=2)
    return gain, offset, valid & (residual < _COLOUR_TOLERANCE)


class PlateAligner:
    """Aligns a clean plate to a source image (see the module docstring for the three modes).

    Args:
        mode: ``"homography"`` (official), ``"ecc"`` (+ sub-pixel refinement) or ``"full"`` (+ colour matching).
        work_size: long side, in pixels, at which features and ECC are computed.
        max_features: ORB features per image.
        keep_fraction: share of the best matches kept before RANSAC (official: 0.15).
    Input:
        src: uint8 (H, W, 3) RGB photo; bgr: uint8 (h, w, 3) RGB plate (any size; it is warped to H × W).
    Output:
        :class:`AlignmentResult`. When the features do not give a plausible homography the previous call's
        homography (or the identity) is used and ``warning`` says so.
    Example:
        >>> result = PlateAligner("ecc")(src, bgr)
        >>> plate = result.plate
    """

    def __init__(self, mode: str = "full", work_size: int = 1024, max_features: int = 2000,
                 keep_fraction: float = 0.15):
        if mode not in ALIGNMENT_MODES:
            raise ValueError(f"alignment mode must be one of {ALIGNMENT_MODES}, got {mode!r}")
        self.mode = mode
        self.work_size = work_size
        self.keep_fraction = keep_fraction
        self.detector = cv2.ORB_create(nfeatures=max_features)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._plate_cache = (None, None)
        self._previous = None

    def _plate_features(self, bgr, grey):
        if self._plate_cache[0] is not bgr:  # a video with one plate image: detect its features once
            self._plate_cache = (bgr, _Features(self.detector, grey))
        return self._plate_cache[1]

    def _feature_homography(self, src_grey, bgr_features):
        """ORB + RANSAC homography at working resolution → (homography or None, inliers)."""
        src_features = _Features(self.detector, src_grey)
        if src_features.descriptors is None or bgr_features.descriptors is None:
            return None, 0
        matches = sorted(self.matcher.match(bgr_features.descriptors, src_features.descriptors),
                         key=lambda m: m.distance)
        matches = matches[:max(int(len(matches) * self.keep_fraction), min(len(matches), 40))]
        if len(matches) < _MIN_INLIERS:
            return None, 0
        points_bgr = bgr_features.points[[m.queryIdx for m in matches]]
        points_src = src_features.points[[m.trainIdx for m in matches]]
        homography, inlier_mask = cv2.findHomography(points_bgr, points_src, cv2.RANSAC, 3.0)
        inliers = int(inlier_mask.sum()) if inlier_mask is not None else 0
        if inliers < _MIN_INLIERS or not _plausible(homography):
            return None, inliers
        return homography, inliers

    @staticmethod
    def _ecc(src_grey, bgr_grey, homography, mask, levels: int = 3):
        """Refine ``homography`` (plate → source, working resolution) by ECC over ``mask`` (uint8 on the
        source, 1 = use); None if it fails.

        ECC runs on gradient magnitudes, not intensities: ECC is invariant to gain and offset, so on the smooth
        gradients of a plain wall a shift looks like a brightness change and the fit drifts (measured: 7 px on a
        compressed video frame); gradient magnitudes carry only the edges. Their narrower basin of convergence is
        widened by going coarse to fine over ``levels`` halvings. ECC fits an affine correction on top of the
        current homography (whose perspective part it keeps): with few edges a full 8-parameter ECC wanders along
        the scale/translation ridge (±1 px between runs on a compressed frame of a bare wall).
        """
        converged = False
        for level in reversed(range(levels)):
            scale = 0.5**level
            if min(src_grey.shape) * scale < 64:
                continue
            src_level, bgr_level = _resize(src_grey, scale), _resize(bgr_grey, scale)
            mask_level = cv2.resize(mask, src_level.shape[::-1], interpolation=cv2.INTER_NEAREST) if level else mask
            to_src, to_bgr = _to_small(src_grey.shape, src_level.shape), _to_small(bgr_grey.shape, bgr_level.shape)
            level_homography = to_src @ homography @ np.linalg.inv(to_bgr)
            warped = cv2.warpPerspective(_gradient_magnitude(bgr_level), level_homography, src_level.shape[::-1],
                                         flags=cv2.INTER_LINEAR)
            criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
            try:  # an affine correction of the warped plate: src(x) ≈ warped(W x)
                correlation, warp = cv2.findTransformECC(_gradient_magnitude(src_level), warped,
                                                         np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE,
                                                         criteria, mask_level, 1)
            except cv2.error:
                continue  # keep the coarser estimate; a finer level may still converge
            correction = np.vstack([warp.astype(np.float64), [0.0, 0.0, 1.0]])
            refined = np.linalg.inv(to_src) @ np.linalg.inv(correction) @ level_homography @ to_bgr
            refined = refined / refined[2, 2]
            if correlation > 0.5 and _plausible(refined):
                homography, converged = refined, True
        return homography if converged else None

    def __call__(self, src: np.ndarray, bgr: np.ndarray) -> AlignmentResult:
        height, width = src.shape[:2]
        scale = min(1.0, self.work_size / max(height, width, bgr.shape[0], bgr.shape[1]))
        src_small, bgr_small = _resize(src, scale), _resize(bgr, scale)
        src_grey, bgr_grey = _grey(src_small), _grey(bgr_small)
        src_map, bgr_map = _to_small(src.shape, src_small.shape), _to_small(bgr.shape, bgr_small.shape)
        to_full = lambda h: np.linalg.inv(src_map) @ h @ bgr_map  # noqa: E731

        features, inliers = self._feature_homography(src_grey, self._plate_features(bgr, bgr_grey))
        prior = self._previous if self._previous is not None else np.eye(3)
        prior_name = "the previous frame's alignment" if self._previous is not None else "no alignment"
        prior_small = src_map @ prior @ np.linalg.inv(bgr_map)
        warnings = [] if features is not None else [f"too few matching features ({inliers} inliers)"]
        if self.mode == "homography":  # as the official: the feature homography or nothing
            chosen, reliable = (features, True) if features is not None else (prior_small, False)
        else:
            chosen, reliable, warnings = self._best_refinement(src_small, bgr_small, src_grey, bgr_grey, features,
                                                               prior_small, prior_name, warnings)
        homography = to_full(chosen)
        if reliable:
            self._previous = homography
        elif features is None:
            warnings[-1] += f"; kept {prior_name}"
        warning = "plate alignment: " + "; ".join(warnings) if warnings else ""

        plate, inside = warp_plate(src, bgr, homography)
        gain, offset, background_fraction = np.ones(3), np.zeros(3), float("nan")
        if self.mode == "full":
            gain, offset, background = self._colour(src_small, bgr_small, chosen)
            background_fraction = float(background.mean())
            corrected = np.clip(plate.astype(np.float32) / 255.0 * gain + offset, 0.0, 1.0)
            corrected = (corrected * 255.0 + 0.5).astype(np.uint8)
            plate = np.where(inside[:, :, None], corrected, plate)
        return AlignmentResult(plate=plate, homography=homography, inside=inside, gain=gain, offset=offset,
                               inliers=inliers, background_fraction=background_fraction, warning=warning)

    def _best_refinement(self, src_small, bgr_small, src_grey, bgr_grey, features, prior, prior_name, warnings):
        """Refine the feature homography and the prior (the previous frame's, or the identity) by ECC and keep the
        one whose plate edges correlate better with the photo's over the background both agree on: on a bare wall
        ORB can return a plausible but wrong homography (measured: 30 px off at 540×960) that ECC cannot pull back
        from.

        Returns:
            (homography at working resolution, reliable: bool, warnings: list of str).
        """
        starts = [h for h in (features, prior) if h is not None]
        if features is not None and corner_distances(features, prior, src_grey.shape).max() < 1.0:
            starts = [features]
        results = []
        for start in starts:
            refined = self._refine(src_small, bgr_small, src_grey, bgr_grey, start)
            homography = start if refined is None else refined
            results.append((homography, refined is not None, start is features,
                            self._background(src_small, bgr_small, homography)))
        if len(results) > 1:
            common = np.logical_and.reduce([mask.astype(bool) for *_, mask in results])
            scores = [_edge_correlation(src_grey, bgr_grey, homography, common) for homography, *_ in results]
            results = [results[int(np.argmax(scores))]]
        homography, converged, from_features, _ = results[0]
        warnings = list(warnings)
        if not converged:
            warnings.append("sub-pixel (ECC) refinement did not converge")
        elif features is None:
            warnings[0] += "; ECC refinement from " + prior_name + " converged"
        return homography, converged or from_features, warnings

    def _background(self, src_small, bgr_small, homography):
        """uint8 background mask (see :func:`background_mask`) of the photo under ``homography``."""
        _, _, agrees = self._colour(src_small, bgr_small, homography)
        return background_mask(agrees, _grey(warp_plate(src_small, bgr_small, homography)[0]))

    def _refine(self, src_small, bgr_small, src_grey, bgr_grey, homography):
        """Masked ECC at working resolution; when it moved the plate by more than a pixel the background mask
        was computed under misalignment, so it is recomputed and ECC run once more. None if ECC failed."""
        for _ in range(2):
            refined = self._ecc(src_grey, bgr_grey, homography, self._background(src_small, bgr_small, homography))
            if refined is None:
                return None
            moved = corner_distances(refined, homography, src_grey.shape).max()
            homography = refined
            if moved < 1.0:
                break
        return homography

    @staticmethod
    def _colour(src_small, bgr_small, homography_small):
        """Colour fit at working resolution for the plate warped by ``homography_small``."""
        plate_small, inside_small = warp_plate(src_small, bgr_small, homography_small)
        src_f = src_small.astype(np.float32) / 255.0
        plate_f = plate_small.astype(np.float32) / 255.0
        valid = inside_small & (src_f.max(axis=2) < _SATURATED) & (plate_f.max(axis=2) < _SATURATED)
        return fit_colour_transform(src_f, plate_f, valid)

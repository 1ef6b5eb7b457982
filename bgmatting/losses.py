"""Matting losses, one implementation each, shared by BackgroundMattingV2 and ViTMatte training.

All tensors are Paddle float tensors laid out (B, C, H, W); alphas have C = 1 and lie in [0, 1],
foregrounds C = 3 in [0, 1]. Every loss returns a scalar tensor that is 0 for a perfect prediction (ViTMatte's
gradient penalty adds a small smoothness term, 0 only on flat alphas) and is differentiable with respect to
every predicted input.

- :func:`sobel` — kornia 0.4.1 ``kornia.sobel`` semantics (the official trainer's): 3×3 Sobel kernels
  normalised by their absolute sum (1/8), replicate padding, magnitude ``sqrt(gx² + gy² + 1e-6)``.
- :func:`laplacian_l1` — RVM/ViTMatte Laplacian pyramid loss (5 levels, 5×5 binomial kernel, reflect padding,
  level weight 2^level, divided by the number of levels).
- :func:`masked_fgr_l1` — L1 on the foreground where the true alpha is non-zero (gradient reaches ``fgr``).
- :func:`err_mse` — MSE between the predicted error map and ``|pha − pha*|``.
- :func:`base_loss`, :func:`refine_loss` — the official ``train_base`` / ``train_refine`` ``compute_loss``
  with per-term weights (all 1 officially) and an optional Laplacian term.
- :func:`region_l1`, :func:`gradient_penalty`, :func:`vitmatte_loss` — ViTMatte's unknown/known-region L1,
  Sobel gradient penalty and their sum with the Laplacian loss.
"""
import paddle
import paddle.nn.functional as F

_SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
_BINOMIAL = [1.0, 4.0, 6.0, 4.0, 1.0]


def _per_channel(x):
    """(B, C, H, W) → (B·C, 1, H, W), so a single-channel kernel filters every channel."""
    b, c, h, w = x.shape
    return x.reshape([b * c, 1, h, w])


def sobel_xy(x, normalized: bool = True, padding_mode: str = "replicate"):
    """Horizontal and vertical Sobel responses of every channel.

    Args:
        x: (B, C, H, W) float tensor.
        normalized: divide the kernels by 8 (kornia's ``normalized=True``).
        padding_mode: ``"replicate"`` (kornia) or ``"constant"`` (zero padding, ``F.conv2d(padding=1)``).
    Returns:
        (gx, gy), each (B, C, H, W); gx = cross-correlation with [[-1,0,1],[-2,0,2],[-1,0,1]] (/8 if normalized).
    """
    b, c, h, w = x.shape
    kernel_x = paddle.to_tensor(_SOBEL_X, dtype=x.dtype)
    if normalized:
        kernel_x = kernel_x / 8.0
    weight = paddle.stack([kernel_x, kernel_x.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    padded = F.pad(_per_channel(x), [1, 1, 1, 1], mode=padding_mode)
    grad = F.conv2d(padded, weight).reshape([b, c, 2, h, w])
    return grad[:, :, 0], grad[:, :, 1]


def sobel(x, eps: float = 1e-6):
    """kornia 0.4.1 ``sobel``: normalised Sobel gradient magnitude ``sqrt(gx² + gy² + eps)``, (B, C, H, W)."""
    gx, gy = sobel_xy(x, normalized=True, padding_mode="replicate")
    return paddle.sqrt(gx * gx + gy * gy + eps)


def sobel_l1(pred, true):
    """``L1(sobel(pred), sobel(true))`` (mean over all elements)."""
    return F.l1_loss(sobel(pred), sobel(true))


def _gauss(x):
    """5×5 binomial blur (/256) with reflect padding, per channel; shape preserved."""
    b, c, h, w = x.shape
    row = paddle.to_tensor(_BINOMIAL, dtype=x.dtype)
    kernel = (row.unsqueeze(1) * row.unsqueeze(0) / 256.0).reshape([1, 1, 5, 5])
    padded = F.pad(_per_channel(x), [2, 2, 2, 2], mode="reflect")
    return F.conv2d(padded, kernel).reshape([b, c, h, w])


def _upsample(x):
    """Zero-insertion ×2 (values ×4) then blur; built by stacking, not by slice assignment (paddle-facts §3)."""
    b, c, h, w = x.shape
    zeros = paddle.zeros_like(x)
    wide = paddle.stack([x * 4.0, zeros], axis=-1).reshape([b, c, h, w * 2])
    tall = paddle.stack([wide, paddle.zeros_like(wide)], axis=-2).reshape([b, c, h * 2, w * 2])
    return _gauss(tall)


def laplacian_pyramid(x, levels: int = 5):
    """Band-pass levels of ``x`` (B, C, H, W): per level crop to even size, ``band = x − up(down(x))``.

    The reflect padding needs every level larger than 2 pixels (see :func:`laplacian_fits`; as official).

    Returns:
        list of ``levels`` tensors, the first (B, C, H', W') with H', W' the even-cropped size, then halving.
    """
    bands = []
    current = x
    for _ in range(levels):
        h, w = current.shape[2] - current.shape[2] % 2, current.shape[3] - current.shape[3] % 2
        current = current[:, :, :h, :w]
        down = _gauss(current)[:, :, ::2, ::2]
        bands.append(current - _upsample(down))
        current = down
    return bands


def laplacian_fits(side: int, levels: int = 5) -> bool:
    """True when an image side of ``side`` pixels survives ``levels`` pyramid levels (every level's even-cropped
    side must exceed the reflect padding of 2; for 5 levels: sides ≥ 64, and some smaller even ones)."""
    for _ in range(levels):
        side -= side % 2
        if side <= 2:
            return False
        side //= 2
    return True


def laplacian_l1(pred, true, levels: int = 5):
    """Laplacian pyramid loss ``Σ_l 2^l · L1(band_l(pred), band_l(true)) / levels`` (RVM, ViTMatte)."""
    total = 0.0
    for level, (p, t) in enumerate(zip(laplacian_pyramid(pred, levels), laplacian_pyramid(true, levels))):
        total = total + (2**level) * F.l1_loss(p, t)
    return total / levels


def masked_fgr_l1(pred_fgr, true_fgr, true_pha):
    """``L1(pred_fgr·m, true_fgr·m)`` with ``m = (true_pha != 0)`` broadcast over the 3 channels.

    Args:
        pred_fgr, true_fgr: (B, 3, H, W); true_pha: (B, 1, H, W).
    """
    mask = (true_pha != 0).astype(pred_fgr.dtype)
    return F.l1_loss(pred_fgr * mask, true_fgr * mask)


def err_mse(pred_err, pred_pha, true_pha, detach: bool = True):
    """``MSE(pred_err, |pred_pha − true_pha|)``; the target is detached from ``pred_pha`` when ``detach``."""
    target = paddle.abs((pred_pha.detach() if detach else pred_pha) - true_pha)
    return F.mse_loss(pred_err, target)


def _resize(x, size):
    """Bilinear, align_corners=False, no antialiasing (kornia 0.4.1 ``resize``)."""
    return F.interpolate(x, size=list(size), mode="bilinear", align_corners=False)


def _alpha_terms(pred_pha, true_pha, weights, suffix=""):
    terms = {f"pha_l1{suffix}": F.l1_loss(pred_pha, true_pha), f"pha_sobel{suffix}": sobel_l1(pred_pha, true_pha)}
    if weights.get("pha_laplacian", 0.0):
        terms[f"pha_laplacian{suffix}"] = laplacian_l1(pred_pha, true_pha)
    return terms


def _weighted_sum(terms, weights):
    total = 0.0
    for name, value in terms.items():
        total = total + weights.get(name.removesuffix("_sm"), 1.0) * value
    return total


def base_loss(pred_pha, pred_fgr, pred_err, true_pha, true_fgr, weights=None):
    """Official ``train_base.compute_loss`` (+ optional Laplacian term).

    Args:
        pred_pha, pred_err, true_pha: (B, 1, H, W); pred_fgr, true_fgr: (B, 3, H, W).
        weights: dict with ``pha_l1, pha_sobel, pha_laplacian, fgr_l1, err_mse`` (missing → 1, Laplacian → 0).
    Returns:
        (total scalar tensor, dict of unweighted terms).
    """
    weights = weights or {}
    terms = _alpha_terms(pred_pha, true_pha, weights)
    terms["fgr_l1"] = masked_fgr_l1(pred_fgr, true_fgr, true_pha)
    terms["err_mse"] = err_mse(pred_err, pred_pha, true_pha, detach=True)
    return _weighted_sum(terms, weights), terms


def refine_loss(pred_pha, pred_fgr, pred_pha_sm, pred_fgr_sm, pred_err_sm, true_pha, true_fgr, weights=None):
    """Official ``train_refine.compute_loss`` (+ optional Laplacian term at both scales).

    The ground truth is resized (bilinear) to the coarse size for the ``*_sm`` terms; the coarse error map
    is resized to full size and compared with ``|resize(pred_pha_sm) − true_pha|`` (not detached, as official).

    Args:
        pred_pha, true_pha: (B, 1, H, W); pred_fgr, true_fgr: (B, 3, H, W);
        pred_pha_sm, pred_err_sm: (B, 1, h, w); pred_fgr_sm: (B, 3, h, w).
    Returns:
        (total scalar tensor, dict of unweighted terms; coarse ones end in ``_sm``).
    """
    weights = weights or {}
    size_lg, size_sm = true_pha.shape[2:], pred_pha_sm.shape[2:]
    true_pha_sm, true_fgr_sm = _resize(true_pha, size_sm), _resize(true_fgr, size_sm)
    terms = _alpha_terms(pred_pha, true_pha, weights)
    terms.update(_alpha_terms(pred_pha_sm, true_pha_sm, weights, "_sm"))
    terms["fgr_l1"] = masked_fgr_l1(pred_fgr, true_fgr, true_pha)
    terms["fgr_l1_sm"] = masked_fgr_l1(pred_fgr_sm, true_fgr_sm, true_pha_sm)
    terms["err_mse"] = err_mse(_resize(pred_err_sm, size_lg), _resize(pred_pha_sm, size_lg), true_pha, detach=False)
    return _weighted_sum(terms, weights), terms


def _masked_mean(values, mask):
    """``Σ values·mask / Σ mask`` (0 when the mask is empty)."""
    count = mask.sum()
    return paddle.where(count > 0, (values * mask).sum() / paddle.clip(count, min=1.0), paddle.zeros_like(count))


def region_l1(pred, true, mask):
    """ViTMatte ``unknown_l1_loss`` / ``known_l1_loss``: mean |pred − true| over the pixels where mask = 1.

    Equal to the official ``L1(pred·m, true·m)·B·512²/Σm`` at its 512×512 training crop; here it is the
    mean over the region at any size, and 0 for an empty region.

    Args:
        pred, true: (B, 1, H, W) alphas; mask: (B, 1, H, W) float in {0, 1}.
    """
    return _masked_mean(paddle.abs(pred - true), mask)


def gradient_penalty(pred, true, mask, penalty: float = 0.01):
    """ViTMatte ``loss_gradient_penalty`` over the unknown region (unnormalised Sobel, zero padding).

    ``(|Δx p − Δx t| + |Δy p − Δy t| + penalty·(|Δx p| + |Δy p|))`` averaged over the masked pixels
    (equal to the official formula at a 512×512 crop).

    Args:
        pred, true: (B, 1, H, W); mask: (B, 1, H, W) float in {0, 1}.
    """
    pred_x, pred_y = sobel_xy(pred, normalized=False, padding_mode="constant")
    true_x, true_y = sobel_xy(true, normalized=False, padding_mode="constant")
    per_pixel = paddle.abs(pred_x - true_x) + paddle.abs(pred_y - true_y)
    return _masked_mean(per_pixel, mask) + penalty * _masked_mean(paddle.abs(pred_x) + paddle.abs(pred_y), mask)


def vitmatte_loss(pred_pha, true_pha, unknown, weights=None):
    """ViTMatte's training loss: unknown L1 + known L1 + Laplacian + gradient penalty (weights default 1).

    Args:
        pred_pha, true_pha: (B, 1, H, W) in [0, 1]; unknown: (B, 1, H, W) float, 1 where the trimap is unknown.
        weights: dict with ``unknown_l1, known_l1, laplacian, gradient_penalty``.
    Returns:
        (total scalar tensor, dict of unweighted terms).
    """
    weights = weights or {}
    terms = {
        "unknown_l1": region_l1(pred_pha, true_pha, unknown),
        "known_l1": region_l1(pred_pha, true_pha, 1.0 - unknown),
        "laplacian": laplacian_l1(pred_pha, true_pha),
        "gradient_penalty": gradient_penalty(pred_pha, true_pha, unknown),
    }
    return _weighted_sum(terms, weights), terms

"""Pictures and curves for training reports: labelled picture grids, prediction panels, smoothed loss curves.

Used by the trainers (VisualDL prediction images), ``stages/demo.py`` and ``stages/reference.py``. NumPy and
OpenCV only, except :func:`plot_loss_curves` (matplotlib, imported when called).

Example:
    >>> from bgmatting.plots import labelled_grid, smooth
    >>> grid = labelled_grid([[src, alpha]], ["source", "alpha"])   # float (H, W, 3) tiles in [0, 1]
    >>> smooth(np.ones(10), 5)                                        # stays 1 at both ends
"""
import csv
from pathlib import Path

import cv2
import numpy as np

#: height of the label band above each column (pixels at scale 1)
LABEL_HEIGHT = 18
_ASCII = {"¼": "1/4", "½": "1/2", "σ": "sigma ", "×": "x", "÷": "/", "–": "-", "—": "-", "α": "alpha", "²": "^2"}


def smooth(values, window: int) -> np.ndarray:
    """Centred moving average that stays unbiased at the ends: each point is the mean of the values that exist
    within ``window // 2`` of it (a normalised convolution), so a constant curve stays constant everywhere —
    unlike ``np.convolve(mode="same")``, which pads with zeros and pulls both ends towards zero.

    Args:
        values: 1-D sequence of floats (NaNs are ignored).
        window: width of the averaging window (≥ 1; 1 returns the values).
    Returns:
        float64 array of the same length.
    """
    values = np.asarray(values, np.float64)
    if window <= 1 or len(values) < 2:
        return values.copy()
    valid = np.isfinite(values)
    kernel = np.ones(int(window))
    total = np.convolve(np.where(valid, values, 0.0), kernel, mode="same")
    count = np.convolve(valid.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1e-12), np.nan)


def _as_rgb(tile) -> np.ndarray:
    """A tile as float32 (H, W, 3) in [0, 1]: grey (H, W) or (H, W, 1) is repeated; uint8 is scaled."""
    tile = np.asarray(tile)
    if tile.dtype == np.uint8:
        tile = tile.astype(np.float32) / 255.0
    tile = tile.astype(np.float32)
    if tile.ndim == 2:
        tile = tile[:, :, None]
    if tile.shape[2] == 1:
        tile = np.repeat(tile, 3, axis=2)
    return np.clip(tile[:, :, :3], 0.0, 1.0)


def label_band(text: str, width: int, height: int = LABEL_HEIGHT) -> np.ndarray:
    """A white band (height, width, 3) float32 with ``text`` in black, shrunk to fit the width."""
    band = np.ones((height, width, 3), np.float32)
    for special, plain in _ASCII.items():  # OpenCV's Hershey fonts draw ASCII only
        text = text.replace(special, plain)
    text = text.encode("ascii", "replace").decode()
    scale = 0.4 * height / LABEL_HEIGHT
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_width, _), _ = cv2.getTextSize(text, font, scale, 1)
    while text_width > width - 4 and scale > 0.2:
        scale *= 0.9
        (text_width, _), _ = cv2.getTextSize(text, font, scale, 1)
    baseline = int(height * 0.7)
    cv2.putText(band, text, (max(2, (width - text_width) // 2), baseline), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def labelled_grid(rows, labels, row_labels=None, gap: int = 2) -> np.ndarray:
    """Tiles in a grid with a label above each column (and optionally a label band above each row).

    Args:
        rows: list of rows, each a list of tiles of one height (float in [0, 1] or uint8; grey or RGB).
        labels: one label per column.
        row_labels: None or one text per row (a band across the row's width above it).
        gap: white pixels between tiles.
    Returns:
        float32 (H, W, 3) in [0, 1].
    """
    rows = [[_as_rgb(tile) for tile in row] for row in rows]
    if not rows or any(len(row) != len(labels) for row in rows):
        raise ValueError("every row needs one tile per label")
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(labels))]

    def pad(tile, width):
        return np.pad(tile, ((0, 0), (0, width - tile.shape[1]), (0, 0)), constant_values=1.0)

    def join(tiles):
        spacer = np.ones((tiles[0].shape[0], gap, 3), np.float32)
        parts = []
        for i, tile in enumerate(tiles):
            parts += ([spacer] if i else []) + [tile]
        return np.concatenate(parts, axis=1)

    header = join([label_band(text, width) for text, width in zip(labels, widths)])
    blocks = [header]
    for r, row in enumerate(rows):
        height = max(tile.shape[0] for tile in row)
        tiles = [pad(np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=1.0), w)
                 for t, w in zip(row, widths)]
        line = join(tiles)
        if row_labels is not None:
            blocks.append(label_band(row_labels[r], line.shape[1]))
        blocks.append(np.ones((gap, line.shape[1], 3), np.float32))
        blocks.append(line)
    return np.concatenate(blocks, axis=0)


def error_map(pred, true) -> np.ndarray:
    """|pred − true| of two alphas (H, W) as a heat map (H, W, 3) float32: black = 0, red → yellow = large
    (scaled so that an error of 0.5 or more is full yellow)."""
    error = np.clip(np.abs(np.asarray(pred, np.float32) - np.asarray(true, np.float32)) * 2.0, 0.0, 1.0)
    heat = cv2.applyColorMap((error * 255).astype(np.uint8), cv2.COLORMAP_HOT)
    return heat[:, :, ::-1].astype(np.float32) / 255.0


def checkerboard_composite(fgr, pha, cell: int = 16) -> np.ndarray:
    """``fgr·pha`` over a grey checkerboard (H, W, 3) float32 — shows what the matte keeps and loses."""
    pha = np.asarray(pha, np.float32)[:, :, None]
    rows, cols = np.indices(pha.shape[:2])
    checker = (((rows // cell) + (cols // cell)) % 2)[:, :, None] * 0.4 + 0.4
    return (_as_rgb(fgr) * pha + checker * (1 - pha)).astype(np.float32)


def prediction_panel(src, pred_pha, true_pha, ref=None, err=None) -> np.ndarray:
    """One training sample as a labelled row: source | predicted alpha | true alpha | |error| | refined patches
    (the refiner's patch map, upsampled; blank for models without a refiner) | predicted error map (when given).

    Args:
        src: (H, W, 3) float in [0, 1]; pred_pha, true_pha: (H, W); ref, err: (h, w) or None.
    Returns:
        float32 (H', W', 3) in [0, 1], for ``LogWriter.add_image`` after ×255 → uint8.
    """
    height, width = np.asarray(true_pha).shape[:2]

    def full(map_):
        map_ = np.asarray(map_, np.float32)
        return cv2.resize(map_, (width, height), interpolation=cv2.INTER_NEAREST)

    tiles = [src, pred_pha, true_pha, error_map(pred_pha, true_pha)]
    labels = ["source", "predicted alpha", "true alpha", "|error|"]
    patches = np.zeros((height, width), np.float32) if ref is None else full(ref)
    overlay = _as_rgb(src) * 0.5
    overlay[:, :, 1] += patches * 0.5
    tiles.append(overlay)
    labels.append("refined patches" if ref is not None else "refined patches (none)")
    if err is not None:
        tiles.append(np.clip(full(err), 0, 1))
        labels.append("predicted error")
    return labelled_grid([tiles], labels)


def read_losses(path) -> tuple:
    """(iterations, {term: values}) from a trainer's ``losses.csv`` (a resumed run's repeated rows: the last wins)."""
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("iteration", "").isdigit() and None not in row.values():
                rows[int(row["iteration"])] = row
    iterations = sorted(rows)
    keys = [k for k in (rows[iterations[0]] if iterations else {}) if k != "iteration"]
    return np.array(iterations), {k: np.array([float(rows[i][k]) for i in iterations]) for k in keys}


def plot_loss_curves(path, runs: dict, terms=("loss",), valid: bool = True) -> None:
    """A figure with one panel per run: each of ``terms`` per iteration (faint) and smoothed (:func:`smooth`,
    window = a tenth of the run), and the validation SAD (right axis) when ``valid.csv`` exists.

    Args:
        path: the PNG to write.
        runs: ``{title: save_dir}`` of training runs (each with ``losses.csv``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4.2), squeeze=False)
    for axis, (title, save_dir) in zip(axes[0], runs.items()):
        save_dir = Path(save_dir)
        iterations, columns = read_losses(save_dir / "losses.csv")
        window = max(1, len(iterations) // 10)
        for term in terms:
            if term not in columns:
                continue
            line, = axis.plot(iterations, columns[term], alpha=0.25)
            axis.plot(iterations, smooth(columns[term], window), color=line.get_color(),
                      label=f"{term} (mean of {window})")
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("iteration")
        axis.set_ylabel("training loss")
        handles, labels = axis.get_legend_handles_labels()
        if valid and (save_dir / "valid.csv").is_file():
            valid_iterations, valid_columns = read_losses(save_dir / "valid.csv")
            if "sad" in valid_columns and len(valid_iterations):
                right = axis.twinx()
                right.plot(valid_iterations, valid_columns["sad"], "o-", color="black", markersize=3,
                           label="validation SAD (right axis)")
                right.set_ylabel("validation SAD (whole image)")
                more_handles, more_labels = right.get_legend_handles_labels()
                handles, labels = handles + more_handles, labels + more_labels
        # one legend under the panel, so it hides no curve
        axis.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7,
                    frameon=False)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)

"""Evaluation outputs: terminal table, ``metrics.json``, ``per_image.csv``, saved predictions, and a picture
report of the worst images (``report.html`` + ``worst.png``: source, GT alpha, prediction, error map).

Every file is written atomically (temporary file + rename).

Example:
    >>> worst = WorstImages(8)
    >>> result = evaluate(bench, predictor, callbacks=[worst])
    >>> print(format_table(result, "PhotoMatte85"))
    >>> write_metrics_json("out/metrics.json", result, {"protocol": "standard"}); worst.write("out")
"""
import csv
import heapq
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np

from bgmatting.data.io import atomic_path, write_image
from bgmatting.errors import UserError
from bgmatting.metrics import CONVENTIONS

UNITS = {"sad": "SAD (/1000)", "mse": "MSE (x1e-3)", "grad": "Grad (/1000)", "conn": "Conn (/1000)",
         "fgr_mse": "FG MSE (x1e-3)"}
CSV_COLUMNS = ("name", "sad", "mse", "grad", "conn", "fgr_mse", "pixels", "seconds")


def format_table(result, title: str) -> str:
    """A plain-text table of the mean metrics with the convention stated under it.

    Args:
        result: :class:`bgmatting.engine.evaluator.EvalResult`.
        title: first line (e.g. the protocol and data set).
    """
    names = list(result.means)
    headers = [UNITS[name] for name in names]
    values = [f"{result.means[name]:.4f}" for name in names]
    widths = [max(len(h), len(v)) for h, v in zip(headers, values)]
    line = "+".join("-" * (w + 2) for w in widths)
    lines = [f"{title} — {len(result.rows)} images", line,
             " " + " | ".join(h.rjust(w) for h, w in zip(headers, widths)) + " ", line,
             " " + " | ".join(v.rjust(w) for v, w in zip(values, widths)) + " ", line,
             f"convention: {result.convention} — {CONVENTIONS[result.convention]}"]
    return "\n".join(lines)


def _write_text(path, text: str):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_metrics_json(path, result, info: dict) -> None:
    """``metrics.json``: means, units, count, convention (name and wording) and ``info`` (protocol, seed, model…)."""
    payload = {"means": result.means, "units": {k: UNITS[k] for k in result.means}, "count": len(result.rows),
               "convention": result.convention, "convention_text": CONVENTIONS[result.convention], **info}
    _write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_per_image_csv(path, result) -> None:
    """``per_image.csv``: one row per image (name, metrics, region pixels, prediction seconds)."""
    columns = [c for c in CSV_COLUMNS if any(c in row for row in result.rows)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    _write_text(path, buffer.getvalue())


class PredictionSaver:
    """Evaluation callback writing ``DIR/pha/NAME.png`` (and ``DIR/fgr/NAME.png`` when the model gives one).

    With ``inputs=True`` it also writes the generated benchmark (``DIR/inputs/{src,bgr,pha,fgr,trimap}``), so
    ``eval.py --pred-dir DIR/pha --gt-dir DIR/inputs/pha --trimap-dir DIR/inputs/trimap`` re-scores the run.

    Args:
        root: output folder.
        inputs: also save the inputs and ground truth of each sample.
    Input (per call, from :func:`bgmatting.engine.evaluator.evaluate`):
        sample, pred8 uint8 (H, W), fgr8 uint8 (H, W, 3) or None, row dict.
    Example:
        >>> evaluate(bench, predictor, callbacks=[PredictionSaver("out/predictions", inputs=True)])
    """

    def __init__(self, root, inputs: bool = False):
        self.root, self.inputs = Path(root), inputs

    def __call__(self, sample, pred8, fgr8, row):
        name = f"{sample.name}.png"
        write_image(self.root / "pha" / name, pred8)
        if fgr8 is not None:
            write_image(self.root / "fgr" / name, fgr8)
        if self.inputs:
            images = {"src": sample.src, "bgr": sample.bgr, "pha": sample.pha, "fgr": sample.fgr,
                      "trimap": sample.trimap}
            for folder, image in images.items():
                if image is not None:
                    write_image(self.root / "inputs" / folder / name, image)


def error_map(pred8: np.ndarray, gt: np.ndarray, trimap=None) -> np.ndarray:
    """|pred − gt| as an RGB heat map (inferno; black = 0, yellow = 1); known trimap regions dimmed.

    Args:
        pred8: uint8 (H, W); gt: float32 (H, W) in [0, 1]; trimap: uint8 (H, W) or None.
    Returns:
        uint8 (H, W, 3) RGB.
    """
    error = np.abs(pred8.astype(np.float32) / 255.0 - gt)
    heat = cv2.applyColorMap(np.round(error * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]
    if trimap is not None:
        heat = np.where((trimap == 128)[:, :, None], heat, (heat * 0.35).astype(np.uint8))
    return np.ascontiguousarray(heat)


def _tile(image: np.ndarray, side: int, label: str) -> np.ndarray:
    """Resize to fit ``side``×``side`` (letterboxed), RGB uint8, with a label in the corner."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    tile = np.full((side, side, 3), 32, np.uint8)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    tile[top:top + size[1], left:left + size[0]] = resized
    cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


class WorstImages:
    """Evaluation callback keeping the ``n`` worst images by ``key`` as small panels, then writing a report.

    A panel is source | GT alpha | prediction | error map (source omitted for saved predictions without one),
    each tile ``side`` pixels, so memory stays bounded whatever the resolution.

    Args:
        n: how many images to keep (0 keeps none).
        key: metric to rank by (higher = worse), default ``"sad"``.
        side: tile side in pixels.
    Input (per call, from :func:`bgmatting.engine.evaluator.evaluate`):
        sample, pred8 uint8 (H, W), fgr8 (unused), row dict holding ``key``.
    Output:
        :meth:`write` → ``worst/NN.png`` panels (H = side, W = 3–4 × side, RGB), ``worst.png``, ``report.html``.
    Example:
        >>> worst = WorstImages(8); evaluate(bench, predictor, callbacks=[worst]); worst.write("out")
    """

    def __init__(self, n: int = 8, key: str = "sad", side: int = 256):
        self.n, self.key, self.side = n, key, side
        self._heap = []  # (value, order, row, panel)
        self._order = 0

    def __call__(self, sample, pred8, fgr8, row):
        if self.n <= 0 or (len(self._heap) == self.n and row[self.key] <= self._heap[0][0]):
            return
        tiles = [] if sample.src is None else [_tile(sample.src, self.side, "source")]
        tiles += [_tile(sample.pha, self.side, "GT alpha"), _tile(pred8, self.side, "prediction"),
                  _tile(error_map(pred8, sample.pha, sample.trimap), self.side, "|error|")]
        self._keep(dict(row), np.concatenate(tiles, axis=1))

    def _keep(self, row: dict, panel: np.ndarray):
        value = row[self.key]
        if len(self._heap) == self.n and value <= self._heap[0][0]:
            return
        entry = (value, self._order, row, panel)
        self._order += 1
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)

    def kept(self) -> list:
        """[(row, panel)] in the order they were kept (for :meth:`merge` by another process's instance)."""
        return [(row, panel) for _, _, row, panel in sorted(self._heap, key=lambda e: e[1])]

    def merge(self, kept):
        """Take another instance's :meth:`kept` entries, from images scored after all of this one's (a later rank's
        share): the result is what one instance scoring both shares in order keeps."""
        for row, panel in kept:
            self._keep(row, panel)

    def worst(self) -> list:
        """[(row, panel)] from worst to best."""
        return [(row, panel) for _, _, row, panel in sorted(self._heap, key=lambda e: (-e[0], e[1]))]

    def write(self, root, title: str = "Worst images") -> list:
        """Write ``ROOT/worst/NN.png`` panels, ``ROOT/worst.png`` (all panels stacked) and ``ROOT/report.html``.

        Returns:
            list of written paths (empty when nothing was kept).
        """
        root = Path(root)
        worst = self.worst()
        if not worst:
            return []
        written, rows_html = [], []
        for rank, (row, panel) in enumerate(worst, 1):
            path = root / "worst" / f"{rank:02d}.png"
            write_image(path, panel)
            written.append(path)
            values = ", ".join(f"{UNITS[k]} {row[k]:.4f}" for k in UNITS if k in row)
            rows_html.append(f"<h3>{rank}. {html.escape(row['name'])}</h3><p>{html.escape(values)}</p>"
                             f'<img src="worst/{path.name}" alt="{html.escape(row["name"])}">')
        width = max(panel.shape[1] for _, panel in worst)
        sheet = np.concatenate([np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0))) for _, p in worst], axis=0)
        write_image(root / "worst.png", sheet)
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                f"<body><h1>{html.escape(title)}</h1><p>Ranked by {html.escape(UNITS[self.key])}, worst first. "
                "Panels: source | GT alpha | prediction | |error| (known trimap regions dimmed).</p>"
                + "".join(rows_html) + "</body></html>\n")
        _write_text(root / "report.html", page)
        return written + [root / "worst.png", root / "report.html"]


def write_part(folder, rows: list, worst: WorstImages) -> None:
    """A rank's share of an evaluation (:mod:`bgmatting.pipeline.ranks`): ``rows.json`` (its per-image rows, exact
    floats) and ``worst.npz`` (the worst-image panels it kept), written atomically (rows.json last: it marks the
    part complete)."""
    kept = worst.kept()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "worst.npz") as tmp, open(tmp, "wb") as file:
        np.savez(file, *[panel for _, panel in kept])
    _write_text(folder / "rows.json", json.dumps({"rows": rows, "worst": [row for row, _ in kept]},
                                                 default=lambda value: value.item()))


def read_part(folder, worst: WorstImages) -> list:
    """The rows of a part written by :func:`write_part`; its worst-image panels are merged into ``worst``."""
    folder = Path(folder)
    try:
        part = json.loads((folder / "rows.json").read_text(encoding="utf-8"))
        with np.load(folder / "worst.npz") as panels:
            worst.merge(zip(part["worst"], (panels[f"arr_{i}"] for i in range(len(part["worst"])))))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"the part {folder} of a finished rank cannot be read ({error}); is the folder on a "
                        "filesystem every machine shares?") from None
    return part["rows"]

"""Results on disk under server-generated names: ``<storage>/results/<32 hex id>/{src,pha,fgr,com,thumb}.png``.

Clients never choose a path: ids come from :func:`uuid.uuid4`, kinds from :data:`RESULT_KINDS`, and both are
checked before a path is built. A result folder is written under a temporary name and renamed into place, so
history never lists a half-written result. Beyond ``keep`` results the oldest are deleted, except those of a
pinned batch job (running, or finished but not yet downloaded nor expired): a batch larger than ``keep`` never
loses its own results before they are zipped and fetched.
"""
import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from bgmatting.data.io import to_uint8, write_image
from bgmatting.pipeline.render import render
from bgmatting.serve.errors import ApiError

RESULT_KINDS = ("src", "pha", "fgr", "com", "thumb")
THUMB_SIZE = 160
_ID = re.compile(r"[0-9a-f]{32}")


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """Shrink (H, W, C) so the long side is at most ``size`` (area interpolation); uint8 out."""
    image = to_uint8(image)
    scale = size / max(image.shape[:2])
    if scale >= 1:
        return image
    new_size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)


def display_name(name) -> str:
    """A client's file name reduced to something safe to show (never used as a path): base name, ≤ 100 chars."""
    name = re.split(r"[\\/]", str(name or ""))[-1]
    return re.sub(r"[^\w.\- ]", "_", name)[:100] or "image"


class ResultStore:
    """Saves matting results and lists them newest first.

    Args:
        root: storage folder (created); results go to ``root/results``.
        keep: results kept; saving more deletes the oldest that no pinned job holds (:meth:`pin`).
    Example:
        >>> store = ResultStore(Path("output/serve"), keep=100)
        >>> result_id = store.save(src, predictor(src=src, bgr=bgr), {"name": "me.jpg"})
        >>> store.path(result_id, "com")  # the RGBA cut-out PNG
    """

    def __init__(self, root: Path, keep: int):
        self.root = Path(root) / "results"
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()
        self._pins = {}  # job id → time.time() until which its results are kept (None: until unpinned)
        self._jobs = {}  # result id → job id, for results saved by this process (pins do not outlive it either)

    def pin(self, job_id: str, until=None) -> None:
        """Keep the results saved with ``meta["job"] == job_id`` until ``until`` (a time.time()), or until
        :meth:`unpin` when None."""
        with self._lock:
            self._pins[job_id] = until

    def unpin(self, job_id: str) -> None:
        """Let the results of ``job_id`` be pruned like any other."""
        with self._lock:
            self._pins.pop(job_id, None)

    def save(self, src: np.ndarray, result: dict, meta: dict) -> str:
        """Write one result; returns its id. Its images are rendered as predict.py renders its outputs
        (:func:`bgmatting.pipeline.render.render`).

        Args:
            src: uint8 (H, W, 3) RGB; result: the model's outputs, at least ``pha`` float (H, W) in [0, 1] and
                ``fgr`` float (H, W, 3) in [0, 1].
            meta: JSON-serialisable facts shown in history (``name``, ``job``, ``seconds``, ...).
        """
        result_id = uuid.uuid4().hex
        staging = self.root / f".tmp-{result_id}"
        staging.mkdir()
        try:
            images = {kind: render(kind, result) for kind in ("pha", "fgr", "com")}
            for kind, image in (("src", src), *images.items(), ("thumb", thumbnail(images["com"]))):
                write_image(staging / f"{kind}.png", image)
            meta = dict(meta, id=result_id, created=time.time(), width=int(src.shape[1]), height=int(src.shape[0]))
            (staging / "meta.json").write_text(json.dumps(meta))
            os.replace(staging, self.root / result_id)
            if meta.get("job"):
                with self._lock:
                    self._jobs[result_id] = meta["job"]
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune()
        return result_id

    def _folder(self, result_id: str) -> Path:
        if not _ID.fullmatch(result_id or ""):
            raise ApiError(404, f"no result {result_id!r}")
        folder = self.root / result_id
        if not folder.is_dir():
            raise ApiError(404, f"no result {result_id} (never made, or deleted as one of the oldest)")
        return folder

    def path(self, result_id: str, kind: str) -> Path:
        """The PNG of one output kind of a result; ApiError 404 for an unknown id or kind."""
        if kind not in RESULT_KINDS:
            raise ApiError(404, f"no output {kind!r}; choose one of {', '.join(RESULT_KINDS)}")
        return self._folder(result_id) / f"{kind}.png"

    def meta(self, result_id: str) -> dict:
        """The stored facts of a result plus its links."""
        meta = json.loads((self._folder(result_id) / "meta.json").read_text())
        meta["links"] = {kind: f"/api/results/{result_id}/{kind}.png" for kind in RESULT_KINDS}
        return meta

    def _ids_newest_first(self) -> list:
        folders = [p for p in self.root.iterdir() if _ID.fullmatch(p.name)]
        return [p.name for p in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)]

    def recent(self, limit: int) -> list:
        """Metadata (with links) of the newest ``limit`` results."""
        items = []
        for result_id in self._ids_newest_first()[:limit]:
            try:
                items.append(self.meta(result_id))
            except (ApiError, OSError, ValueError):  # deleted by a concurrent prune
                continue
        return items

    def _pinned(self, result_id: str, now: float) -> bool:
        """True when the result belongs to a job pinned (and not expired) now; call with the lock held."""
        job_id = self._jobs.get(result_id)
        if job_id not in self._pins:
            return False
        until = self._pins[job_id]
        return until is None or until > now

    def _prune(self):
        with self._lock:
            now = time.time()
            for result_id in self._ids_newest_first()[self.keep:]:
                if not self._pinned(result_id, now):
                    shutil.rmtree(self.root / result_id, ignore_errors=True)
                    self._jobs.pop(result_id, None)

"""Limits and folders of one server; a frozen value built once by tools/serve.py (or a test)."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MB = 1_000_000  # decimal, as the limits are printed


@dataclass(frozen=True)
class ServeSettings:
    """What the server accepts and where it keeps things.

    Args:
        storage_dir: results (``results/<id>/``), unpacked archives and batch zips live here.
        batch_root: the only folder ``POST /api/batch`` may read server-side folders from; None disables them.
        max_upload_bytes: largest accepted uploaded image, per file.
        max_pixels: largest accepted image area (width × height), checked from the header before decoding.
        max_queue: model calls waiting or running at once; more get 503 (memory stays bounded).
        max_archive_bytes: largest accepted zip upload (compressed) and largest total it may unpack to; also the
            largest video upload.
        max_batch_files: most images one batch may hold.
        keep_results: results kept on disk; the oldest are deleted beyond this (not those of a batch job until
            its zip is downloaded or a day has passed).
        disk_budget_bytes: disk the uploaded and unpacked archives of queued batch jobs may hold together; more
            archives get 503 until a job ends (at least twice ``max_archive_bytes``: a zip and its files).
        upload_idle_timeout: seconds a started request body may stall before the request is answered 408.
        auth_token: when set, every request must carry it (see :class:`~bgmatting.serve.middleware.TokenAuth`).
        random_weights: the model is untrained (shown on the page and in /healthz).
    """

    storage_dir: Path
    batch_root: Optional[Path] = None
    max_upload_bytes: int = 20 * MB
    max_pixels: int = 16_000_000
    max_queue: int = 32
    max_archive_bytes: int = 500 * MB
    max_batch_files: int = 1000
    keep_results: int = 500
    disk_budget_bytes: int = 2000 * MB
    upload_idle_timeout: float = 30.0
    auth_token: Optional[str] = field(default=None, repr=False)
    random_weights: bool = False

    def request_body_limit(self, path: str) -> int:
        """Largest request body accepted on ``path``: an archive for /api/batch, a video and its plate for
        /api/video, three images otherwise."""
        if path.rstrip("/") == "/api/batch":
            return self.max_archive_bytes + MB
        if path.rstrip("/") == "/api/video":
            return self.max_archive_bytes + self.max_upload_bytes + MB
        return 3 * self.max_upload_bytes + MB

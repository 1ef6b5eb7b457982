"""Batch jobs: items run one by one through the shared model worker, with progress readable at any time.

A job's items go through :class:`~bgmatting.serve.worker.ModelWorker` like single requests do, so single
requests interleave with a running batch instead of waiting for all of it. One item failing (a corrupt photo,
a plate of another size) is recorded and the batch goes on. When a job ends, its cut-outs are zipped.

A job's results are pinned in the :class:`~bgmatting.serve.storage.ResultStore` from the moment it is queued
until its zip is downloaded, or for :data:`UNDOWNLOADED_KEEP_SECONDS` after it ends, so ``--keep-results``
never deletes them under a batch larger than itself.
"""
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bgmatting.data.io import atomic_path
from bgmatting.serve.errors import ApiError
from bgmatting.serve.matting import matte_and_store
from bgmatting.serve.uploads import check_image

MAX_JOBS_KEPT = 100
UNDOWNLOADED_KEEP_SECONDS = 24 * 3600


class Job:
    """Progress and results of one batch (mutated by the batch thread only; readers take a snapshot).

    Attributes:
        status: ``queued`` → ``running`` → ``done`` (or ``failed`` if the batch as a whole could not run).
        total, done: item counts; ``results``: ``[{"name", "id", "seconds"}]``; ``errors``: ``[{"name", "error"}]``.
    """

    def __init__(self, items, source: str, align: bool, cleanup):
        self.id = uuid.uuid4().hex
        self.items, self.source, self.align, self.cleanup = items, source, align, cleanup
        self.status, self.error = "queued", None
        self.total, self.done = len(items), 0
        self.results, self.errors = [], []
        self.created, self.finished = time.time(), None

    def describe(self) -> dict:
        """The JSON answer of ``GET /api/jobs/{id}``."""
        return dict(id=self.id, status=self.status, source=self.source, total=self.total, done=self.done,
                    progress=self.done / self.total if self.total else 1.0, error=self.error,
                    results=[dict(r, links={k: f"/api/results/{r['id']}/{k}.png" for k in ("com", "pha", "thumb")})
                             for r in self.results],
                    errors=list(self.errors), summary=self.summary(),
                    archive=f"/api/jobs/{self.id}/archive" if self.status == "done" and self.results else None)


    def summary(self) -> dict:
        """Total, succeeded, failed and mean seconds per matted image (None before the first), as the batch tab
        shows it."""
        seconds = [r["seconds"] for r in list(self.results) if "seconds" in r]
        return dict(total=self.total, succeeded=len(self.results), failed=len(self.errors),
                    mean_seconds=sum(seconds) / len(seconds) if seconds else None)


def summarise(jobs) -> dict:
    """The summary over several jobs (the status tab's): jobs, images, succeeded, failed, mean seconds per image."""
    seconds = [r["seconds"] for job in jobs for r in list(job.results) if "seconds" in r]
    return dict(jobs=len(jobs), total=sum(job.total for job in jobs),
                succeeded=sum(len(job.results) for job in jobs), failed=sum(len(job.errors) for job in jobs),
                mean_seconds=sum(seconds) / len(seconds) if seconds else None)


class JobManager:
    """Starts batch jobs (one at a time, in order) and answers their progress.

    Args:
        worker: the :class:`~bgmatting.serve.worker.ModelWorker`; store: the ResultStore;
        settings: the :class:`~bgmatting.serve.settings.ServeSettings`.
    Example:
        >>> job = manager.start(pair_items(folder, root, "bgr", 1000), source="folder shoot1", align=False)
        >>> manager.get(job.id).describe()["progress"]
    """

    def __init__(self, worker, store, settings):
        self.worker, self.store, self.settings = worker, store, settings
        self.archives = Path(settings.storage_dir) / "archives"
        self.archives.mkdir(parents=True, exist_ok=True)
        self._jobs = {}
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")

    def start(self, items, source: str, align: bool, cleanup=None) -> Job:
        """Queue a job over ``items`` (:class:`~bgmatting.serve.batch_inputs.BatchItem`); ``cleanup()`` runs when
        it ends (deletes an unpacked archive, frees its disk budget)."""
        job = Job(items, source, align, cleanup)
        self.store.pin(job.id)
        with self._lock:
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished]
            for old in sorted(finished, key=lambda j: j.finished)[:max(0, len(self._jobs) - MAX_JOBS_KEPT)]:
                del self._jobs[old.id]
                self.store.unpin(old.id)
                (self.archives / f"{old.id}.zip").unlink(missing_ok=True)
        self._runner.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        """The job, or ApiError 404."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no batch job {job_id!r}")
        return job

    def archive_path(self, job_id: str) -> Path:
        """Where the zip of a finished job's cut-outs is (ApiError 404 before it exists)."""
        job = self.get(job_id)
        path = self.archives / f"{job.id}.zip"
        if job.status != "done" or not path.exists():
            raise ApiError(404, f"batch job {job_id} has no archive yet (status {job.status})")
        return path

    def download(self, job_id: str) -> Path:
        """:meth:`archive_path`, for a client fetching it: from now on the job's results may be pruned."""
        path = self.archive_path(job_id)
        self.store.unpin(job_id)
        return path

    def summary(self) -> dict:
        """:func:`summarise` over the jobs kept (the newest :data:`MAX_JOBS_KEPT`)."""
        with self._lock:
            jobs = list(self._jobs.values())
        return summarise(jobs)

    def shutdown(self):
        """Stop after the running item; queued jobs are dropped."""
        self._runner.shutdown(wait=False, cancel_futures=True)

    def _item(self, job, item):
        settings = self.settings
        data = {}
        for field in ("src", "guide"):
            data[field] = item.read(field, settings.max_upload_bytes)
            check_image(data[field], field, settings.max_upload_bytes, settings.max_pixels)
        return self.worker.submit(matte_and_store, self.store, data["src"], data["guide"], settings.max_pixels,
                                  job.align, dict(name=item.name, job=job.id), wait=True).result()

    def _run(self, job):
        job.status, status = "running", "failed"
        try:
            for item in job.items:
                try:
                    start = time.perf_counter()
                    result_id = self._item(job, item)
                    job.results.append(dict(name=item.name, id=result_id, seconds=time.perf_counter() - start))
                except ApiError as error:
                    job.errors.append(dict(name=item.name, error=error.detail))
                except OSError as error:
                    job.errors.append(dict(name=item.name, error=f"cannot read: {error.strerror}"))
                job.done += 1
            self._write_archive(job)
            status = "done"
        except Exception as error:  # the job as a whole, e.g. the disk is full: report it, keep serving
            job.error = f"{type(error).__name__}: {error}"
        finally:  # clean up and pin before the status shows the end: a download (unpin) can only come after
            job.finished = time.time()
            self.store.pin(job.id, until=job.finished + UNDOWNLOADED_KEEP_SECONDS)
            if job.cleanup is not None:
                job.cleanup()
            job.status = status

    def _write_archive(self, job):
        with atomic_path(self.archives / f"{job.id}.zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
            for result in job.results:
                archive.write(self.store.path(result["id"], "com"), f"{result['name']}.png")

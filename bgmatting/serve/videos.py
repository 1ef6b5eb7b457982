"""Video jobs of the web app: an uploaded clip with its clean plate (or ``auto``: the plate estimated from the
clip) matted frame by frame into ``com.mp4`` (the subject on the official green) and ``pha.mp4`` (alpha).

The frames go through the one :class:`~bgmatting.serve.worker.ModelWorker` like single requests and batch items,
so a long video never blocks the page's single photos for more than a frame. The library's frame pipeline does the
rest (:mod:`bgmatting.pipeline`: pairing, alignment, the sink writing the videos). One video runs at a time; the
upload is deleted when its job ends and the newest :data:`MAX_VIDEO_JOBS` jobs' results are kept.

Example:
    >>> job = manager.start(Path("uploads/x/clip.mp4"), plate_bytes=None, align=False)   # auto plate
    >>> manager.get(job.id).describe()["progress"]
"""
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bgmatting.errors import UserError
from bgmatting.serve.errors import ApiError
from bgmatting.serve.uploads import decode_image

MAX_VIDEO_JOBS = 20
VIDEO_OUTPUTS = ("com", "pha")


class VideoJob:
    """Progress of one video (mutated by the video thread only).

    Attributes:
        status: ``queued`` → ``running`` → ``done`` or ``failed`` (``error`` says why); phase: ``plate`` while the
        plate is estimated, then ``matting``; done/total: frames (total 0 when the container does not say).
    """

    def __init__(self, video: Path, plate_bytes, align: bool, name: str):
        self.id = uuid.uuid4().hex
        self.video, self.plate_bytes, self.align, self.name = video, plate_bytes, align, name
        self.status, self.phase, self.error = "queued", None, None
        self.done, self.total, self.fps = 0, 0, None
        self.created, self.finished, self.seconds = time.time(), None, None

    def describe(self) -> dict:
        """The JSON answer of ``GET /api/videos/{id}``."""
        finished = self.status == "done"
        links = {kind: f"/api/videos/{self.id}/{kind}.mp4" for kind in VIDEO_OUTPUTS} if finished else {}
        if finished and self.plate_bytes is None:
            links["plate"] = f"/api/videos/{self.id}/plate.png"
        progress = 1.0 if finished else (self.done / self.total if self.total else 0.0)
        return dict(id=self.id, name=self.name, status=self.status, phase=self.phase, done=self.done,
                    total=self.total, progress=min(progress, 1.0), fps=self.fps, error=self.error,
                    auto_plate=self.plate_bytes is None, seconds=self.seconds, links=links)


class VideoJobManager:
    """Runs video jobs one at a time and answers their progress and results.

    Args:
        worker: the :class:`~bgmatting.serve.worker.ModelWorker`; settings: the ServeSettings (``max_pixels`` per
        frame, ``max_upload_bytes`` for the plate, ``storage_dir``).
    """

    def __init__(self, worker, settings):
        self.worker, self.settings = worker, settings
        self.root = Path(settings.storage_dir).resolve() / "videos"
        shutil.rmtree(self.root, ignore_errors=True)  # the jobs of an earlier process are gone with it
        self.root.mkdir(parents=True)
        self._jobs = {}
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video")

    def start(self, video: Path, plate_bytes, align: bool, name: str, cleanup=None) -> VideoJob:
        """Queue ``video`` (a file the job deletes with ``cleanup()`` when it ends) with its plate (None: auto)."""
        job = VideoJob(video, plate_bytes, align, name)
        with self._lock:
            self._jobs[job.id] = job
            finished = sorted((j for j in self._jobs.values() if j.finished), key=lambda j: j.finished)
            for old in finished[:max(0, len(self._jobs) - MAX_VIDEO_JOBS)]:
                del self._jobs[old.id]
                shutil.rmtree(self.root / old.id, ignore_errors=True)
        self._runner.submit(self._run, job, cleanup)
        return job

    def get(self, job_id: str) -> VideoJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no video job {job_id!r}")
        return job

    def output(self, job_id: str, name: str) -> Path:
        """The path of a finished job's ``com.mp4``, ``pha.mp4`` or (auto plate) ``plate.png``."""
        job = self.get(job_id)
        path = self.root / job.id / name
        if job.status != "done" or not path.is_file():
            raise ApiError(404, f"video job {job_id} has no {name} (status {job.status})")
        return path

    def shutdown(self):
        self._runner.shutdown(wait=False, cancel_futures=True)

    def _predict(self, src, bgr):
        """One frame through the shared model worker (waits for a queue slot rather than refusing)."""
        return self.worker.submit(lambda model, s, b: model(src=s, bgr=b), src, bgr, wait=True).result()

    def _run(self, job, cleanup):
        from bgmatting.data.alignment import PlateAligner
        from bgmatting.data.io import write_image
        from bgmatting.data.video import open_source
        from bgmatting.pipeline.outputs import DEFAULT_VIDEO_BGR, OutputSink, TargetBackground
        from bgmatting.pipeline.pairing import PlateInput, estimate_source_plate, frame_pairs
        from bgmatting.pipeline.run import run

        job.status = "running"
        start = time.perf_counter()
        folder = self.root / job.id
        try:
            src = open_source(job.video, "video")
            if src.kind != "video":
                raise UserError("not a video file")
            height, width = src.size[:2]
            if height * width > self.settings.max_pixels:
                raise UserError(f"frames are {width}x{height}, more than the server's "
                                f"{self.settings.max_pixels / 1e6:g} MP per image")
            job.total, job.fps = len(src), src.fps
            aligner = PlateAligner("full") if job.align else None
            folder.mkdir(parents=True)
            if job.plate_bytes is None:
                job.phase = "plate"
                estimate = estimate_source_plate(src, aligner)
                plate = estimate.plate
                write_image(folder / "plate.png", plate)
            else:
                plate = decode_image(job.plate_bytes, "bgr", self.settings.max_pixels)
                if plate.shape[:2] != (height, width) and aligner is None:
                    raise UserError(f"size mismatch: the video is {width}x{height} but the plate is "
                                    f"{plate.shape[1]}x{plate.shape[0]} (or send align=true)")
            job.phase = "matting"

            def counted(src, bgr):  # called as predictor(src=…, bgr=…)
                result = self._predict(src, bgr)
                job.done += 1
                return result

            sink = OutputSink(VIDEO_OUTPUTS, "video", src.fps, TargetBackground(DEFAULT_VIDEO_BGR))
            sink.open(folder)
            run(counted, frame_pairs(src, plate), "bgr", PlateInput(aligner), sink, total=len(src), progress=False)
            job.total = max(job.total, job.done)
            job.status = "done"
        except (UserError, ApiError) as error:
            job.error, job.status = str(getattr(error, "detail", error)), "failed"
        except Exception as error:  # the job as a whole (a full disk …): report it, keep serving
            job.error, job.status = f"{type(error).__name__}: {error}", "failed"
        finally:
            job.seconds = round(time.perf_counter() - start, 3)
            job.finished = time.time()
            if job.status != "done":
                shutil.rmtree(folder, ignore_errors=True)
            if cleanup is not None:
                cleanup()

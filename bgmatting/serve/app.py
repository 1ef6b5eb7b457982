"""The FastAPI application: HTTP API, OpenAPI description (``/openapi.json``, ``/docs``) and the web page.

``/docs`` (Swagger UI) and ``/redoc`` load with no network: their scripts and styles come from the installed
``fastapi-offline`` package (served under ``/static-offline-docs``), not from a CDN.

Every model call goes through the one :class:`~bgmatting.serve.worker.ModelWorker`; handlers only check
inputs and wait. Refusals are ``{"detail": "<one line>"}`` with a 4xx status (503 when the queue or the disk
budget of queued batches is full). The middleware (middleware.py) checks the optional token and cuts off
oversized or stalled bodies before any handler runs.
"""
import asyncio
import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Literal, Optional

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from bgmatting.serve.batch_inputs import confine, extract_archive, pair_items
from bgmatting.serve.budget import DiskBudget, Reservation
from bgmatting.serve.errors import ApiError
from bgmatting.serve.jobs import JobManager
from bgmatting.serve.matting import guide_kind, matte_and_store
from bgmatting.serve.middleware import BodyGuard, TokenAuth
from bgmatting.serve.paths import shown
from bgmatting.serve.settings import ServeSettings
from bgmatting.serve.status import status as status_facts
from bgmatting.serve.storage import ResultStore, display_name
from bgmatting.serve.uploads import check_byte_size, check_image
from bgmatting.serve.videos import VIDEO_OUTPUTS, VideoJobManager
from bgmatting.serve.worker import ModelWorker

STATIC = Path(__file__).parent / "static"
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
PNG = {"content": {"image/png": {}}, "description": "the requested output as a PNG"}


def _validation_line(error: RequestValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"][1:]) or "request"
    return f"field '{field}': {first['msg']}"


async def _read_image(upload: UploadFile, field: str, settings: ServeSettings) -> bytes:
    if upload.size is not None:
        check_byte_size(upload.size, field, settings.max_upload_bytes)
    data = await upload.read()
    check_image(data, field, settings.max_upload_bytes, settings.max_pixels)
    return data


def create_app(settings: ServeSettings, worker: ModelWorker, model_info: dict) -> FastAPI:
    """The application around a started worker.

    Args:
        settings: limits and folders; worker: started :class:`ModelWorker` around a Predictor;
        model_info: facts shown by ``/healthz`` (model type, backbone, checkpoint name).
    Example:
        >>> worker = ModelWorker(lambda: Predictor("mattingbase", "mobilenetv2"), 32); worker.start()
        >>> uvicorn.run(create_app(ServeSettings(Path("output/serve")), worker, {}), host="127.0.0.1")
    """
    store = ResultStore(settings.storage_dir, settings.keep_results)
    jobs = JobManager(worker, store, settings)
    budget = DiskBudget(settings.disk_budget_bytes)
    uploads_dir = Path(settings.storage_dir).resolve() / "uploads"
    shutil.rmtree(uploads_dir, ignore_errors=True)  # leftovers of a killed run
    uploads_dir.mkdir(parents=True)
    guide = guide_kind(worker.model)
    videos = VideoJobManager(worker, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.shutdown()
        videos.shutdown()
        worker.shutdown()

    app = FastAPIOffline(title="bgmatting", version="1.0", lifespan=lifespan,
                  description="Background matting of photos with a clean plate (BackgroundMattingV2) or a "
                              "trimap: single images, batches, history. One model per process; requests queue.")
    app.add_middleware(BodyGuard, settings=settings)
    if settings.auth_token:
        app.add_middleware(TokenAuth, token=settings.auth_token)  # added last: runs first
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError):
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers())

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError):
        return JSONResponse({"detail": _validation_line(error)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict:
        """Liveness plus what this server runs and accepts (the page reads it)."""
        return dict(status="ok", model=dict(model_info, guide=guide, random_weights=settings.random_weights),
                    queue=dict(pending=worker.pending, max=worker.max_queue),
                    limits=dict(max_upload_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels,
                                max_archive_bytes=settings.max_archive_bytes,
                                max_batch_files=settings.max_batch_files,
                                disk_budget_bytes=settings.disk_budget_bytes),
                    batch_folders=settings.batch_root is not None)

    @app.get("/api/status", tags=["service"])
    def status() -> dict:
        """The status tab: the loaded model (kind, checkpoint, settings, provenance), the runtime and its threads,
        library versions, the device, and a summary of the batches run (total, succeeded, failed, mean seconds per
        image)."""
        return status_facts(worker.model, model_info, settings.random_weights, jobs.summary())

    @app.post("/api/matte", tags=["matting"], response_class=FileResponse, responses={200: PNG})
    async def matte(src: UploadFile = File(..., description="the photo"),
                    bgr: Optional[UploadFile] = File(None, description="its clean plate (plate models)"),
                    trimap: Optional[UploadFile] = File(None, description="its trimap (trimap models)"),
                    output: Literal["com", "pha", "fgr"] = Form("com", description="com: RGBA cut-out; pha: alpha; "
                                                                                   "fgr: foreground"),
                    align: bool = Form(False, description="warp a hand-held plate onto the photo first")):
        """Matte one photo. The answer is a PNG; headers ``X-Result-Id`` and ``X-Result-Url`` point at all
        outputs (``/api/results/{id}``), which also appear in ``/api/history``."""
        given = {"bgr": bgr, "trimap": trimap}
        other = "trimap" if guide == "bgr" else "bgr"
        if given[guide] is None:
            hint = f" (this server's model takes a {guide}, not a {other})" if given[other] is not None else ""
            raise ApiError(422, f"field '{guide}' is required{hint}")
        src_bytes = await _read_image(src, "src", settings)
        guide_bytes = await _read_image(given[guide], guide, settings)
        future = worker.submit(matte_and_store, store, src_bytes, guide_bytes, settings.max_pixels, align,
                               dict(name=display_name(src.filename), job=None))
        result_id = await asyncio.wrap_future(future)
        return FileResponse(store.path(result_id, output), media_type="image/png",
                            headers={"X-Result-Id": result_id, "X-Result-Url": f"/api/results/{result_id}"})

    @app.post("/api/batch", tags=["matting"], status_code=202)
    async def batch(folder: Optional[str] = Form(None, description="a folder relative to the server's batch root"),
                    archive: Optional[UploadFile] = File(None, description="a zip holding src/ and bgr/ (or trimap/)"),
                    align: bool = Form(False, description="warp hand-held plates onto the photos first")) -> dict:
        """Start a batch over a laid-out folder or zip (``src/`` + ``bgr/`` or ``trimap/``, paired by relative
        name, or one plate for all). Answers the job id; poll ``GET /api/jobs/{id}``."""
        if (folder is None) == (archive is None):
            raise ApiError(422, "send exactly one of 'folder' (server-side, under the batch root) or 'archive' (zip)")
        if folder is not None:
            if settings.batch_root is None:
                raise ApiError(403, "server-side folders are disabled (start the server with --batch-root)")
            items = await run_in_threadpool(_folder_items, folder, guide, settings)
            job = jobs.start(items, f"folder {folder}", align)
        else:
            workdir = uploads_dir / uuid.uuid4().hex
            reservation = None
            try:
                reservation = await run_in_threadpool(_unpack, archive, workdir, settings, budget)
                items = await run_in_threadpool(pair_items, workdir / "files", workdir / "files", guide,
                                                settings.max_batch_files)
            except BaseException:
                _discard(workdir, reservation)
                raise
            job = jobs.start(items, f"archive {display_name(archive.filename)}", align,
                             cleanup=lambda: _discard(workdir, reservation))
        return dict(job_id=job.id, url=f"/api/jobs/{job.id}", total=job.total)

    @app.get("/api/jobs/{job_id}", tags=["matting"])
    def job_status(job_id: str) -> dict:
        """Progress of a batch: status, done/total, per-item results and errors, and the zip when done."""
        return jobs.get(job_id).describe()

    @app.get("/api/jobs/{job_id}/archive", tags=["matting"], response_class=FileResponse,
             responses={200: {"content": {"application/zip": {}}}})
    def job_archive(job_id: str):
        """The RGBA cut-outs of a finished batch as a zip, named like the inputs."""
        return FileResponse(jobs.download(job_id), media_type="application/zip",
                            filename=f"cutouts-{job_id[:8]}.zip")

    @app.post("/api/video", tags=["video"], status_code=202)
    async def video(video: UploadFile = File(..., description="the clip (mp4, mov, avi, mkv, webm, m4v)"),
                    bgr: Optional[UploadFile] = File(None, description="its clean plate; omit it (or send "
                                                                       "plate=auto) to estimate the plate from the "
                                                                       "clip (a temporal median: the subject must "
                                                                       "move)"),
                    plate: Literal["file", "auto"] = Form("file", description="auto: ignore bgr, estimate the plate"),
                    align: bool = Form(False, description="warp a hand-held plate onto every frame")) -> dict:
        """Start matting a video; answers the job id. Poll ``GET /api/videos/{id}`` for progress; when done it
        links ``com.mp4`` (the subject on the official green), ``pha.mp4`` (alpha) and, for an estimated plate,
        ``plate.png``."""
        if guide != "bgr":
            raise ApiError(422, "videos need a clean-plate model; this server's model takes a trimap")
        suffix = Path(video.filename or "").suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise ApiError(415, f"video: {display_name(video.filename)} is not one of "
                                f"{', '.join(sorted(VIDEO_SUFFIXES))}")
        plate_bytes = None
        if plate == "file":
            if bgr is None:
                raise ApiError(422, "field 'bgr' is required (or send plate=auto to estimate it from the clip)")
            plate_bytes = await _read_image(bgr, "bgr", settings)
        workdir = uploads_dir / uuid.uuid4().hex
        reservation = None
        try:
            reservation = await run_in_threadpool(_save_upload, video, workdir / f"clip{suffix}", "video", settings,
                                                  budget)
            job = videos.start(workdir / f"clip{suffix}", plate_bytes, align, display_name(video.filename),
                               cleanup=lambda: _discard(workdir, reservation))
        except BaseException:
            _discard(workdir, reservation)
            raise
        return dict(job_id=job.id, url=f"/api/videos/{job.id}")

    @app.get("/api/videos/{job_id}", tags=["video"])
    def video_status(job_id: str) -> dict:
        """Progress of a video job (frames done of total) and, when done, the links of its results."""
        return videos.get(job_id).describe()

    @app.get("/api/videos/{job_id}/{kind}.mp4", tags=["video"], response_class=FileResponse,
             responses={200: {"content": {"video/mp4": {}}}})
    def video_file(job_id: str, kind: str, download: bool = False):
        """One result video of a finished job: com (composite on green) or pha (alpha)."""
        if kind not in VIDEO_OUTPUTS:
            raise ApiError(404, f"no output {kind!r}; choose {' or '.join(VIDEO_OUTPUTS)}")
        return FileResponse(videos.output(job_id, f"{kind}.mp4"), media_type="video/mp4",
                            filename=f"{kind}-{job_id[:8]}.mp4" if download else None)

    @app.get("/api/videos/{job_id}/plate.png", tags=["video"], response_class=FileResponse, responses={200: PNG})
    def video_plate(job_id: str):
        """The plate estimated from the clip (jobs started with plate=auto)."""
        return FileResponse(videos.output(job_id, "plate.png"), media_type="image/png")

    @app.get("/api/history", tags=["results"])
    def history(limit: int = Query(20, ge=1, le=200, description="how many of the newest results")) -> dict:
        """Recent results, newest first, with thumbnail and output links."""
        return dict(items=store.recent(limit))

    @app.get("/api/results/{result_id}", tags=["results"])
    def result(result_id: str) -> dict:
        """Facts and output links of one result."""
        return store.meta(result_id)

    @app.get("/api/results/{result_id}/{kind}.png", tags=["results"], response_class=FileResponse,
             responses={200: PNG})
    def result_file(result_id: str, kind: str, download: bool = False):
        """One output of a result: src, pha, fgr, com (RGBA cut-out) or thumb."""
        path = store.path(result_id, kind)
        return FileResponse(path, media_type="image/png",
                            filename=f"{kind}-{result_id[:8]}.png" if download else None)

    return app


def _folder_items(folder: str, guide: str, settings: ServeSettings) -> list:
    """The batch items of a server-side folder, confined to the batch root (ApiError for a bad or unreadable one)."""
    root = Path(settings.batch_root).resolve()
    path = confine(root, folder)
    try:
        return pair_items(path, root, guide, settings.max_batch_files)
    except OSError as error:  # e.g. a sub-folder without read permission
        raise ApiError(422, f"folder {shown(folder)} cannot be read: {error.strerror}") from None


def _save_upload(upload: UploadFile, path: Path, what: str, settings: ServeSettings,
                 budget: DiskBudget) -> Reservation:
    """Copy an upload (a zip or a video) to ``path``, holding its size in the disk budget (ApiError 413 over
    ``--max-archive-mb``, 503 when the budget has no room); the reservation is released if the copy fails."""
    upload.file.seek(0, 2)
    size = upload.file.tell()
    if size > settings.max_archive_bytes:
        raise ApiError(413, f"{what}: file is larger than {settings.max_archive_bytes / 1e6:g} MB")
    reservation = budget.reserve(size)
    try:
        path.parent.mkdir(parents=True)
        upload.file.seek(0)
        with open(path, "wb") as sink:
            shutil.copyfileobj(upload.file, sink, 1 << 20)
    except BaseException:
        reservation.release()
        raise
    return reservation


def _unpack(upload: UploadFile, workdir: Path, settings: ServeSettings, budget: DiskBudget) -> Reservation:
    """Copy an uploaded zip to ``workdir/archive.zip`` and unpack its images into ``workdir/files``, holding
    the disk they take in ``budget`` (the returned reservation; ApiError 413 / 503)."""
    archive = workdir / "archive.zip"
    reservation = _save_upload(upload, archive, "archive", settings, budget)
    size = reservation.nbytes  # the zip itself
    try:
        (workdir / "files").mkdir()
        written = extract_archive(archive, workdir / "files", settings.max_archive_bytes, settings.max_batch_files,
                                  reserve=lambda unpacked: reservation.resize(size + unpacked))
        archive.unlink()
        reservation.resize(written)
    except BaseException:
        reservation.release()
        raise
    return reservation


def _discard(workdir: Path, reservation) -> None:
    """Delete an archive job's files and give back their disk budget."""
    shutil.rmtree(workdir, ignore_errors=True)
    if reservation is not None:
        reservation.release()

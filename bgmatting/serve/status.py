"""What the status tab shows (``GET /api/status``): the loaded model (kind, checkpoint, settings, provenance), the
runtime and its threads, library versions, the device, and a summary of the batches run so far.

Example:
    >>> status(worker.model, {"checkpoint": "model.pdparams"}, random_weights=False, batches=jobs.summary())
    {"model": {"kind": "mattingrefine", ...}, "runtime": {...}, "versions": {...}, "batches": {...}}
"""
import importlib.metadata
import os
import platform
from pathlib import Path

PACKAGES = {"bgmatting": "bgmatting", "paddle": "paddlepaddle", "onnxruntime": "onnxruntime",
            "paddle2onnx": "paddle2onnx", "numpy": "numpy", "opencv": "opencv-python", "fastapi": "fastapi"}


def _json_safe(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def versions() -> dict:
    """Installed versions of the libraries the server runs on (None where one is not installed)."""
    found = {"python": platform.python_version()}
    for name, distribution in PACKAGES.items():
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    if found["bgmatting"] is None:  # run from a clone without an install
        from bgmatting import __version__

        found["bgmatting"] = __version__
    return found


def model_facts(predictor, model_info: dict, random_weights: bool) -> dict:
    """The loaded model: kind, checkpoint (file name), every resolved option, the card's provenance."""
    settings = getattr(predictor, "settings", None)
    facts = dict(kind=model_info.get("model_type"), checkpoint=model_info.get("checkpoint"),
                 random_weights=random_weights, options={}, provenance=None, recorded_kind=None)
    if settings is not None:
        source = settings.source
        card = getattr(source, "card", None) or {}
        facts.update(kind=settings.kind.name, guide=settings.kind.guide, recorded_kind=settings.recorded_kind,
                     options=_json_safe({k: v for k, v in settings.options.items() if v is not None}),
                     provenance=_json_safe(card.get("provenance")),
                     weights=Path(source.weights).name if source is not None and source.weights else None)
    return facts


def runtime_facts(predictor) -> dict:
    """The runtime running the model, its threads and the device."""
    names = {"dygraph": "dygraph (Paddle eager)", "inference": "inference (Paddle Inference, oneDNN)",
             "onnx": "onnx (onnxruntime)"}
    backend = names.get(getattr(predictor, "backend", None), str(getattr(predictor, "backend", None)))
    try:
        import paddle

        device = paddle.get_device()
    except Exception:  # noqa: BLE001  (a status page must not fail on a runtime question)
        device = None
    return dict(backend=backend, device=device, cpu_count=os.cpu_count(),
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                pid=os.getpid())


def status(predictor, model_info: dict, random_weights: bool, batches: dict) -> dict:
    """The JSON answer of ``GET /api/status``."""
    return dict(model=model_facts(predictor, model_info, random_weights), runtime=runtime_facts(predictor),
                versions=versions(), batches=batches)

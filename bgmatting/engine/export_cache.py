"""On-disk cache of static exports, so that the fast runtimes pay for an export once per model, not once per run.

Where: ``$BGMATTING_EXPORT_CACHE`` if set, else ``$XDG_CACHE_HOME/bgmatting/exports`` (``~/.cache/bgmatting/exports``).
The location is printed once per process on stderr when the cache is first used.

One entry per key, a folder named by the sha256 of:
- the weights: the bytes of the weights file (or, for a model held in memory / random weights, of its state dict);
- the kind's name and every option (baked into the graph or not: a cheap superset);
- the input-size policy: a fixed (H, W) or ``dynamic``;
- the runtime (``inference`` / ``onnx``: different graphs, see :mod:`bgmatting.export`);
- the export code: :data:`bgmatting.export.FORMAT_VERSION`, this module's :data:`CACHE_VERSION`, the Paddle and
  paddle2onnx versions and a digest of the source files that define the graph (``bgmatting/models``,
  ``bgmatting/export.py``), so that an entry written by other code is never used (it is a different key).

An entry is built in a temporary folder beside the others and renamed into place (atomic; a concurrent builder of
the same key loses the rename and uses the winner's entry). It holds the export files plus ``cache.json``: the key's
fields and the size and sha256 of every file. An entry whose files are missing, of other sizes or other digests
(truncated, edited, half-deleted) is removed and rebuilt, never used.

Example:
    >>> directory = cached_export(key_fields(weights_digest, "mattingrefine", options, (1088, 1920), "onnx"),
    ...                           lambda folder: export_model(model, signature, "mattingrefine", folder, options,
    ...                                                       input_size=(1088, 1920), onnx=True))
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ENVIRONMENT_VARIABLE = "BGMATTING_EXPORT_CACHE"
CACHE_VERSION = 1
MANIFEST_NAME = "cache.json"
_CODE_PATHS = ("models", "export.py")  # under bgmatting/: the files that define an exported graph

stats = {"built": 0, "reused": 0, "rebuilt": 0}  # per process; tests and the CLI's summary read it
_announced = set()
_file_digests = {}


def cache_root() -> Path:
    """The cache folder (not created here)."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bgmatting" / "exports"


def announce(root: Path) -> None:
    """Print the cache location once per process (stderr)."""
    if str(root) not in _announced:
        _announced.add(str(root))
        print(f"bgmatting: export cache {root} (set {ENVIRONMENT_VARIABLE} to move it)", file=sys.stderr, flush=True)


def file_digest(path) -> str:
    """sha256 of a file's bytes (remembered per path, size and modification time within the process)."""
    path = Path(path)
    status = path.stat()
    memo = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    if memo not in _file_digests:
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                hasher.update(block)
        _file_digests[memo] = hasher.hexdigest()
    return _file_digests[memo]


def state_digest(model) -> str:
    """sha256 of a Paddle layer's state dict (names, dtypes, shapes and bytes), for weights held in memory."""
    hasher = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.numpy()
        hasher.update(f"{name}:{array.dtype}:{array.shape};".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def code_digest() -> str:
    """Digest of the export code: graph-defining sources, export format, Paddle and paddle2onnx versions."""
    from importlib import metadata

    from bgmatting.export import FORMAT_VERSION

    package = Path(__file__).resolve().parent.parent
    hasher = hashlib.sha256(f"format {FORMAT_VERSION} cache {CACHE_VERSION}".encode())
    for name in ("paddlepaddle", "paddle2onnx"):
        try:
            hasher.update(f"{name} {metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            hasher.update(f"{name} none;".encode())
    for relative in _CODE_PATHS:
        path = package / relative
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            hasher.update(str(source.relative_to(package)).encode())
            hasher.update(source.read_bytes())
    return hasher.hexdigest()


def key_fields(weights: str, kind: str, options: dict, input_size, runtime: str) -> dict:
    """The fields a cache entry is keyed by (see the module docstring); ``input_size`` None = dynamic sizes."""
    return {"weights": weights, "kind": kind, "options": {k: options[k] for k in sorted(options)},
            "input_size": list(input_size) if input_size is not None else "dynamic", "runtime": runtime,
            "code": code_digest()}


def entry_name(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _manifest(folder: Path, fields: dict) -> dict:
    files = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME):
        files[path.name] = {"size": path.stat().st_size, "sha256": file_digest(path)}
    return {"cache_version": CACHE_VERSION, "key": fields, "files": files}


def entry_is_valid(folder: Path, fields: dict) -> bool:
    """True when ``folder`` holds a complete, unaltered entry for ``fields``."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        if manifest.get("cache_version") != CACHE_VERSION or \
                json.dumps(manifest.get("key"), sort_keys=True, default=str) != \
                json.dumps(json.loads(json.dumps(fields, default=str)), sort_keys=True, default=str):
            return False
        files = manifest["files"]
        if not files or "export.json" not in files:
            return False
        for name, recorded in files.items():
            path = folder / name
            if path.stat().st_size != recorded["size"] or file_digest(path) != recorded["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def cached_export(fields: dict, build) -> Path:
    """The cache entry for ``fields``, built with ``build(folder)`` (which writes an export into ``folder``) when it
    is missing or invalid. Returns the entry's folder."""
    root = cache_root()
    announce(root)
    root.mkdir(parents=True, exist_ok=True)
    entry = root / entry_name(fields)
    if entry.is_dir():
        if entry_is_valid(entry, fields):
            stats["reused"] += 1
            return entry
        _remove(entry)  # corrupt or stale: rebuilt below, never used
        stats["rebuilt"] += 1
    staging = Path(tempfile.mkdtemp(prefix=f".build-{entry.name}-", dir=root))
    try:
        build(staging)
        (staging / MANIFEST_NAME).write_text(json.dumps(_manifest(staging, fields), indent=2, default=str))
        try:
            os.rename(staging, entry)
        except OSError:  # another process renamed its build into place first
            if not entry_is_valid(entry, fields):
                raise
        else:
            stats["built"] += 1
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return entry


def _remove(entry: Path) -> None:
    """Move an invalid entry aside (atomic), then delete it."""
    trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(entry, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)

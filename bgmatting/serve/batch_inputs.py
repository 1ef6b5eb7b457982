"""Batch inputs: a server-side folder confined to the batch root, or an uploaded zip, → (name, src, guide) items.

Layout (folder or archive, optionally inside one top-level folder)::

    src/<any/relative/name>.<ext>       the photos
    bgr/<same relative name>.<any ext>  their clean plates   (or trimap/ for a trimap model)
    bgr/<one image>                     ... or a single plate used for every photo

Confinement: a folder is named relative to the batch root; absolute paths and ``..`` are refused, and every
path is resolved (following symlinks) and must stay inside the root. Archive members with absolute paths,
``..`` or symlink entries are refused; the unpacked size and file count are bounded before anything is written.
"""
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bgmatting.data.io import is_image_path
from bgmatting.serve.errors import ApiError


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: its relative ``name`` (display and output naming), ``src`` and ``guide`` paths."""

    name: str
    src: Path
    guide: Path


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine(root: Path, relative: str) -> Path:
    """``root/relative`` resolved, or ApiError 403 when it would leave ``root`` (``..``, absolute, symlink).

    Raises:
        ApiError: 403 for an escape, 404 when the folder does not exist.
    """
    root = Path(root).resolve()
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if relative.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise ApiError(403, f"folder {relative!r} is outside the batch root (use a path relative to it, no '..')")
    path = (root / Path(*parts)).resolve() if parts else root
    if not _inside(path, root):
        raise ApiError(403, f"folder {relative!r} leads outside the batch root (through a symlink)")
    if not path.is_dir():
        raise ApiError(404, f"folder {relative!r} does not exist under the batch root")
    return path


def _images(folder: Path, root: Path) -> dict:
    """Relative path without extension → file, for images under ``folder`` that resolve inside ``root``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or not is_image_path(path) or path.name.startswith("."):
            continue
        if not _inside(path.resolve(), root):
            raise ApiError(403, f"{path.relative_to(folder.parent)} is a symlink leading outside the batch root")
        found[path.relative_to(folder).with_suffix("").as_posix()] = path
    return found


def pair_items(folder: Path, root: Path, guide: str, max_files: int) -> list:
    """The batch items of a laid-out folder (see the module docstring).

    Args:
        folder: the batch folder (already confined); root: the confinement root.
        guide: ``"bgr"`` or ``"trimap"``, the sub-folder holding the second inputs.
    Raises:
        ApiError: 422 for a missing sub-folder, no photos, a photo without a guide, too many files.
    """
    if not (folder / "src").is_dir() and len([p for p in folder.iterdir() if p.is_dir()]) == 1:
        folder = next(p for p in folder.iterdir() if p.is_dir())  # an archive wrapping everything in one folder
    for sub in ("src", guide):
        if not (folder / sub).is_dir():
            raise ApiError(422, f"the batch has no {sub}/ folder (expected src/ with the photos and {guide}/)")
    sources, guides = _images(folder / "src", root), _images(folder / guide, root)
    if not sources:
        raise ApiError(422, "the batch's src/ folder holds no image")
    if len(sources) + len(guides) > max_files:
        raise ApiError(413, f"the batch holds {len(sources) + len(guides)} images; the limit is {max_files}")
    if len(guides) == 1:
        only = next(iter(guides.values()))
        return [BatchItem(name, path, only) for name, path in sources.items()]
    missing = [name for name in sources if name not in guides]
    if missing:
        raise ApiError(422, f"src/{missing[0]} has no matching {guide}/{missing[0]}.* "
                            f"({len(missing)} photos without one; or put a single image in {guide}/)")
    return [BatchItem(name, path, guides[name]) for name, path in sources.items()]


def extract_archive(archive_path: Path, destination: Path, max_bytes: int, max_files: int) -> None:
    """Unpack the image members of a zip into ``destination``, refusing unsafe or oversized archives.

    Non-image members and macOS/dot files are skipped.
    Raises:
        ApiError: 415 not a zip; 400 unsafe member (absolute, ``..``, symlink); 413 too many files or bytes.
    """
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError):
        raise ApiError(415, "archive: not a zip file") from None
    with archive:
        members = []
        for info in archive.infolist():
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                raise ApiError(400, f"archive member {info.filename!r} points outside the archive")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ApiError(400, f"archive member {info.filename!r} is a symlink; symlinks are not accepted")
            if info.is_dir() or not is_image_path(name) or parts[0] == "__MACOSX" or parts[-1].startswith("."):
                continue
            members.append((info, parts))
        if len(members) > max_files:
            raise ApiError(413, f"archive holds {len(members)} images; the limit is {max_files}")
        if sum(info.file_size for info, _ in members) > max_bytes:
            raise ApiError(413, f"archive unpacks to more than {max_bytes / 1e6:g} MB")
        try:
            _write_members(archive, members, destination, max_bytes)
        except (zipfile.BadZipFile, zlib.error, EOFError):
            raise ApiError(415, "archive: corrupt zip file") from None


def _write_members(archive, members, destination: Path, max_bytes: int):
    """Copy the checked members into ``destination``, counting real bytes (headers can lie)."""
    written = 0
    for info, parts in members:
        target = destination.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "wb") as sink:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:  # a member lying about its size
                    raise ApiError(413, f"archive unpacks to more than {max_bytes / 1e6:g} MB")
                sink.write(chunk)

"""Batch inputs: a server-side folder confined to the batch root, or an uploaded zip, → (name, src, guide) items.

Layout (folder or archive, optionally inside one top-level folder)::

    src/<any/relative/name>.<ext>       the photos
    bgr/<same relative name>.<any ext>  their clean plates   (or trimap/ for a trimap model)
    bgr/<one image>                     ... or a single plate used for every photo

Names: an item is named by its path relative to ``src/`` without the extension (``sub/a``), or with it
(``a.jpg``) where photos share a stem (``a.png``, ``a.jpg``, ``a.webp``), so no two items share a name or an
output file. A photo takes the plate of the same relative name, else the only plate with its stem.

Confinement: a folder is named relative to the batch root; absolute paths and ``..`` are refused, and every
path is resolved (following symlinks) and must stay inside the root; the files are read later without
following links (:func:`~bgmatting.serve.paths.read_confined`), so a symlink swapped in afterwards is refused.
Archive members with absolute paths, ``..``, symlink entries or a name both a file and a folder are refused;
the unpacked size and file count are bounded before anything is written. Names are vetted by
:func:`~bgmatting.serve.paths.relative_parts` (control characters, length).
"""
import stat
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bgmatting.data.io import is_image_path
from bgmatting.serve.errors import ApiError
from bgmatting.serve.paths import read_confined, relative_parts, shown


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: its ``name`` (display and output naming), the confinement ``root``, and the resolved
    ``src`` and ``guide`` files below it."""

    name: str
    root: Path
    src: Path
    guide: Path

    def read(self, field: str, max_bytes: int) -> bytes:
        """The bytes of ``field`` ("src" or "guide"), read without following symlinks (see module docstring)."""
        return read_confined(self.root, getattr(self, field), field, max_bytes)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine(root: Path, relative: str) -> Path:
    """``root/relative`` resolved, or ApiError 403 when it would leave ``root`` (``..``, absolute, symlink).

    Raises:
        ApiError: 403 for an escape, 404 when the folder does not exist.
    """
    root = Path(root).resolve()
    parts = relative_parts(relative, "folder", 403, "is outside the batch root (use a path relative to it, no '..')")
    path = (root / Path(*parts)).resolve() if parts else root
    if not _inside(path, root):
        raise ApiError(403, f"folder {shown(relative)} leads outside the batch root (through a symlink)")
    if not path.is_dir():
        raise ApiError(404, f"folder {shown(relative)} does not exist under the batch root")
    return path


def _stem(relative: str) -> str:
    return PurePosixPath(relative).with_suffix("").as_posix()


def _images(folder: Path, root: Path) -> dict:
    """Relative path (with extension) → resolved file, for images under ``folder`` that resolve inside ``root``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or not is_image_path(path) or path.name.startswith("."):
            continue
        real = path.resolve()
        if not _inside(real, root):
            raise ApiError(403, f"{path.relative_to(folder.parent)} is a symlink leading outside the batch root")
        found[path.relative_to(folder).as_posix()] = real
    return found


def item_names(relatives) -> dict:
    """Relative path → a unique item name: the path without its extension, or with it where that would clash.

    Example:
        >>> item_names(["a.png", "a.jpg", "b.png"])
        {'a.png': 'a.png', 'a.jpg': 'a.jpg', 'b.png': 'b'}
    """
    names = {relative: _stem(relative) for relative in relatives}
    while True:  # each round gives clashing stems their extension back; whole paths are unique, so it ends
        counts = Counter(names.values())
        clashing = [relative for relative, name in names.items() if counts[name] > 1 and name != relative]
        if not clashing:
            return names
        for relative in clashing:
            names[relative] = relative


def _guide_for(relative: str, guides: dict, by_stem: dict, guide: str):
    """The guide file of the photo ``src/relative`` (see module docstring), None when it has none."""
    if len(guides) == 1:
        return next(iter(guides.values()))
    if relative in guides:
        return guides[relative]
    candidates = by_stem.get(_stem(relative), [])
    if len(candidates) > 1:
        raise ApiError(422, f"src/{relative} matches several plates ({', '.join(f'{guide}/{c}' for c in candidates)}); "
                            "name its plate exactly like the photo")
    return guides[candidates[0]] if candidates else None


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
    by_stem = defaultdict(list)
    for relative in guides:
        by_stem[_stem(relative)].append(relative)
    paired = {relative: _guide_for(relative, guides, by_stem, guide) for relative in sources}
    missing = [relative for relative, found in paired.items() if found is None]
    if missing:
        raise ApiError(422, f"src/{missing[0]} has no matching {guide}/{_stem(missing[0])}.* "
                            f"({len(missing)} photos without one; or put a single image in {guide}/)")
    names = item_names(sources)
    return [BatchItem(names[relative], root, path, paired[relative]) for relative, path in sources.items()]


def extract_archive(archive_path: Path, destination: Path, max_bytes: int, max_files: int, reserve=None) -> int:
    """Unpack the image members of a zip into ``destination``, refusing unsafe or oversized archives.

    Non-image members and macOS/dot files are skipped.
    Args:
        reserve: ``(declared unpacked bytes) -> None``, called before anything is written; it may raise
            (the disk budget's 503).
    Returns:
        the bytes written.
    Raises:
        ApiError: 415 not a zip; 400 unsafe member (absolute, ``..``, symlink, control characters, too long a name,
        a name both a file and a folder, twice the same name); 413 too many files or bytes.
    """
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError):
        raise ApiError(415, "archive: not a zip file") from None
    with archive:
        members = []
        for info in archive.infolist():
            parts = relative_parts(info.filename, "archive member", 400, "points outside the archive")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ApiError(400, f"archive member {shown(info.filename)} is a symlink; symlinks are not accepted")
            if (not parts or info.is_dir() or not is_image_path(parts[-1]) or parts[0] == "__MACOSX"
                    or parts[-1].startswith(".")):
                continue
            members.append((info, parts))
        if len(members) > max_files:
            raise ApiError(413, f"archive holds {len(members)} images; the limit is {max_files}")
        _check_layout([parts for _, parts in members])
        declared = sum(info.file_size for info, _ in members)
        if declared > max_bytes:
            raise ApiError(413, f"archive unpacks to more than {max_bytes / 1e6:g} MB")
        if reserve is not None:
            reserve(declared)
        try:
            return _write_members(archive, members, destination, max_bytes)
        except (zipfile.BadZipFile, zlib.error, EOFError):
            raise ApiError(415, "archive: corrupt zip file") from None


def _check_layout(files: list) -> None:
    """ApiError 400 when two members would land on the same path, or one member's path is another's folder."""
    seen, folders = set(), set()
    for parts in files:
        if parts in seen:
            raise ApiError(400, f"archive member {shown('/'.join(parts))} appears twice")
        seen.add(parts)
        folders.update(parts[:end] for end in range(1, len(parts)))
    clash = next(iter(seen & folders), None)
    if clash is not None:
        raise ApiError(400, f"archive member {shown('/'.join(clash))} is both a file and a folder")


def _write_members(archive, members, destination: Path, max_bytes: int) -> int:
    """Copy the checked members into ``destination``, counting real bytes (headers can lie); returns them."""
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
    return written

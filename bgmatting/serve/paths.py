"""Untrusted relative names, checked before they become paths, and files read without following links.

:func:`relative_parts` vets a client's name (a batch folder, a zip member): no NUL or control characters, no
component over the file system's 255 bytes, a bounded total length, and no ``..`` or absolute path.
:func:`read_confined` opens a file one component at a time below a root with ``O_NOFOLLOW``, so a file
swapped for a symlink after a batch was checked is refused instead of followed.
"""
import errno
import os
import re
import stat
from pathlib import Path, PurePosixPath

from bgmatting.serve.errors import ApiError
from bgmatting.serve.uploads import check_byte_size

MAX_NAME_CHARS = 1024  # a whole relative name
MAX_COMPONENT_BYTES = 255  # one file or folder name (NAME_MAX of Linux, macOS and Windows file systems)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(name: str, limit: int = 60) -> str:
    """``repr`` of a client's name for an error line, cut to ``limit`` characters."""
    return repr(name[:limit]) + (f"... ({len(name)} characters)" if len(name) > limit else "")


def relative_parts(name: str, what: str, escape_status: int, escape_detail: str) -> tuple:
    """The components of a client's relative name, or an ApiError naming what is wrong with it.

    Args:
        name: the name as sent (``\\`` is read as ``/``); what: how to call it in messages ("folder", ...).
        escape_status, escape_detail: the answer for an absolute path or ``..`` (403 for folders, 400 for zips).
    Raises:
        ApiError: 400 for control characters, an over-long name or component; ``escape_status`` for an escape.
    Example:
        >>> relative_parts("shoot/src", "folder", 403, "is outside the batch root")
        ('shoot', 'src')
    """
    if _CONTROL.search(name):
        raise ApiError(400, f"{what} {shown(name)} contains a control character (NUL, newline, ...)")
    if len(name) > MAX_NAME_CHARS:
        raise ApiError(400, f"{what} {shown(name)} is too long (the limit is {MAX_NAME_CHARS} characters)")
    name = name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise ApiError(escape_status, f"{what} {shown(name)} {escape_detail}")
    long = next((part for part in parts if len(part.encode()) > MAX_COMPONENT_BYTES), None)
    if long is not None:
        raise ApiError(400, f"{what} {shown(name)}: the name {shown(long, 20)} is longer than "
                            f"{MAX_COMPONENT_BYTES} bytes")
    return parts


def read_confined(root: Path, path: Path, field: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` below ``root``, opened without following any symlink on the way.

    Args:
        root: a resolved folder; path: a resolved file below it (as checked when the batch was posted).
        field: the name used in messages; max_bytes: larger files are refused before they are read.
    Raises:
        ApiError: 403 when a component is now a symlink (or no longer a folder), 422 for a non-regular file,
            413 over ``max_bytes``; OSError when the file is gone or unreadable.
    """
    parts = path.relative_to(root).parts
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        handle = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ApiError(403, f"{field}: {path.name} was replaced by a symlink after the batch was posted; "
                                "links are not followed") from None
        raise
    finally:
        os.close(folder)
    with os.fdopen(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ApiError(422, f"{field}: {path.name} is not a regular file")
        check_byte_size(info.st_size, field, max_bytes)
        return file.read(max_bytes + 1)

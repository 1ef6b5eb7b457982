"""The output folder of a run: what may be replaced, staging under a hidden name, and clean-up after kills.

A run writes into ``.NAME.partial-PID`` beside ``NAME`` and renames it into place at the end, so ``NAME`` only ever
holds finished outputs. An existing ``NAME`` is renamed to ``.NAME.old-PID`` and deleted after the swap; it may be
replaced only if it holds nothing but a run's outputs (:data:`~bgmatting.pipeline.outputs.OUTPUT_NAMES`) and the
user agreed (``-y`` or a terminal prompt). While the folder is open, SIGTERM is handled like Ctrl-C (Paddle would
otherwise abort in C++ and leave the staging folder), and opening it removes the ``.NAME.partial-PID`` /
``.NAME.old-PID`` folders of runs whose process no longer exists.

Rules for odd destinations: a symbolic link to a folder stands for that folder (its contents are replaced, the
link stays); the current directory, or a folder holding it, is refused (it would be renamed under the shell); a
destination whose parent is a file or not writable is refused before the model loads. A write that fails later
(a full disk) ends the run with one ``error:`` line and removes the staging folder.

Example:
    >>> folder = OutputFolder("out", overwrite=True)   # checks only
    >>> with folder as staging:                         # creates .out.partial-PID, SIGTERM → KeyboardInterrupt
    ...     write_image(staging / "pha" / "a.png", pha)
    ...     folder.commit()                             # staging → out
"""
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from bgmatting.data.io import check_writable_folder
from bgmatting.errors import UserError
from bgmatting.pipeline.outputs import OUTPUT_NAMES


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_folders(output: Path) -> list:
    """``.NAME.partial-PID`` and ``.NAME.old-PID`` folders beside ``output`` whose PID is not a running process."""
    pattern = re.compile(rf"\.{re.escape(output.name)}\.(partial|old)-(\d+)")
    if not output.parent.is_dir():
        return []
    found = []
    for path in output.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not _process_exists(int(match.group(2))):
            found.append(path)
    return sorted(found)


class OutputFolder:
    """A run's output folder (see the module docstring). Construction only checks; ``with`` stages and cleans.

    Args:
        path: ``--output-dir`` as given.
        overwrite: replace an existing folder of outputs without asking (``-y``).
    Attributes:
        path: the destination (a symlink resolved); removed: stale folders deleted on entry.
    Raises:
        UserError: (construction) the destination is a file, holds other files, exists and the user did not agree,
            is or holds the current directory, or its parent is a file / not writable; (entry) the staging folder
            cannot be created.
    """

    def __init__(self, path, overwrite: bool = False):
        given = Path(path)
        self.path = given.resolve() if given.is_symlink() else given.absolute()
        self.staging, self.removed, self._previous_handler = None, [], None
        cwd = Path.cwd().resolve()
        if cwd == self.path.resolve() or self.path.resolve() in cwd.parents:
            raise UserError(f"--output-dir {path} is the current directory or holds it; the output folder is "
                            "replaced as a whole, so choose a folder inside it (e.g. --output-dir out)")
        check_writable_folder(self.path.parent, f"--output-dir {path}")
        _check_replaceable(self.path, overwrite)

    def __enter__(self) -> Path:
        self.removed = stale_folders(self.path)
        for folder in self.removed:
            shutil.rmtree(folder, ignore_errors=True)
        self.staging = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        try:
            self.staging.mkdir(parents=True)
        except OSError as error:
            raise UserError(f"cannot create {self.staging}: {error.strerror or error}") from None
        self._previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
        return self.staging

    def commit(self):
        """Move the finished staging folder to the destination, replacing an old one (already agreed to)."""
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            self.path.rename(old)
        self.staging.rename(self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, traceback):
        previous = self._previous_handler
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)


def _check_replaceable(path: Path, overwrite: bool) -> None:
    """Refuse an existing destination unless it holds only a run's outputs and ``overwrite`` or the user agrees on
    a terminal, so a mistyped ``--output-dir`` cannot delete unrelated files."""
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"--output-dir exists and is not a directory: {path}")
    if not any(path.iterdir()):
        return  # nothing to overwrite
    foreign = sorted(p.name for p in path.iterdir() if p.name not in OUTPUT_NAMES)
    if foreign:
        raise UserError(f"--output-dir {path} holds files predict.py did not write ({', '.join(foreign[:3])}); "
                        "choose another directory")
    if overwrite:
        return
    if sys.stdin.isatty():
        answer = input(f"Directory {path} already exists. Replace it? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            return
    raise UserError(f"output directory already exists: {path} (pass -y to replace it)")

"""Several processes on one run: ``python -m paddle.distributed.launch --nproc_per_node N predict.py …`` (or
``eval.py``), on one machine or several (``--ips``/``--master``).

Each process (rank) takes a contiguous share of the frames or images (:meth:`Ranks.share`), writes what it made into
its part folder ``.rank-R`` inside the run's staging folder, and says when it is done; rank 0 does the first share,
then takes the other parts in rank order and writes the one output (one video, one report). The ranks talk through a
small key/value store (Paddle's ``TCPStore``) that rank 0 hosts at the ``PADDLE_MASTER`` address the launcher
reserves; the files themselves go through the filesystem, so on several machines the output folder (and the inputs)
must be at the same path on a shared filesystem.

Every wait is bounded: a rank that fails is named in rank 0's error (its own message with it), and one that shows no
progress for ``timeout`` seconds ends the run with an error naming it. Without the launcher's environment
(``PADDLE_TRAINERS_NUM`` unset or 1) everything here is a no-op and the tools run as one process.

Example:
    >>> ranks = Ranks.from_env(timeout=600)                  # rank 1 of 2 under the launcher
    >>> with ranks.reporting():                               # a failure here is reported to rank 0
    ...     ranks.share(100)                                  # range(50, sys.maxsize): frames 50… of 100
    ...     for name, frame in ranks.select(source, len(source)): ...
    ...     ranks.done()
    >>> for rank, folder in ranks.parts(staging): ...         # rank 0: each other rank's part, once it is done
"""
import contextlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from bgmatting.errors import UserError

#: seconds a rank may go without progress before the run gives up on it (``--rank-timeout``)
DEFAULT_TIMEOUT = 600.0
_POLL = 0.1


def add_rank_arguments(parser):
    """Add ``--rank-timeout`` (used only under ``paddle.distributed.launch``)."""
    parser.add_argument("--rank-timeout", type=float, default=None,
                        help="under paddle.distributed.launch: seconds a process may show no progress (or rank 0 "
                             "take to start) before the run ends with an error naming it "
                             f"(default {DEFAULT_TIMEOUT:g})")


def part_folder(root, rank: int) -> Path:
    """The folder rank ``rank`` writes its share into, inside ``root`` (the run's staging or save folder)."""
    return Path(root) / f".rank-{rank}"


class Ranks:
    """This process's place among the processes of one run.

    Args:
        rank: 0 … world − 1 (``PADDLE_TRAINER_ID``); world: number of processes (``PADDLE_TRAINERS_NUM``).
        master: ``host:port`` of the store rank 0 hosts (``PADDLE_MASTER``); timeout: seconds without progress.
    Attributes:
        distributed: world > 1; main: rank == 0 (writes the output, shows progress).
    """

    def __init__(self, rank: int = 0, world: int = 1, master: str = None, timeout: float = DEFAULT_TIMEOUT):
        if timeout <= 0:
            raise UserError(f"--rank-timeout must be > 0 seconds, got {timeout:g}")
        self.rank, self.world, self.master, self.timeout = rank, world, master, timeout
        self.distributed, self.main = world > 1, rank == 0
        self.store = None

    @classmethod
    def from_env(cls, timeout: float = None) -> "Ranks":
        """The ranks paddle.distributed.launch describes in the environment (one process without it); connected.

        Args:
            timeout: ``--rank-timeout`` (None: :data:`DEFAULT_TIMEOUT`); refused without the launcher.
        """
        world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)
        if world <= 1:
            if timeout is not None:
                raise UserError(f"--rank-timeout {timeout:g} applies to runs started by python -m "
                                "paddle.distributed.launch (this is one process: PADDLE_TRAINERS_NUM is unset)")
            return cls()
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        master = os.environ.get("PADDLE_MASTER") or os.environ.get("PADDLE_TRAINER_ENDPOINTS", "").split(",")[0]
        if not master:
            raise UserError("PADDLE_TRAINERS_NUM is set but neither PADDLE_MASTER nor PADDLE_TRAINER_ENDPOINTS: start "
                            "the run with python -m paddle.distributed.launch")
        ranks = cls(int(os.environ.get("PADDLE_TRAINER_ID", "0")), world, master, timeout)
        ranks.connect()
        return ranks

    def connect(self):
        """Open the store (rank 0 hosts it and waits, at most ``timeout`` s, for every rank to connect)."""
        from paddle.base import core

        host, _, port = self.master.rpartition(":")
        if not self.main:
            self._await_master(host, int(port))  # Paddle's client retries forever when nobody listens
        try:
            self.store = core.TCPStore(host, int(port), self.main, self.world, max(1, int(self.timeout)))
        except (SystemError, RuntimeError, OSError) as error:
            what = "not every rank connected to" if self.main else "rank 0 did not answer at"
            raise UserError(f"rank {self.rank}: {what} {self.master} within {self.timeout:g} s "
                            f"({str(error).splitlines()[0][:120]})") from None

    def _await_master(self, host: str, port: int):
        """Wait (at most ``timeout`` s) until rank 0's store accepts connections."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                socket.create_connection((host, port), timeout=1.0).close()
                return
            except OSError as error:
                if time.monotonic() > deadline:
                    raise UserError(f"rank {self.rank}: rank 0 did not answer at {self.master} within "
                                    f"{self.timeout:g} s ({error.strerror or error})") from None
                time.sleep(0.2)

    def share(self, count: int) -> range:
        """The indices of ``count`` items this rank takes: contiguous, in rank order; the last rank also takes any
        items past ``count`` (a video longer than its header says)."""
        if not self.distributed:
            return range(0, sys.maxsize)
        start = count * self.rank // self.world
        stop = count * (self.rank + 1) // self.world if self.rank < self.world - 1 else sys.maxsize
        return range(start, stop)

    def select(self, items, count: int):
        """Yield the items of iterable ``items`` (``count`` announced) whose index is in :meth:`share`, stopping
        after the share; each yield is a heartbeat for rank 0's bounded wait."""
        share = self.share(count)
        for index, item in enumerate(items):
            if index >= share.stop:
                return
            if index >= share.start:
                self.beat()
                yield item

    # --- messages between ranks -------------------------------------------------------------------------------
    def beat(self):
        """Tell rank 0 this rank made progress; stop at once (UserError) if rank 0 failed (rank 0: if any other
        rank did)."""
        if self.store is None:
            return
        if not self.main:
            self._store("add", f"progress/{self.rank}", 1)
        for rank in range(1, self.world) if self.main else (0,):
            self._check_failed(rank)

    def _store(self, method: str, *args):
        """``store.METHOD(*args)``; a store that went away (rank 0 ended) is a UserError naming it."""
        try:
            return getattr(self.store, method)(*args)
        except (ValueError, SystemError, RuntimeError, OSError) as error:
            raise UserError(f"rank {self.rank}: lost the connection to rank 0 at {self.master} (it ended?): "
                            f"{str(error).splitlines()[0][:120]}") from None

    def _check_failed(self, rank: int):
        if self._store("add", f"failed/{rank}", 0):
            raise UserError(f"rank {rank} failed: {self._store('get', f'message/{rank}').decode()}")

    def publish(self, key: str, value: bytes):
        """Rank 0: make ``value`` available to the other ranks under ``key``."""
        if self.store is not None:
            self._store("set", f"value/{key}", value)
            self._store("add", f"ready/{key}", 1)

    def receive(self, key: str) -> bytes:
        """Another rank: wait (at most ``timeout`` s) for rank 0 to :meth:`publish` ``key``."""
        deadline = time.monotonic() + self.timeout
        while not self._store("add", f"ready/{key}", 0):
            self._check_failed(0)
            if time.monotonic() > deadline:
                raise UserError(f"rank {self.rank}: rank 0 did not share the {key} within {self.timeout:g} s")
            time.sleep(_POLL)
        return self._store("get", f"value/{key}")

    def done(self):
        """Tell rank 0 this rank finished its share (its part folder is complete)."""
        if self.store is not None and not self.main:
            self._store("add", f"done/{self.rank}", 1)

    @contextlib.contextmanager
    def reporting(self):
        """Report an exception leaving the block (its message) to rank 0, then re-raise it."""
        try:
            yield self
        except BaseException as error:
            if self.store is not None:
                message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
                try:
                    self._store("set", f"message/{self.rank}", message.encode()[:2000])
                    self._store("add", f"failed/{self.rank}", 1)
                except Exception:  # rank 0 (the store) is gone already: nothing to tell
                    pass
            raise

    def wait_for(self, rank: int):
        """Rank 0: wait until ``rank`` is done; no progress for ``timeout`` s, or its failure, is a UserError naming
        it."""
        progress, since = -1, time.monotonic()
        while not self._store("add", f"done/{rank}", 0):
            self._check_failed(rank)
            beats = self._store("add", f"progress/{rank}", 0)
            if beats != progress:
                progress, since = beats, time.monotonic()
            elif time.monotonic() - since > self.timeout:
                raise UserError(f"rank {rank} did not finish: no progress for {self.timeout:g} s (after {beats} "
                                "item(s)); see its log (the launcher's --log_dir, workerlog.N)")
            time.sleep(_POLL)

    def parts(self, root):
        """Rank 0: yield ``(rank, part folder)`` for every other rank in order, each once it is done; the folder is
        deleted after the caller took what it holds."""
        for rank in range(1, self.world):
            self.wait_for(rank)
            folder = part_folder(root, rank)
            yield rank, folder
            shutil.rmtree(folder, ignore_errors=True)

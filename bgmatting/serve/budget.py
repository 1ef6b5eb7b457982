"""The disk budget of queued batch archives: bytes reserved before they are written, freed when a job ends.

An uploaded zip is copied, then unpacked, and its files stay on disk until its job has run; with many jobs
queued that adds up. Each archive job holds a :class:`Reservation` sized to what it has on disk; one that would
take the total over the budget is refused with 503 and ``Retry-After``, as a full model queue is.
"""
import threading

from bgmatting.serve.errors import ApiError

RETRY_AFTER_SECONDS = 30  # batch jobs take a while to free their space


class DiskBudget:
    """Bytes of disk the unpacked archives of queued and running jobs may hold together.

    Args:
        limit: the budget in bytes.
    Example:
        >>> budget = DiskBudget(2_000_000_000)
        >>> held = budget.reserve(zip_size)        # ApiError 503 when there is no room
        >>> held.resize(zip_size + unpacked_size)  # while both exist
        >>> held.release()                         # when the job's files are deleted
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int) -> "Reservation":
        """A new reservation of ``nbytes`` (ApiError 503 beyond the budget)."""
        reservation = Reservation(self)
        reservation.resize(nbytes)
        return reservation

    def _change(self, delta: int) -> None:
        with self._lock:
            if delta > 0 and self.used + delta > self.limit:
                raise ApiError(503, f"the server's disk budget for queued batches is in use ({self.used / 1e6:.1f} "
                                    f"of {self.limit / 1e6:g} MB); retry when a batch has finished",
                               retry_after=RETRY_AFTER_SECONDS)
            self.used += delta


class Reservation:
    """Part of a :class:`DiskBudget` held by one archive job; ``resize`` grows (or may refuse) and shrinks it."""

    def __init__(self, budget: DiskBudget):
        self._budget, self.nbytes = budget, 0

    def resize(self, nbytes: int) -> None:
        """Hold ``nbytes`` from now on (ApiError 503 when growing beyond the budget; the old size is kept)."""
        self._budget._change(nbytes - self.nbytes)
        self.nbytes = nbytes

    def release(self) -> None:
        """Give everything back (safe to call twice)."""
        self.resize(0)

"""The one model of the process, called one request at a time from a single thread, behind a bounded queue.

Concurrent users therefore share one copy of the weights and at most one set of activations; requests
beyond ``max_queue`` are refused (503) instead of piling up in memory.
"""
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from bgmatting.serve.errors import ApiError


class ModelWorker:
    """Builds the model on its own thread, then runs submitted calls ``fn(model, *args)`` in order.

    Args:
        factory: ``() -> model`` (e.g. a :class:`~bgmatting.engine.predictor.Predictor`), run once on the
            worker thread by :meth:`start`.
        max_queue: calls waiting or running at once; :meth:`submit` refuses more with ApiError 503.
    Example:
        >>> worker = ModelWorker(lambda: Predictor("mattingbase", "mobilenetv2"), max_queue=8)
        >>> worker.start()
        >>> out = worker.submit(lambda model, src, bgr: model(src=src, bgr=bgr), src, bgr).result()
    """

    def __init__(self, factory: Callable, max_queue: int):
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._factory = factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._slots = threading.BoundedSemaphore(max_queue)
        self._lock = threading.Lock()
        self._pending = 0
        self.max_queue = max_queue
        self.model = None

    def start(self):
        """Build the model on the worker thread and wait for it; re-raises the factory's error."""
        def build():
            self.model = self._factory()
        self._executor.submit(build).result()

    @property
    def pending(self) -> int:
        """Calls queued or running now."""
        return self._pending

    def _run(self, fn, args):
        try:
            return fn(self.model, *args)
        finally:
            with self._lock:
                self._pending -= 1
            self._slots.release()

    def submit(self, fn: Callable, *args, wait: bool = False) -> Future:
        """Queue ``fn(model, *args)``; returns its Future.

        Args:
            wait: block until a queue slot frees (batch jobs) instead of refusing with 503 (HTTP requests).
        """
        if not self._slots.acquire(blocking=wait):
            raise ApiError(503, f"the server is busy ({self.max_queue} requests queued); retry in a moment")
        with self._lock:
            self._pending += 1
        return self._executor.submit(self._run, fn, args)

    def shutdown(self):
        """Finish queued calls and stop the thread."""
        self._executor.shutdown(wait=True)

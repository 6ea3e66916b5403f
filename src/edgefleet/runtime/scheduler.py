"""How requests reach a session: one at a time per instance, or dynamically batched.

Both schedulers take validated feeds and return a :class:`RunResult` with the time spent queued
and computing. The :class:`DynamicBatcher` joins requests along the first (batch) dimension when
their other dimensions agree, runs them once and splits the outputs back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgefleet.runtime.backend import Session
from edgefleet.runtime.config import BatchingConfig

__all__ = ["DirectRunner", "DynamicBatcher", "RunResult", "Scheduler"]

log = logging.getLogger(__name__)

BatchObserver = Callable[[int], None]


@dataclass(frozen=True)
class RunResult:
    outputs: dict[str, np.ndarray]
    queue_seconds: float
    compute_seconds: float
    batch_size: int


class Scheduler(Protocol):
    def submit(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None) -> RunResult: ...

    def close(self) -> None: ...


class DirectRunner:
    """Runs each request on the caller's thread, at most ``instances`` at a time."""

    def __init__(self, session: Session, *, instances: int = 1, on_batch: BatchObserver | None = None):
        self._session = session
        self._slots = threading.BoundedSemaphore(instances)
        self._on_batch = on_batch

    def submit(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None) -> RunResult:
        t0 = time.perf_counter()
        with self._slots:
            t1 = time.perf_counter()
            result = self._session.run(feeds, outputs)
            t2 = time.perf_counter()
        size = _batch_of(feeds)
        if self._on_batch is not None:
            self._on_batch(size)
        return RunResult(result, t1 - t0, t2 - t1, size)

    def close(self) -> None:
        """Nothing to stop: callers run on their own threads."""


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int:
    for array in feeds.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1


@dataclass
class _Item:
    feeds: Mapping[str, np.ndarray]
    outputs: Sequence[str] | None
    future: Future[RunResult]
    enqueued: float
    size: int
    key: tuple[object, ...]


_STOP = object()


class DynamicBatcher:
    """Joins concurrent requests into batches of up to ``max_batch_size`` rows.

    A batch leaves when it reaches ``max_batch_size`` or one of ``preferred_batch_sizes``, or when
    its oldest request has waited ``max_queue_delay_ms``. ``instances`` worker threads run batches.
    """

    def __init__(
        self,
        session: Session,
        config: BatchingConfig,
        *,
        instances: int = 1,
        on_batch: BatchObserver | None = None,
        name: str = "model",
    ) -> None:
        self._session = session
        self._max = config.max_batch_size
        self._delay = config.max_queue_delay_ms / 1000.0
        self._preferred = frozenset(config.preferred_batch_sizes)
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._held: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._output_names = [s.name for s in session.outputs]
        self._workers = [
            threading.Thread(target=self._loop, name=f"batcher-{name}-{i}", daemon=True)
            for i in range(instances)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None) -> RunResult:
        key = tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(feeds.items()))
        future: Future[RunResult] = Future()
        self._queue.put(_Item(feeds, outputs, future, time.perf_counter(), _batch_of(feeds), key))
        return future.result()

    def close(self) -> None:
        """Finish what is queued, then stop the workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._workers:
            self._queue.put(_STOP)
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(timeout=30)

    def _next(self, timeout: float | None) -> _Item | object | None:
        with self._lock:
            if self._held:
                return self._held.popleft()
        try:
            return (
                self._queue.get(timeout=timeout)
                if timeout is None or timeout > 0
                else self._queue.get_nowait()
            )
        except queue.Empty:
            return None

    def _loop(self) -> None:
        while True:
            first = self._next(None)
            if first is _STOP or not isinstance(first, _Item):
                return
            batch = [first]
            total = first.size
            deadline = first.enqueued + self._delay
            stop_after = False
            while total < self._max and total not in self._preferred:
                item = self._next(deadline - time.perf_counter())
                if item is None:
                    break
                if item is _STOP or not isinstance(item, _Item):
                    stop_after = True
                    break
                if item.key != first.key or total + item.size > self._max:
                    with self._lock:
                        self._held.append(item)
                    break
                batch.append(item)
                total += item.size
            self._run(batch, total)
            if stop_after:
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            item = self._next(0)
            if item is None:
                return
            if isinstance(item, _Item):
                self._run([item], item.size)

    def _run(self, batch: list[_Item], total: int) -> None:
        started = time.perf_counter()
        try:
            if len(batch) == 1:
                results = [self._session.run(batch[0].feeds, batch[0].outputs)]
            else:
                results = self._run_joined(batch, total)
        except Exception as exc:  # noqa: BLE001 - the error belongs to the callers, each gets it
            for item in batch:
                item.future.set_exception(exc)
            return
        compute = time.perf_counter() - started
        if self._on_batch is not None:
            self._on_batch(total)
        for item, result in zip(batch, results, strict=True):
            item.future.set_result(RunResult(result, started - item.enqueued, compute, total))

    def _run_joined(self, batch: list[_Item], total: int) -> list[dict[str, np.ndarray]]:
        joined = {name: np.concatenate([i.feeds[name] for i in batch]) for name in batch[0].feeds}
        full = self._session.run(joined, None)
        if any(a.ndim == 0 or a.shape[0] != total for a in full.values()):
            log.warning("model outputs are not batch-major; running requests one by one")
            return [self._session.run(i.feeds, i.outputs) for i in batch]
        out = []
        offset = 0
        for item in batch:
            names = item.outputs or self._output_names
            out.append({n: full[n][offset : offset + item.size] for n in names})
            offset += item.size
        return out

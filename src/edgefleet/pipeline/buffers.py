"""Where frames wait for the first stage: ``latest`` keeps only the newest frame per source and
counts the replaced ones as ``stale`` drops; ``every`` is a bounded FIFO whose ``put`` blocks."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from edgefleet.pipeline.frame import Frame

__all__ = ["EveryBuffer", "FrameBuffer", "LatestBuffer", "LatestSlot"]


class FrameBuffer(Protocol):
    def put(self, frame: Frame, stop: threading.Event) -> None: ...

    def take(self, limit: int, timeout: float) -> list[Frame]:
        """Up to ``limit`` frames, oldest capture first; ``[]`` after ``timeout`` or once closed and empty."""
        ...

    def close(self) -> None: ...

    @property
    def drained(self) -> bool: ...


class LatestBuffer:
    def __init__(self, on_stale: Callable[[Frame], None]) -> None:
        self._slots: dict[str, Frame] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._on_stale = on_stale

    def put(self, frame: Frame, stop: threading.Event) -> None:
        del stop
        with self._cond:
            old = self._slots.get(frame.source)
            self._slots[frame.source] = frame
            self._cond.notify()
        if old is not None:
            self._on_stale(old)

    def take(self, limit: int, timeout: float) -> list[Frame]:
        with self._cond:
            self._cond.wait_for(lambda: self._slots or self._closed, timeout=timeout)
            frames = sorted(self._slots.values(), key=lambda f: f.captured)[:limit]
            for f in frames:
                del self._slots[f.source]
            return frames

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._slots


class EveryBuffer:
    def __init__(self, size: int) -> None:
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=size)
        self._closed = threading.Event()

    def put(self, frame: Frame, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
            except queue.Full:
                continue
            return

    def take(self, limit: int, timeout: float) -> list[Frame]:
        try:
            frames = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(frames) < limit:
            try:
                frames.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return frames

    def close(self) -> None:
        self._closed.set()

    @property
    def drained(self) -> bool:
        return self._closed.is_set() and self._queue.empty()


class LatestSlot:
    """A one-place hand-off for the ``latest`` policy: ``put`` replaces a value still waiting
    (and returns it, so its frames are counted as stale) instead of blocking."""

    def __init__(self) -> None:
        self._value: Any = None
        self._full = False
        self._cond = threading.Condition()

    def put(self, value: Any) -> Any:
        with self._cond:
            old = self._value if self._full else None
            self._value, self._full = value, True
            self._cond.notify()
            return old

    @property
    def full(self) -> bool:
        with self._cond:
            return self._full

    def get(self, timeout: float) -> tuple[bool, Any]:
        """``(True, value)``, or ``(False, None)`` after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full, timeout=timeout):
                return False, None
            value, self._value, self._full = self._value, None, False
            return True, value

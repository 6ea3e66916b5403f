"""The source seam: a source runs in its own thread and hands decoded RGB frames to ``emit``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Backoff", "Source", "SourceContext"]


@dataclass
class SourceContext:
    """What a running source may call. ``emit`` may block (policy ``every``) or drop (``latest``)."""

    emit: Callable[[npt.NDArray[np.uint8], float | None], None]
    """Hand over one RGB frame (H, W, 3) and its stream time in seconds (or ``None``)."""
    drop: Callable[[str], None]
    """Count a frame lost before ``emit`` (``decode_error``, ``bad_input``)."""
    reconnected: Callable[[], None]
    up: Callable[[bool], None]
    stop: threading.Event


class Source(Protocol):
    """A frame producer. ``open`` checks it can start (raising a clear error if not); ``run`` blocks
    in the source's own thread until the source ends or ``ctx.stop`` is set, and releases
    everything it opened before it returns."""

    name: str

    def open(self) -> None: ...

    def run(self, ctx: SourceContext) -> None: ...

    def close(self) -> None: ...


class Backoff:
    """Exponential backoff: ``initial``, ``initial * factor``, ... capped at ``maximum``."""

    def __init__(
        self, initial: float, maximum: float, factor: float, max_attempts: int | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.max_attempts = max_attempts
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return delay

    def exhausted(self) -> bool:
        return self.max_attempts is not None and self.failures >= self.max_attempts

    def reset(self) -> None:
        self.failures = 0

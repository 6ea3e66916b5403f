"""Failed token guesses per source address: past a limit, that address is refused for a while.

API tokens (``Authorization: Bearer``) and join tokens (``POST /device/v1/enroll``) are secrets a
caller can try to guess. Each failure is counted against the source address in a sliding window;
once an address has ``limit`` failures inside ``window_s`` seconds, every further attempt from it is
refused with 429 ``server.too_many_failures`` and ``Retry-After`` (the seconds until its oldest
failure leaves the window), valid token or not: a guesser learns nothing more. Successful calls
are never counted or refused. State is per server process (replicas each keep their own).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from edgefleet.errors import RateLimitedError

__all__ = ["GuessLimiter"]


class GuessLimiter:
    """Sliding-window count of failed guesses per address; bounded (oldest addresses forgotten)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = 100_000,
    ) -> None:
        self.limit = limit  # 0: off
        self.window_s = window_s
        self._clock = clock
        self._capacity = capacity
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.failures_total: dict[str, int] = {}
        self.refused_total: dict[str, int] = {}

    def _recent(self, source: str, now: float) -> deque[float] | None:
        q = self._failures.get(source)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[source]
            return None
        return q

    def check(self, source: str, kind: str) -> None:
        """Refuse (``RateLimitedError``) when ``source`` used up its failures in the window."""
        if self.limit <= 0:
            return
        with self._lock:
            now = self._clock()
            q = self._recent(source, now)
            if q is None or len(q) < self.limit:
                return
            retry = q[0] + self.window_s - now
            self.refused_total[kind] = self.refused_total.get(kind, 0) + 1
        raise RateLimitedError(
            f"too many failed token attempts from {source}; retry in {retry:.0f} s",
            code="server.too_many_failures",
            retry_after=retry,
        )

    def failed(self, source: str, kind: str) -> None:
        """Count one failed guess by ``source``."""
        with self._lock:
            self.failures_total[kind] = self.failures_total.get(kind, 0) + 1
            if self.limit <= 0:
                return
            now = self._clock()
            q = self._recent(source, now) or deque()
            q.append(now)
            while len(q) > self.limit:
                q.popleft()
            self._failures[source] = q
            self._failures.move_to_end(source)
            while len(self._failures) > self._capacity:
                self._failures.popitem(last=False)

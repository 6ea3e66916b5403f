"""A bounded on-disk queue of events for the server: oldest dropped first, drops counted.

When the file cannot be written (a full disk) the events stay queued in memory, the next change
tries the write again, and :attr:`Outbox.unsaved` says so: a full disk loses no event unless the
agent also restarts before space returns.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from edgefleet.agent.errors import AgentStorageError
from edgefleet.agent.fsio import atomic_write_json, read_json

log = logging.getLogger("edgefleet.agent")

__all__ = ["Outbox"]


class Outbox:
    """Events kept in ``path`` (one small JSON file, rewritten atomically) until the server has them."""

    def __init__(self, path: Path, *, capacity: int = 1000) -> None:
        self.path, self.capacity = path, capacity
        self._lock = threading.Lock()
        data = read_json(path, {"events": [], "dropped": 0})
        self._events: list[dict[str, Any]] = list(data.get("events", []))[-capacity:]
        self.dropped = int(data.get("dropped", 0))
        self.unsaved = False

    def __len__(self) -> int:
        return len(self._events)

    def put(self, kind: str, **data: Any) -> None:
        with self._lock:
            self._events.append({"kind": kind, "data": data})
            over = len(self._events) - self.capacity
            if over > 0:
                del self._events[:over]
                self.dropped += over
            self._save()

    def peek(self, n: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._events[:n]]

    def ack(self, n: int) -> None:
        """The first ``n`` events were delivered."""
        with self._lock:
            del self._events[:n]
            self._save()

    def _save(self) -> None:
        try:
            atomic_write_json(self.path, {"events": self._events, "dropped": self.dropped})
        except AgentStorageError as exc:
            if not self.unsaved:
                log.warning("events kept in memory only", extra={"reason": exc.message})
            self.unsaved = True
            return
        self.unsaved = False

"""A bounded on-disk buffer of log lines for the server: gzip JSON-lines batches, oldest dropped first.

Lines (``{"ts", "source", "workload", "level", "msg"}``) collect in memory (at most ``max_pending``;
beyond that the oldest pending lines are dropped) until :meth:`LogBuffer.seal` writes them as one
batch ``<dir>/<seq:016d>-<lines>.jsonl.gz`` (atomically). Sealed batches wait on disk until the server
has them; past ``capacity_bytes`` the oldest batches are deleted. Every dropped line is counted, and
the next batch starts with a warning line that says how many were lost, so the operator sees the
gap where it happened. When a batch cannot be written (a full disk: :class:`AgentStorageError`), its
lines go back to the front of the pending lines (still bounded by ``max_pending``) for the next seal.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.agent.errors import AgentStorageError
from edgefleet.agent.fsio import atomic_write, atomic_write_json, read_json

__all__ = ["MAX_BATCH_BYTES", "MAX_LINE_CHARS", "Batch", "LogBuffer"]

MAX_LINE_CHARS = 8192
MAX_BATCH_BYTES = 2 << 20  # uncompressed; the server takes up to 8 MiB by default
_BATCH = re.compile(r"^(\d{16})-(\d+)\.jsonl\.gz$")


@dataclass(frozen=True)
class Batch:
    seq: int
    path: Path
    lines: int

    def body(self) -> bytes:
        return self.path.read_bytes()


class LogBuffer:
    """Thread-safe: :meth:`add` is called from logging handlers on any thread and never blocks on disk."""

    def __init__(
        self,
        directory: Path,
        *,
        capacity_bytes: int = 16 << 20,
        max_pending: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.capacity_bytes = capacity_bytes
        self.max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: deque[dict[str, Any]] = deque()
        state = read_json(self.dir / "state.json", {}) or {}
        # batch numbers start at the clock in ms, so they keep increasing even if this directory
        # is lost (the server ignores numbers it has seen)
        self._next = int(state.get("next", int(self._clock() * 1000)))
        self.dropped = int(state.get("dropped", 0))
        self._announced = int(state.get("announced", 0))
        self.collected = int(state.get("collected", 0))
        self.shipped = int(state.get("shipped", 0))
        for b in self.batches():
            self._next = max(self._next, b.seq + 1)

    # -- in memory -----------------------------------------------------------------------------------

    def add(
        self,
        msg: str,
        *,
        source: str,
        workload: str | None = None,
        level: str | None = None,
        ts: float | None = None,
    ) -> None:
        """Queue one line (cut at :data:`MAX_LINE_CHARS`); the oldest pending line goes when full."""
        if len(msg) > MAX_LINE_CHARS:
            msg = msg[: MAX_LINE_CHARS - 1] + "…"
        rec = {
            "ts": round(self._clock() if ts is None else ts, 6),
            "source": source,
            "workload": workload,
            "level": level,
            "msg": msg,
        }
        with self._lock:
            self._pending.append(rec)
            self.collected += 1
            if len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1

    # -- on disk -------------------------------------------------------------------------------------

    def batches(self) -> list[Batch]:
        """Sealed batches, oldest first."""
        out = []
        with contextlib.suppress(OSError):
            for p in self.dir.iterdir():
                m = _BATCH.match(p.name)
                if m:
                    out.append(Batch(int(m.group(1)), p, int(m.group(2))))
        return sorted(out, key=lambda b: b.seq)

    def seal(self) -> Batch | None:
        """Write the pending lines as batches of at most :data:`MAX_BATCH_BYTES` uncompressed (with a
        drop notice first, when lines were lost); returns the last one written."""
        with self._lock:
            recs = list(self._pending)
            self._pending.clear()
            lost = self.dropped - self._announced
            if lost > 0:
                recs.insert(
                    0,
                    {
                        "ts": round(self._clock(), 6),
                        "source": "agent",
                        "workload": None,
                        "level": "warning",
                        "msg": f"log buffer full: {lost} older lines were dropped on the device",
                    },
                )
                self._announced = self.dropped
        if not recs:
            return None
        batch = None
        chunk: list[str] = []
        size = 0
        written = 0  # of recs, in batches on disk
        try:
            for i, r in enumerate(recs):
                line = json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"
                if chunk and size + len(line.encode()) > MAX_BATCH_BYTES:
                    batch = self._write(chunk)
                    written = i
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line.encode())
            batch = self._write(chunk)
        except AgentStorageError:
            self._requeue(recs[written:])
            raise
        self._save()
        return batch

    def _requeue(self, recs: list[dict[str, Any]]) -> None:
        """Lines whose batch could not be written go back in front of the pending ones (bounded)."""
        with self._lock:
            self._pending.extendleft(reversed(recs))
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1

    def _write(self, lines: list[str]) -> Batch:
        with self._lock:
            seq = self._next
            self._next += 1
        path = self.dir / f"{seq:016d}-{len(lines)}.jsonl.gz"
        atomic_write(path, gzip.compress("".join(lines).encode(), compresslevel=6, mtime=0))
        self._enforce_capacity(keep=seq)
        return Batch(seq, path, len(lines))

    def _enforce_capacity(self, keep: int) -> None:
        batches = self.batches()
        sizes = {b.seq: _size(b.path) for b in batches}
        total = sum(sizes.values())
        for b in batches:
            if total <= self.capacity_bytes or b.seq == keep:
                break
            with contextlib.suppress(OSError):
                b.path.unlink()
                total -= sizes[b.seq]
                with self._lock:
                    self.dropped += b.lines

    def oldest(self) -> Batch | None:
        batches = self.batches()
        return batches[0] if batches else None

    def ack(self, batch: Batch) -> None:
        """The server stored ``batch``."""
        batch.path.unlink(missing_ok=True)
        with self._lock:
            self.shipped += batch.lines
        self._save()

    def discard(self, batch: Batch) -> None:
        """The server refused ``batch`` for good: its lines count as dropped."""
        batch.path.unlink(missing_ok=True)
        with self._lock:
            self.dropped += batch.lines
        self._save()

    def stats(self) -> dict[str, int]:
        batches = self.batches()
        with self._lock:
            pending = len(self._pending)
            return {
                "bytes": sum(_size(b.path) for b in batches),
                "lines": pending + sum(b.lines for b in batches),
                "batches": len(batches),
                "collected": self.collected,
                "shipped": self.shipped,
                "dropped": self.dropped,
            }

    def _save(self) -> None:
        with self._lock:
            state = {
                "next": self._next,
                "dropped": self.dropped,
                "announced": self._announced,
                "collected": self.collected,
                "shipped": self.shipped,
            }
        atomic_write_json(self.dir / "state.json", state)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

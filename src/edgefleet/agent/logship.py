"""Log shipping: agent records and workload output into the :class:`LogBuffer`, batches to the server.

- The agent's own records come through :class:`BufferHandler` (a :mod:`logging` handler).
- Workload output is read from the supervisor's rotating ``output.log`` files: each tick reads the
  complete lines written since the last one (following a rotation to ``output.log.1``), with the
  position per workload kept in ``cursors.json`` so an agent restart neither repeats nor skips.
- Each tick seals what was collected into one gzip batch and sends the oldest batches, in order,
  as ``POST /device/v1/logs?batch=<seq>`` (``Content-Encoding: gzip``, JSON lines). The server
  ignores a batch number it already stored, so a retry after a lost answer stores nothing twice.
  With the server away the batches stay on disk (bounded) and go out when it is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.agent.errors import AgentUnavailableError
from edgefleet.agent.fsio import atomic_write_json, read_json
from edgefleet.agent.logbuffer import MAX_LINE_CHARS, Batch, LogBuffer
from edgefleet.errors import EdgefleetError, PermissionDeniedError

__all__ = ["BufferHandler", "LogShipper", "WorkloadLog", "read_new_lines"]

log = logging.getLogger("edgefleet.agent.logs")
MAX_READ_BYTES = 1 << 20  # per workload and tick
_SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class BufferHandler(logging.Handler):
    """Puts the agent's log records into the buffer: ``message key=value ...``, source ``agent``."""

    def __init__(self, buffer: LogBuffer, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.buffer = buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _SKIP)
            msg = record.getMessage() + (f" {extras}" if extras else "")
            if record.exc_info:
                msg += "\n" + logging.Formatter().formatException(record.exc_info)
            self.buffer.add(msg, source="agent", level=record.levelname.lower(), ts=record.created)
        except Exception:  # noqa: BLE001 - a log handler must never raise into the code that logs
            self.handleError(record)


@dataclass(frozen=True)
class WorkloadLog:
    """A workload whose output is shipped: its deployment name and its ``output.log``."""

    deployment: str
    path: Path


def read_new_lines(
    path: Path, cursor: Mapping[str, int] | None, *, backups: int = 9, max_bytes: int = MAX_READ_BYTES
) -> tuple[list[str], dict[str, int] | None]:
    """Complete lines written to ``path`` after ``cursor`` (``{"ino", "pos"}``), and the new cursor.

    A rotation (the live file has another inode) is followed: the rest of the old file is read from
    ``path.1``...``path.N`` first, then the new file from its start.
    """
    try:
        st = path.stat()
    except OSError:
        return [], dict(cursor) if cursor else None
    data = b""
    pos = 0
    if cursor is not None and cursor.get("ino") == st.st_ino:
        pos = int(cursor.get("pos", 0))
        if st.st_size < pos:  # truncated: start over
            pos = 0
    elif cursor is not None:
        for i in range(1, backups + 1):
            old = path.with_name(f"{path.name}.{i}")
            with contextlib.suppress(OSError):
                if old.stat().st_ino == cursor.get("ino"):
                    with old.open("rb") as f:
                        f.seek(int(cursor.get("pos", 0)))
                        data = f.read(max_bytes)
                    if data and not data.endswith(b"\n"):
                        data += b"\n"  # the old file is complete: its last line too
                    break
    with path.open("rb") as f:
        f.seek(pos)
        fresh = f.read(max(0, max_bytes - len(data)))
    end = fresh.rfind(b"\n") + 1
    if end == 0 and len(fresh) >= MAX_LINE_CHARS:
        end = len(fresh)  # one endless line: ship it in pieces rather than never
    data += fresh[:end]
    lines = [ln.decode("utf-8", "replace").rstrip("\r") for ln in data.split(b"\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines, {"ino": st.st_ino, "pos": pos + end}


def _level(line: str) -> str | None:
    """The level of a JSON log line (``{"level": "info", ...}``), else None."""
    if not line.startswith("{"):
        return None
    with contextlib.suppress(ValueError):
        data = json.loads(line)
        if isinstance(data, dict) and isinstance(data.get("level"), str):
            return str(data["level"]).lower()[:16]
    return None


Send = Callable[[Batch], None]


class LogShipper:
    """One :meth:`tick` collects workload output, seals a batch and sends what is waiting."""

    def __init__(
        self,
        buffer: LogBuffer,
        *,
        workloads: Callable[[], Mapping[str, WorkloadLog]],
        send: Send | None,
        cursors: Path,
    ) -> None:
        self.buffer = buffer
        self._workloads = workloads
        self.send = send
        self._cursors_path = cursors
        self._cursors: dict[str, dict[str, int]] = read_json(cursors, {}) or {}
        self.last_error: str | None = None

    def collect(self) -> int:
        """Read new workload output into the buffer; returns the number of lines."""
        n = 0
        current = dict(self._workloads())
        changed = False
        for name, wl in current.items():
            lines, cur = read_new_lines(wl.path, self._cursors.get(name))
            for line in lines:
                self.buffer.add(line, source="workload", workload=wl.deployment, level=_level(line))
            n += len(lines)
            if cur is not None and cur != self._cursors.get(name):
                self._cursors[name] = cur
                changed = True
        for gone in set(self._cursors) - set(current):
            del self._cursors[gone]
            changed = True
        if changed:
            self.buffer.seal()  # the lines are on disk before the cursor moves past them
            atomic_write_json(self._cursors_path, self._cursors)
        return n

    def ship(self) -> int:
        """Send waiting batches oldest first until none is left or the server is away; lines sent."""
        if self.send is None:
            return 0
        sent = 0
        while (batch := self.buffer.oldest()) is not None:
            try:
                self.send(batch)
            except AgentUnavailableError as exc:
                self.last_error = exc.message
                return sent
            except PermissionDeniedError as exc:  # decommissioned: keep the lines, stop trying now
                self.last_error = exc.message
                return sent
            except EdgefleetError as exc:  # refused for good (malformed, too large): do not block the rest
                self.last_error = exc.message
                log.warning("log batch refused; dropped", extra={"batch": batch.seq, "reason": exc.message})
                self.buffer.discard(batch)
                continue
            self.buffer.ack(batch)
            sent += batch.lines
            self.last_error = None
        return sent

    def tick(self) -> None:
        self.collect()
        self.buffer.seal()
        self.ship()

    def run(self, interval_s: float, halt: threading.Event) -> None:
        while not halt.wait(interval_s):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - shipping logs must never stop the agent
                self.last_error = str(exc)[:300]
        with contextlib.suppress(Exception):
            self.collect()
            self.buffer.seal()  # what was collected stays on disk for the next start


def send_batch(client: Any, batch: Batch) -> None:
    """``POST /device/v1/logs?batch=<seq>`` with the gzip body, signed like every device call."""
    client.request(
        "POST",
        f"/device/v1/logs?batch={batch.seq}",
        batch.body(),
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )

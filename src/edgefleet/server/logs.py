"""Device logs: batches devices ship, stored per line, read back, kept within the retention limits.

A batch is gzip JSON lines, one object per line::

    {"ts": 1764300000.25, "source": "agent" | "workload", "workload": "det" | null,
     "level": "info" | null, "msg": "..."}

Each batch carries the device's batch number; a number at or below the last one stored for the
device is a repeat (the device did not get the answer) and stores nothing. Retention: lines older
than ``log_retention_days`` (by arrival) and beyond the newest ``max_log_lines_per_device`` of a
device are deleted, at each batch for that device and for every device by the periodic compaction.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from edgefleet.errors import PayloadTooLargeError
from edgefleet.server.errors import ServerInputError
from edgefleet.server.store.models import Device, DeviceLog

__all__ = ["LogLine", "compact_logs", "log_out", "parse_batch", "query_logs", "store_batch"]

SOURCES = ("agent", "workload")
MAX_MESSAGE_CHARS = 8192
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class LogLine:
    ts: float
    source: str
    workload: str | None
    level: str | None
    message: str


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    if len(raw) > max_bytes:
        raise PayloadTooLargeError(
            f"log batch: more than {max_bytes} bytes; send smaller batches",
            code="server.payload_too_large",
            field="body",
        )
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise ServerInputError(f"log batch: not gzip data ({exc})", field="body") from exc
    if len(out) > max_bytes or d.unconsumed_tail:
        raise PayloadTooLargeError(
            f"log batch: more than {max_bytes} bytes uncompressed; send smaller batches",
            code="server.payload_too_large",
            field="body",
        )
    if not d.eof:
        raise ServerInputError("log batch: the gzip data is cut short", field="body")
    return out


def _optional_str(rec: dict[str, Any], key: str, limit: int, where: str) -> str | None:
    v = rec.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise ServerInputError(f"{where}: {key} must be a string of at most {limit} characters", field=key)
    return v


def parse_batch(raw: bytes, *, max_bytes: int) -> list[LogLine]:
    """The lines of a gzip JSON-lines batch; a bad line is refused with its number and field."""
    text = _gunzip(raw, max_bytes)
    out: list[LogLine] = []
    for n, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"log batch line {n}"
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise ServerInputError(f"{where}: not JSON ({exc})", field="body", line=n) from exc
        if not isinstance(rec, dict):
            raise ServerInputError(f"{where}: expected a JSON object", field="body", line=n)
        ts = rec.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not _EARLIEST <= ts <= _LATEST:
            raise ServerInputError(f"{where}: ts must be Unix seconds (2000 to 2100)", field="ts", line=n)
        source = rec.get("source")
        if source not in SOURCES:
            raise ServerInputError(f"{where}: source must be one of {', '.join(SOURCES)}", field="source")
        msg = rec.get("msg")
        if not isinstance(msg, str):
            raise ServerInputError(f"{where}: msg must be a string", field="msg", line=n)
        out.append(
            LogLine(
                ts=float(ts),
                source=str(source),
                workload=_optional_str(rec, "workload", 128, where),
                level=_optional_str(rec, "level", 16, where),
                message=msg[:MAX_MESSAGE_CHARS],
            )
        )
    return out


def store_batch(
    s: Session,
    dev: Device,
    batch: int,
    lines: list[LogLine],
    *,
    now: datetime,
    retention_days: float,
    max_per_device: int,
) -> bool:
    """Store ``lines`` unless ``batch`` was stored already; True when stored. Trims the device's logs."""
    claimed = s.execute(
        update(Device)
        .where(Device.id == dev.id, Device.log_batch < batch)
        .values(log_batch=batch)
        .execution_options(synchronize_session=False)
    )
    if (claimed.rowcount or 0) == 0:  # type: ignore[attr-defined]
        return False
    s.add_all(
        DeviceLog(
            device_id=dev.id,
            ts=datetime.fromtimestamp(line.ts, tz=UTC),
            received_at=now,
            source=line.source,
            workload=line.workload,
            level=line.level,
            message=line.message,
        )
        for line in lines
    )
    s.flush()
    _trim_device(s, dev.id, now - timedelta(days=retention_days), max_per_device)
    return True


def _trim_device(s: Session, device_id: str, cutoff: datetime, max_per_device: int) -> int:
    old = s.execute(delete(DeviceLog).where(DeviceLog.device_id == device_id, DeviceLog.received_at < cutoff))
    removed = old.rowcount or 0  # type: ignore[attr-defined]
    edge = s.execute(
        select(DeviceLog.id)
        .where(DeviceLog.device_id == device_id)
        .order_by(DeviceLog.id.desc())
        .offset(max_per_device)
        .limit(1)
    ).scalar()
    if edge is not None:
        res = s.execute(delete(DeviceLog).where(DeviceLog.device_id == device_id, DeviceLog.id <= edge))
        removed += res.rowcount or 0  # type: ignore[attr-defined]
    return int(removed)


def compact_logs(s: Session, now: datetime, retention_days: float, max_per_device: int) -> int:
    """Apply the retention limits to every device's logs; returns the number of lines deleted."""
    cutoff = now - timedelta(days=retention_days)
    removed = s.execute(delete(DeviceLog).where(DeviceLog.received_at < cutoff)).rowcount or 0  # type: ignore[attr-defined]
    heavy = (
        s.execute(
            select(DeviceLog.device_id).group_by(DeviceLog.device_id).having(func.count() > max_per_device)
        )
        .scalars()
        .all()
    )
    for device_id in heavy:
        removed += _trim_device(s, device_id, cutoff, max_per_device)
    return int(removed)


def query_logs(
    s: Session,
    device_id: str,
    *,
    workload: str | None = None,
    since: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
) -> tuple[list[DeviceLog], int | None]:
    """Lines of a device, oldest first, and the cursor to pass as ``after`` for the next ones.

    Without ``after``: the newest ``limit`` lines (a tail). With ``after``: up to ``limit`` lines
    that arrived after it. The cursor is the last line's id, or (no line matched) the newest id of
    the device's lines, so that following with it shows only what comes next.
    """
    q = select(DeviceLog).where(DeviceLog.device_id == device_id)
    if workload is not None:
        q = q.where(DeviceLog.workload == workload)
    if since is not None:
        q = q.where(DeviceLog.ts >= since)
    if after is not None:
        rows = list(s.scalars(q.where(DeviceLog.id > after).order_by(DeviceLog.id).limit(limit)))
    else:
        rows = list(reversed(list(s.scalars(q.order_by(DeviceLog.id.desc()).limit(limit)))))
    if rows:
        return rows, rows[-1].id
    newest = s.scalar(select(func.max(DeviceLog.id)).where(DeviceLog.device_id == device_id))
    return rows, max(after or 0, newest or 0) or None


def log_out(row: DeviceLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "ts": row.ts,
        "source": row.source,
        "workload": row.workload,
        "level": row.level,
        "message": row.message,
    }

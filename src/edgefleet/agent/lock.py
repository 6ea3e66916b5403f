"""The update lock: while it is held, the agent defers updates (and says why).

Two kinds of holder:

- **an operator** (or a script) through the agent's local API: ``edgefleet agent lock --reason TEXT
  [--ttl 2h]`` / ``edgefleet agent unlock``; kept in ``state.json`` (so it survives an agent restart),
  with who, why, since when and, with a TTL, until when;
- **a workload or any process on the device** through the lock file (``--lock-file``, default
  ``<state>/update.lock``, mode 0644): a process that holds an ``flock`` on it (shared or exclusive)
  blocks updates; what it wrote into the file (one line, e.g. ``calibration running``) is reported
  as the reason. The lock goes away with the process, so a crashed holder never blocks for ever.
  The agent tests the lock (a non-blocking exclusive ``flock``, released at once) before each update
  of a running workload; it does not keep it, so the workloads it starts never inherit it.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgefleet.agent.errors import AgentInputError

__all__ = ["active", "file_lock_holder", "operator_lock", "parse_ttl"]

_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str | float | None) -> float | None:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h``, ``1d``; None for no TTL."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        m = _TTL.match(text)
        if m is None:
            raise AgentInputError(
                f"--ttl: {text!r} is not a duration; use seconds or a number with s, m, h or d (30m)",
                field="ttl",
            )
        seconds = float(m[1]) * _UNIT[m[2]]
    if seconds <= 0:
        raise AgentInputError(f"--ttl: {text!r} must be more than 0", field="ttl")
    return seconds


def operator_lock(reason: str, by: str, ttl: float | None, now: datetime | None = None) -> dict[str, Any]:
    """The lock record kept in ``state.json``."""
    reason = reason.strip()
    if not reason:
        raise AgentInputError("--reason: say why updates must wait", field="reason")
    if len(reason) > 500:
        raise AgentInputError("--reason: at most 500 characters", field="reason")
    at = now or datetime.now(UTC)
    return {
        "holder": by or "operator",
        "reason": reason,
        "since": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expires_at": (at + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ") if ttl else None,
    }


def active(record: dict[str, Any] | None, now: datetime | None = None) -> bool:
    if not record:
        return False
    exp = record.get("expires_at")
    return not exp or datetime.fromisoformat(exp) > (now or datetime.now(UTC))


def file_lock_holder(path: Path, proc: Path = Path("/proc")) -> str | None:
    """None when no process holds a lock on ``path``; else who (pid, command) and what it wrote into it.

    Read from ``/proc/locks`` (``flock``, POSIX and OFD locks alike), so the agent never takes the lock
    itself and no process it starts can inherit it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        st = os.fstat(fd)
        text = ""
        with contextlib.suppress(OSError):
            text = (os.pread(fd, 200, 0).decode(errors="replace").strip().splitlines() or [""])[0]
    finally:
        os.close(fd)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        table = (proc / "locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if len(fields) >= 6 and fields[5] == ident:
            pid = fields[4]
            comm = ""
            with contextlib.suppress(OSError):
                comm = (proc / pid / "comm").read_text().strip()
            who = f"pid {pid}" + (f" ({comm})" if comm else "")
            return f"lock file {path} held by {who}" + (f": {text}" if text else "")
    return None

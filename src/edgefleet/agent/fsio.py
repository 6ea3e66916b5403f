"""Small atomic files: write to a temp file in the same directory, fsync, rename, fsync the directory."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgefleet.agent.errors import AgentStorageError

__all__ = ["atomic_write", "atomic_write_json", "read_json", "storage_error"]


def storage_error(path: Path, exc: OSError, doing: str = "write") -> AgentStorageError:
    """``exc`` from writing under ``path`` as an :class:`AgentStorageError` that says what is wrong."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return AgentStorageError(
            f"{path}: cannot {doing}: no space left on the device of the state directory; "
            "the running version stays, the update waits for space",
            code="agent.disk_full",
            path=str(path),
        )
    return AgentStorageError(f"{path}: cannot {doing}: {exc.strerror or exc}", path=str(path))


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old or the new file, never a torn one.

    A failed write (a full disk) is an :class:`AgentStorageError`, and ``path`` is left as it was.
    """
    try:
        _atomic_write(path, data, mode)
    except OSError as exc:
        raise storage_error(path, exc) from exc


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_json(path: Path, data: Any, *, mode: int = 0o600) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=mode)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when the file does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return default

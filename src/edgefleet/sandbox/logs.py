"""Size-bounded rotating log files for workloads, and a tail API over them.

``<path>`` is the live file; ``<path>.1`` ... ``<path>.N`` are older ones (``.1`` the newest). The
writer runs inside the sandbox's shim process, so logs keep flowing while the supervisor restarts.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from pathlib import Path

__all__ = ["RotatingWriter", "pump", "tail"]


class RotatingWriter:
    """Append bytes to ``path``; past ``max_bytes`` shift the files and keep ``backups`` old ones."""

    def __init__(self, path: Path, max_bytes: int = 1 << 20, backups: int = 3) -> None:
        if max_bytes < 1 or backups < 0:
            raise ValueError("max_bytes must be >= 1 and backups >= 0")
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self._size
            if room <= 0:
                self._rotate()
                continue
            chunk, data = data[:room], data[room:]
            os.write(self._fd, chunk)
            self._size += len(chunk)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o640)
        self._size = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def pump(fds: list[int], writer: RotatingWriter) -> None:
    """Copy everything readable from ``fds`` into ``writer`` until every one reaches EOF."""
    import selectors

    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        open_fds = set(fds)
        while open_fds:
            for key, _ in sel.select():
                fd = int(key.fd)
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if data:
                    writer.write(data)
                else:
                    sel.unregister(fd)
                    os.close(fd)
                    open_fds.discard(fd)


def tail(path: Path, lines: int = 50, backups: int = 9) -> list[str]:
    """The last ``lines`` lines across ``path`` and its rotated files, oldest first."""
    files = [path.with_name(f"{path.name}.{i}") for i in range(backups, 0, -1)] + [path]
    out: deque[str] = deque(maxlen=max(0, lines))
    for file in files:
        with contextlib.suppress(OSError), file.open("rb") as handle:
            for raw in handle:
                out.append(raw.decode("utf-8", "replace").rstrip("\n"))
    return list(out)

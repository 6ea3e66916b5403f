"""Reading kernel files so that a missing or unreadable one becomes a reason, never a crash.

Every probe section follows one convention (see ``docs/probe.md``): a field that cannot be read is
``None`` and its name maps to the reason in the section's ``unknown`` dict. :class:`Unknowns`
collects those reasons while a section is being read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "Unknowns",
    "Unreadable",
    "exists",
    "is_dir",
    "is_file",
    "list_dir",
    "read_int",
    "read_kv",
    "read_text",
    "reason_for",
]

T = TypeVar("T")


class Unreadable(Exception):  # noqa: N818 (a reason carrier, caught inside the probe, never raised out)
    """A value that could not be read; ``reason`` says which path and why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reason_for(path: Path, exc: OSError) -> str:
    """One line naming ``path`` and what went wrong with it."""
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory, expected a file"
    if isinstance(exc, FileNotFoundError):
        return f"{path}: not present"
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied"
    if exc.errno == errno.ENOTDIR:
        return f"{path}: a parent is not a directory"
    return f"{path}: {exc.strerror or exc}"


def read_text(path: Path) -> str:
    """The whole file as text (undecodable bytes replaced); :class:`Unreadable` on any OS error."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise Unreadable(reason_for(path, exc)) from exc


def read_int(path: Path, base: int = 10) -> int:
    """The file's content as one integer; :class:`Unreadable` when absent or not a number."""
    text = read_text(path).strip()
    try:
        return int(text, base)
    except ValueError as exc:
        raise Unreadable(f"{path}: expected an integer, found {text[:40]!r}") from exc


def read_kv(path: Path, sep: str = ":") -> dict[str, str]:
    """``key<sep>value`` lines (``/proc/meminfo``, ``/proc/self/status``) as a dict of stripped strings."""
    out: dict[str, str] = {}
    for line in read_text(path).splitlines():
        key, found, value = line.partition(sep)
        if found:
            out[key.strip()] = value.strip()
    return out


def _mode(path: Path) -> int | None:
    """The file mode (following links), None when absent; :class:`Unreadable` when it cannot be told.

    ``Path.exists()`` raises ``PermissionError`` under an unsearchable directory; this says so.
    """
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise Unreadable(reason_for(path, exc)) from exc


def exists(path: Path) -> bool:
    """Whether ``path`` exists; :class:`Unreadable` when that cannot be told (permission denied)."""
    return _mode(path) is not None


def is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory; :class:`Unreadable` when that cannot be told."""
    mode = _mode(path)
    return mode is not None and stat.S_ISDIR(mode)


def is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; :class:`Unreadable` when that cannot be told."""
    mode = _mode(path)
    return mode is not None and stat.S_ISREG(mode)


def list_dir(path: Path) -> list[str]:
    """Sorted entry names of a directory; :class:`Unreadable` when it is absent or not a directory."""
    try:
        return sorted(os.listdir(path))  # noqa: PTH208 (names, not paths, are what callers match)
    except OSError as exc:
        raise Unreadable(reason_for(path, exc)) from exc


class Unknowns(dict[str, str]):
    """Field name → reason it is unknown, filled by :meth:`attempt`."""

    def attempt(self, name: str, read: Callable[[], T]) -> T | None:
        """``read()``, or ``None`` with the reason recorded under ``name`` when it is unreadable."""
        try:
            return read()
        except Unreadable as exc:
            self[name] = exc.reason
        except (ValueError, IndexError) as exc:
            self[name] = f"could not parse: {exc}"
        except OSError as exc:  # a path operation outside the helpers above (resolve, readlink, access)
            self[name] = reason_for(Path(exc.filename or "?"), exc)
        return None

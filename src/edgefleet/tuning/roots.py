"""Where the kernel's tunables live. Every root is injectable so tests run against fixture trees."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Roots", "atomic_write", "read_file", "write_file"]


@dataclass(frozen=True)
class Roots:
    """The OS paths the knobs read and write; the defaults are the real kernel's."""

    proc_sys: Path = Path("/proc/sys")
    sys: Path = Path("/sys")
    proc_irq: Path = Path("/proc/irq")
    cpu_dma_latency: Path = Path("/dev/cpu_dma_latency")
    proc_cmdline: Path = Path("/proc/cmdline")

    @classmethod
    def under(cls, base: Path) -> Roots:
        """A fixture layout below ``base``: ``base/proc/sys``, ``base/sys``, ``base/dev/...``."""
        return cls(
            proc_sys=base / "proc" / "sys",
            sys=base / "sys",
            proc_irq=base / "proc" / "irq",
            cpu_dma_latency=base / "dev" / "cpu_dma_latency",
            proc_cmdline=base / "proc" / "cmdline",
        )

    def boot_id(self) -> str | None:
        """The kernel's boot id: state saved under another boot describes a kernel that is gone."""
        try:
            return (self.proc_sys / "kernel" / "random" / "boot_id").read_text().strip() or None
        except OSError:
            return None


def read_file(path: Path) -> str | None:
    """The file's text, or ``None`` when it does not exist or cannot be read."""
    try:
        return path.read_text()
    except OSError:
        return None


def write_file(path: Path, value: str) -> None:
    """One ``write(2)`` of ``value``, the way sysctl(8) and tuned write kernel files.

    Opening without ``O_CREAT`` means a missing knob fails instead of creating a file.
    """
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file, fsync it, rename it over ``path``, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

"""Every root and kernel call the probe touches, in one frozen value with the real defaults.

Tests and support engineers pass a :class:`ProbePaths` that points at a fixture tree (see
:mod:`edgefleet.testing.fake_devices`) or a copied tree; the probe code never names ``/proc`` or
``/sys`` itself.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

__all__ = [
    "IoctlFn",
    "ProbePaths",
    "find_library",
    "find_module",
    "landlock_abi",
    "library_dirs",
    "read_ioctl",
    "utc_now",
]

IoctlFn = Callable[[Path, int, int], bytes]
"""``ioctl(device_node, request, size) -> the size-byte answer``; raises ``OSError`` like the kernel."""

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (generic syscall table)
_LANDLOCK_CREATE_RULESET_VERSION = 1


def read_ioctl(node: Path, request: int, size: int) -> bytes:
    """Open ``node`` without blocking, issue a read-only ioctl with a ``size``-byte buffer, close it."""
    fd = os.open(node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        buf = bytearray(size)
        fcntl.ioctl(fd, request, buf, True)
        return bytes(buf)
    finally:
        os.close(fd)


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel; ``OSError`` when Landlock is absent or disabled."""
    libc = ctypes.CDLL(None, use_errno=True)
    abi = int(
        libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION)
    )
    if abi < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return abi


_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")


def library_dirs(etc: Path = Path("/etc")) -> list[Path]:
    """The dynamic linker's search directories: the standard ones and those in ``ld.so.conf.d``."""
    dirs = [Path(d) for d in _LIBRARY_DIRS]
    machine = os.uname().machine
    dirs += [Path(f"/usr/lib/{machine}-linux-gnu"), Path(f"/lib/{machine}-linux-gnu")]
    try:
        confs = sorted((etc / "ld.so.conf.d").glob("*.conf"))
    except OSError:
        confs = []
    for conf in confs:
        try:
            lines = conf.read_text().splitlines()
        except OSError:
            continue
        dirs += [Path(s) for line in lines if (s := line.split("#", 1)[0].strip()).startswith("/")]
    return list(dict.fromkeys(dirs))


def find_library(name: str) -> str | None:
    """``lib<name>.so*`` in the linker's directories, as a file name; without running ldconfig or gcc."""
    prefix = f"lib{name}.so"
    for directory in library_dirs():
        try:
            hits = sorted(n for n in os.listdir(directory) if n.startswith(prefix))  # noqa: PTH208 (names only)
        except OSError:
            continue
        if hits:
            return hits[0]
    return None


def find_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProbePaths:
    """The filesystem roots and kernel calls of one probe run (the real machine by default)."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    dev: Path = Path("/dev")
    etc: Path = Path("/etc")
    run: Path = Path("/run")
    device_tree: Path = Path("/proc/device-tree")
    ioctl: IoctlFn = field(default=read_ioctl)
    """Read-only ioctls on device nodes (V4L2 ``VIDIOC_QUERYCAP``)."""
    which: Callable[[str], str | None] = field(default=shutil.which)
    """Find an executable on PATH."""
    find_library: Callable[[str], str | None] = field(default=find_library)
    """Find a shared library (``edgetpu`` → ``libedgetpu.so.1``)."""
    find_module: Callable[[str], bool] = field(default=find_module)
    """Whether a Python module is installed (checked without importing it)."""
    import_module: Callable[[str], ModuleType] = field(default=importlib.import_module)
    """Import a module that :attr:`find_module` reported present (``onnxruntime``, ``pynvml``)."""
    landlock_abi: Callable[[], int] = field(default=landlock_abi)
    """The kernel's Landlock ABI version (the ``landlock_create_ruleset`` version query)."""
    now: Callable[[], datetime] = field(default=utc_now)

    @classmethod
    def under(cls, root: Path, **overrides: object) -> ProbePaths:
        """Every root below ``root`` (``root/proc``, ``root/sys``...): a copied or fixture tree."""
        base = cls(
            proc=root / "proc",
            sys=root / "sys",
            dev=root / "dev",
            etc=root / "etc",
            run=root / "run",
            device_tree=root / "proc" / "device-tree",
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    def _roots(self) -> tuple[tuple[Path, Path], ...]:
        return (
            (Path("/proc"), self.proc),
            (Path("/sys"), self.sys),
            (Path("/dev"), self.dev),
            (Path("/etc"), self.etc),
            (Path("/run"), self.run),
        )

    def host(self, path: Path) -> Path:
        """Map an absolute path as the probed system names it (``/sys/fs/cgroup``) into these roots."""
        for base, root in self._roots():
            if path == base or base in path.parents:
                return root / path.relative_to(base)
        return path

    def system(self, path: Path) -> Path:
        """The inverse of :meth:`host`: a path under these roots as the probed system names it."""
        for base, root in self._roots():
            if path == root or root in path.parents:
                return base / path.relative_to(root)
        return path

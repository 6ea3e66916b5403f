"""The seam between the sandbox and the kernel's cgroups: one small :class:`CgroupDriver` protocol.

A driver owns one parent cgroup (``edgefleet`` by default, under each hierarchy's root) and creates
one child per sandbox. The child process attaches itself by writing ``0`` into every file of
:attr:`Group.procs_files` before it execs, so the workload never runs outside its limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgefleet.sandbox.limits import Limits

__all__ = ["CgroupDriver", "Group", "Unenforced", "Usage", "read_int", "read_keyed", "read_pressure"]


@dataclass(frozen=True)
class Unenforced:
    """A requested limit this driver cannot enforce, and why."""

    limit: str
    reason: str


@dataclass(frozen=True)
class Group:
    """One sandbox's cgroup: its name under the driver's parent and its directories."""

    name: str
    dirs: tuple[Path, ...]
    procs_files: tuple[Path, ...]
    applied: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass
class Usage:
    """What the kernel accounted for a group; ``None`` where this layout has no such counter."""

    cpu_time_s: float | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_s: float | None = None
    memory_current: int | None = None
    memory_peak: int | None = None
    memory_max_hits: int | None = None
    memory_high_hits: int | None = None
    oom_kills: int | None = None
    pids_current: int | None = None
    pids_max_hits: int | None = None
    pressure: dict[str, float] = field(default_factory=dict)
    pressure_scope: str | None = None

    def limits_hit(self) -> list[str]:
        """The limits the workload ran into: ``memory``, ``memory-high``, ``oom``, ``pids``, ``cpus``."""
        hits = []
        if self.memory_max_hits or self.oom_kills:
            hits.append("memory")
        if self.memory_high_hits:
            hits.append("memory-high")
        if self.oom_kills:
            hits.append("oom")
        if self.pids_max_hits:
            hits.append("pids")
        if self.cpu_throttled_periods:
            hits.append("cpus")
        return hits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CgroupDriver(Protocol):
    """Create, attach to, measure, kill and remove the cgroups of sandboxes."""

    version: int

    def available(self) -> frozenset[str]:
        """The controllers this driver can use (``cpu``, ``memory``, ``pids``...)."""
        ...

    def unenforceable(self, limits: Limits) -> list[Unenforced]:
        """The limits in ``limits`` this layout cannot enforce, each with the reason."""
        ...

    def create(self, name: str, limits: Limits) -> Group:
        """Make the group ``name`` with ``limits`` written; nothing is attached yet."""
        ...

    def open(self, name: str) -> Group | None:
        """The existing group ``name`` (after a restart), or ``None``."""
        ...

    def names(self) -> list[str]:
        """The groups that exist under the driver's parent."""
        ...

    def procs(self, group: Group) -> list[int]:
        """The PIDs (in this PID namespace) inside ``group``."""
        ...

    def usage(self, group: Group) -> Usage:
        """CPU time, throttling, memory, OOM kills, pids and pressure of ``group``."""
        ...

    def kill(self, group: Group, timeout: float = 5.0) -> None:
        """SIGKILL every process in ``group`` and wait until it is empty."""
        ...

    def remove(self, group: Group) -> None:
        """Remove the (empty) group's directories; the parent stays."""
        ...

    def prune(self) -> None:
        """Remove the driver's parent cgroup when no group is left under it."""
        ...


def read_int(path: Path) -> int | None:
    """An integer file (``max`` counts as ``None``); ``None`` when absent or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """A ``key value`` per line file such as ``cpu.stat`` or ``memory.events``; empty when absent."""
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def read_pressure(directory: Path, suffix: str = ".pressure") -> dict[str, float]:
    """``some avg10`` of the ``cpu``, ``memory`` and ``io`` pressure files under ``directory``.

    A cgroup v2 group names them ``cpu.pressure``...; ``/proc/pressure`` names them ``cpu``...
    """
    out: dict[str, float] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            text = (directory / f"{resource}{suffix}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("some "):
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    if key == "avg10":
                        out[resource] = float(value)
    return out


def wait_until(done: Callable[[], bool], timeout: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll ``done`` every 10 ms until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(0.01)

"""How much CPU this process really has: affinity, cpuset and the cgroup CPU quota.

``os.cpu_count()`` reports the machine's CPUs, not the process's budget: a workload in a cgroup
with a 1.5-CPU quota on an 8-core board that sizes its thread pools from ``cpu_count()`` runs 8
threads into a 1.5-CPU budget and spends its time throttled. Thread counts come from here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgefleet.probe.cgroupfs import cgroup_mounts, resolve

__all__ = ["CpuBudget", "parse_cpulist", "read_cpu_budget"]


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs a process may use and the share of them it may consume."""

    cpus: tuple[int, ...]
    """CPUs the process may run on (scheduler affinity, which the cpuset bounds)."""
    quota: float | None
    """CPUs' worth of time per period allowed by the cgroup CPU quota, ``None`` when unlimited."""
    source: str
    """What bounded the budget: ``affinity`` or ``quota:<cgroup dir>``."""

    @property
    def effective(self) -> float:
        """CPUs' worth the process can really use: the smaller of its CPUs and its quota."""
        n = float(len(self.cpus)) or 1.0
        return min(n, self.quota) if self.quota is not None else n

    @property
    def threads(self) -> int:
        """Worker threads that fit the budget without oversubscription (at least one)."""
        return max(1, math.floor(self.effective + 1e-9))


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse a kernel CPU list (``0-3,6,8-9``) into sorted CPU numbers; empty text gives ``()``."""
    cpus: set[int] = set()
    for raw in text.strip().split(","):
        part = raw.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(lo))
    return tuple(sorted(cpus))


def _v2_quota(directory: Path, stop: Path) -> float | None:
    """The tightest ``cpu.max`` from ``directory`` up to the mount point ``stop``."""
    best: float | None = None
    current = directory
    while True:
        try:
            quota, _, period = (current / "cpu.max").read_text().strip().partition(" ")
            if quota != "max" and period:
                value = int(quota) / int(period)
                best = value if best is None else min(best, value)
        except (OSError, ValueError):
            pass
        if current == stop or stop not in current.parents:
            return best
        current = current.parent


def _v1_quota(directory: Path, stop: Path) -> float | None:
    """The tightest ``cpu.cfs_quota_us / cpu.cfs_period_us`` from ``directory`` up to ``stop``."""
    best: float | None = None
    current = directory
    while True:
        try:
            quota = int((current / "cpu.cfs_quota_us").read_text())
            period = int((current / "cpu.cfs_period_us").read_text())
            if quota > 0 and period > 0:
                value = quota / period
                best = value if best is None else min(best, value)
        except (OSError, ValueError):
            pass
        if current == stop or stop not in current.parents:
            return best
        current = current.parent


def read_cpu_budget(
    proc: Path = Path("/proc"),
    *,
    pid: str = "self",
    affinity: Callable[[], set[int]] | None = None,
) -> CpuBudget:
    """Read the CPU budget of ``pid`` (this process by default) from the kernel.

    ``affinity`` returns the allowed CPUs (``os.sched_getaffinity(0)`` by default); tests pass
    their own along with a fixture ``proc`` tree whose mountinfo points at a fixture cgroupfs.
    """
    cpus = tuple(sorted(os.sched_getaffinity(0) if affinity is None else affinity()))
    mounts = cgroup_mounts(proc, pid)
    quota: float | None = None
    source = "affinity"
    v2_dir = resolve(None, proc, pid, mounts=mounts)
    if v2_dir is not None:
        stop = next(m.mountpoint for m in mounts if m.version == 2)
        quota = _v2_quota(v2_dir, stop)
        if quota is not None:
            source = f"quota:{v2_dir}"
    v1_dir = resolve("cpu", proc, pid, mounts=mounts)
    if v1_dir is not None:
        stop = next(m.mountpoint for m in mounts if m.version == 1 and "cpu" in m.controllers)
        v1 = _v1_quota(v1_dir, stop)
        if v1 is not None and (quota is None or v1 < quota):
            quota, source = v1, f"quota:{v1_dir}"
    if quota is not None and quota >= len(cpus):
        source = "affinity"
    return CpuBudget(cpus=cpus, quota=quota, source=source)

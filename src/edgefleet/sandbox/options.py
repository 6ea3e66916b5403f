"""Limits and isolation from their command-line spelling, checked against this machine.

Used by ``edgefleet run`` and by the agent (which reads the same strings from desired state).
Everything is validated here, before a cgroup is created or a process started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgefleet.sandbox.limits import (
    Limits,
    expand_cpulist,
    parse_cpus,
    parse_cpuset,
    parse_device,
    parse_io_max,
    parse_size,
)
from edgefleet.sandbox.spec import Isolation, Network, resolve_user

__all__ = ["RunOptions"]


def _online(sys_cpu: Path, name: str, fallback: str) -> str:
    try:
        return (sys_cpu / name).read_text().strip() or fallback
    except OSError:
        return fallback


@dataclass(frozen=True)
class RunOptions:
    """The raw option strings of one run; :meth:`limits` and :meth:`isolation` check and convert."""

    cpus: str | None = None
    cpuset: str | None = None
    cpuset_mems: str | None = None
    cpu_weight: int | None = None
    memory: str | None = None
    memory_high: str | None = None
    pids: int | None = None
    io_weight: int | None = None
    io_max: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    network: Network = "host"
    user: str = "nobody"
    ro: tuple[Path, ...] = ()
    rw: tuple[Path, ...] = ()
    hostname: str = "edgefleet"
    workdir: Path = Path("/")
    seccomp: bool = True

    def limits(
        self,
        *,
        sys_cpu: Path = Path("/sys/devices/system/cpu"),
        sys_node: Path = Path("/sys/devices/system/node"),
        dev_root: Path = Path("/"),
    ) -> Limits:
        """The :class:`Limits`, each checked against the online CPUs, memory nodes and devices."""
        online = _online(sys_cpu, "online", f"0-{(os.cpu_count() or 1) - 1}")
        n_online = len(expand_cpulist(online))
        return Limits(
            cpus=parse_cpus(self.cpus, n_online) if self.cpus is not None else None,
            cpuset_cpus=parse_cpuset(self.cpuset, online) if self.cpuset is not None else None,
            cpuset_mems=(
                parse_cpuset(self.cpuset_mems, _online(sys_node, "online", "0"), "cpuset-mems")
                if self.cpuset_mems is not None
                else None
            ),
            cpu_weight=self.cpu_weight,
            memory_max=parse_size(self.memory, "memory") if self.memory is not None else None,
            memory_high=parse_size(self.memory_high, "memory-high") if self.memory_high is not None else None,
            pids_max=self.pids,
            io_weight=self.io_weight,
            io_max=tuple(parse_io_max(x, dev_root) for x in self.io_max),
            devices=tuple(parse_device(d, dev_root) for d in self.devices),
        )

    def isolation(self, *, passwd: Path = Path("/etc/passwd")) -> Isolation:
        """The :class:`Isolation` (the user must exist, directories must exist)."""
        return Isolation(
            hostname=self.hostname,
            network=self.network,
            user=resolve_user(self.user, passwd),
            ro=tuple(p.absolute() for p in self.ro),
            rw=tuple(p.absolute() for p in self.rw),
            workdir=self.workdir,
            seccomp=self.seccomp,
        )

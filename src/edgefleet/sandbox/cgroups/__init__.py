"""cgroup drivers: v1 and v2 behind :class:`CgroupDriver`, picked from the probe's mount table."""

from __future__ import annotations

from pathlib import Path

from edgefleet.probe.cgroupfs import CgroupMount, cgroup_mode, cgroup_mounts
from edgefleet.sandbox.cgroups.base import CgroupDriver, Group, Unenforced, Usage
from edgefleet.sandbox.cgroups.v1 import V1Driver
from edgefleet.sandbox.cgroups.v2 import V2Driver
from edgefleet.sandbox.errors import SandboxFailedError

__all__ = ["CgroupDriver", "Group", "Unenforced", "Usage", "V1Driver", "V2Driver", "detect_driver"]


def detect_driver(
    parent: str = "edgefleet", *, proc: Path = Path("/proc"), mounts: list[CgroupMount] | None = None
) -> CgroupDriver:
    """The driver for this machine: v1 when v1 controllers are mounted (v1 or hybrid), else v2.

    On a hybrid layout the controllers live in the v1 hierarchies (the cgroup2 mount has none of
    them), so v1 is the one that can enforce limits.
    """
    mounts = cgroup_mounts(proc) if mounts is None else mounts
    mode = cgroup_mode(mounts)
    if mode in {"v1", "hybrid"}:
        return V1Driver(parent, mounts=mounts, proc=proc)
    if mode == "v2":
        return V2Driver(parent, mounts=mounts, proc=proc)
    raise SandboxFailedError(
        "no cgroup hierarchy is mounted (see /proc/self/mountinfo); mount cgroup2 on /sys/fs/cgroup",
        code="sandbox.no_cgroups",
    )

"""cgroups: the mode (v2, hybrid, v1) and which controllers this process can use and write.

Built on :mod:`edgefleet.probe.cgroupfs`. A controller is *usable* when the kernel has it attached
to a mounted hierarchy that this process's cgroup is in (for v2: listed in the cgroup's
``cgroup.controllers``), and *writable* when this process may create child cgroups there:
``access(2)`` with ``W_OK`` on its cgroup directory, which honours read-only mounts. Nothing is
created or changed.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pydantic import Field

from edgefleet.probe.cgroupfs import CgroupMode, CgroupMount, cgroup_mode, cgroup_mounts, resolve
from edgefleet.probe.model import Record, Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, exists, read_text

__all__ = ["CgroupController", "CgroupHierarchy", "CgroupsInfo", "collect_cgroups"]


class CgroupHierarchy(Record):
    """One mounted cgroup hierarchy."""

    version: int = Field(description="1 or 2.")
    controllers: list[str] = Field(description="v1: the controllers bound to it (and name=...); v2: empty.")
    mountpoint: str = Field(description="Where it is mounted, as the probed system names it.")


class CgroupController(Record):
    """One controller as this process sees it."""

    name: str = Field(description="cpu, cpuset, memory, pids, io/blkio, hugetlb...")
    version: int = Field(description="The hierarchy version it is bound to: 1 or 2.")
    cgroup: str | None = Field(description="This process's cgroup directory in that hierarchy.")
    enabled_for_children: bool = Field(
        description="v2: listed in the cgroup's cgroup.subtree_control; v1: always true."
    )
    writable: bool = Field(description="Whether this process may create child cgroups there (access W_OK).")


class CgroupsInfo(Section):
    """cgroup mode, hierarchies and controllers."""

    mode: CgroupMode | None = Field(
        description="v2 (unified only), hybrid (v1 controllers + cgroup2), v1, none."
    )
    hierarchies: list[CgroupHierarchy] | None = Field(description="Mounted cgroup hierarchies.")
    controllers: list[CgroupController] | None = Field(
        description="Usable controllers: attached to a mounted hierarchy this process is in."
    )
    kernel_controllers: list[str] | None = Field(
        description="Every controller the kernel has and has enabled (/proc/cgroups)."
    )


def _words(path: Path) -> list[str]:
    return read_text(path).split()


def _kernel_controllers(paths: ProbePaths) -> list[str]:
    out: list[str] = []
    for line in read_text(paths.proc / "cgroups").splitlines():
        parts = line.split()
        if line.startswith("#") or len(parts) < 4:
            continue
        if parts[3] == "1":
            out.append(parts[0])
    return out


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _controllers(paths: ProbePaths, mounts: list[CgroupMount]) -> list[CgroupController]:
    out: list[CgroupController] = []
    for mount in mounts:
        if mount.version != 1:
            continue
        for name in sorted(c for c in mount.controllers if not c.startswith("name=")):
            where = resolve(name, paths.proc, mounts=mounts)
            out.append(
                CgroupController(
                    name=name,
                    version=1,
                    cgroup=str(paths.system(where)) if where else None,
                    enabled_for_children=True,
                    writable=where is not None and _writable(where),
                )
            )
    v2 = resolve(None, paths.proc, mounts=mounts)
    if v2 is not None:
        available = _words(v2 / "cgroup.controllers")
        subtree = (
            set(_words(v2 / "cgroup.subtree_control")) if exists(v2 / "cgroup.subtree_control") else set()
        )
        writable = _writable(v2)
        out.extend(
            CgroupController(
                name=name,
                version=2,
                cgroup=str(paths.system(v2)),
                enabled_for_children=name in subtree,
                writable=writable,
            )
            for name in available
        )
    return out


def collect_cgroups(paths: ProbePaths) -> CgroupsInfo:
    """Read the cgroups section from ``/proc/self/mountinfo``, ``/proc/self/cgroup`` and cgroupfs."""
    unknown = Unknowns()
    # cgroupfs reads these itself and answers "nothing" when they are unreadable: check them first
    # so that an unreadable file is reported as unknown, not as "no cgroups"
    seen = unknown.attempt("mode", lambda: read_text(paths.proc / "self/mountinfo"))
    mounts = cgroup_mounts(paths.proc) if seen is not None else None
    controllers = None
    if mounts is None:
        unknown["hierarchies"] = unknown["controllers"] = unknown["mode"]
    elif unknown.attempt("controllers", lambda: read_text(paths.proc / "self/cgroup")) is not None:
        local = [replace(m, mountpoint=paths.host(m.mountpoint)) for m in mounts]
        controllers = unknown.attempt("controllers", lambda: _controllers(paths, local))
    return CgroupsInfo(
        mode=cgroup_mode(mounts) if mounts is not None else None,
        hierarchies=None
        if mounts is None
        else [
            CgroupHierarchy(
                version=m.version, controllers=sorted(m.controllers), mountpoint=str(m.mountpoint)
            )
            for m in mounts
        ],
        controllers=controllers,
        kernel_controllers=unknown.attempt("kernel_controllers", lambda: _kernel_controllers(paths)),
        unknown=dict(unknown),
    )

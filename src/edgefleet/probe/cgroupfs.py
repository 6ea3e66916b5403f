"""Where the cgroup hierarchies are mounted and which cgroup a process is in.

Reads ``/proc/<pid>/mountinfo`` and ``/proc/<pid>/cgroup``; handles cgroup v2 (unified), v1
(one hierarchy per controller, possibly co-mounted like ``cpu,cpuacct``) and hybrid (both).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["CgroupMembership", "CgroupMount", "cgroup_mode", "cgroup_mounts", "membership", "resolve"]

CgroupMode = Literal["v2", "hybrid", "v1", "none"]


@dataclass(frozen=True)
class CgroupMount:
    """One mounted cgroup hierarchy: ``version`` 1 or 2, its v1 controllers, where, and its root."""

    version: int
    controllers: frozenset[str]
    mountpoint: Path
    root: str  # the cgroup path the mount shows as "/" (not "/" inside a cgroup namespace)


@dataclass(frozen=True)
class CgroupMembership:
    """One line of ``/proc/<pid>/cgroup``: hierarchy id, controllers (empty for v2), cgroup path."""

    hierarchy: int
    controllers: frozenset[str]
    path: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040...)
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup_mounts(proc: Path = Path("/proc"), pid: str = "self") -> list[CgroupMount]:
    """The cgroup hierarchies visible to ``pid``; empty when mountinfo cannot be read."""
    try:
        text = (proc / pid / "mountinfo").read_text()
    except OSError:
        return []
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lparts, rparts = left.split(), right.split()
        if len(lparts) < 5 or len(rparts) < 3:
            continue
        fstype = rparts[0]
        if fstype not in {"cgroup", "cgroup2"}:
            continue
        root, mountpoint = _unescape(lparts[3]), Path(_unescape(lparts[4]))
        if fstype == "cgroup2":
            mounts.append(CgroupMount(2, frozenset(), mountpoint, root))
            continue
        opts = set(rparts[2].split(","))
        ctrls = {o for o in opts if o.startswith("name=")} | (opts & _V1_CONTROLLERS)
        mounts.append(CgroupMount(1, frozenset(ctrls), mountpoint, root))
    return mounts


_V1_CONTROLLERS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    }
)


def membership(proc: Path = Path("/proc"), pid: str = "self") -> list[CgroupMembership]:
    """The cgroups ``pid`` belongs to, one per hierarchy; empty when unreadable."""
    try:
        text = (proc / pid / "cgroup").read_text()
    except OSError:
        return []
    out: list[CgroupMembership] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        ctrls = frozenset(c for c in parts[1].split(",") if c)
        out.append(CgroupMembership(int(parts[0]), ctrls, parts[2]))
    return out


def cgroup_mode(mounts: list[CgroupMount]) -> CgroupMode:
    """``v2`` (unified only), ``hybrid`` (v1 controllers plus a cgroup2 mount), ``v1`` or ``none``."""
    has_v1 = any(
        m.version == 1 and (m.controllers - {c for c in m.controllers if c.startswith("name=")})
        for m in mounts
    )
    has_v2 = any(m.version == 2 for m in mounts)
    if has_v1 and has_v2:
        return "hybrid"
    if has_v1:
        return "v1"
    return "v2" if has_v2 else "none"


def resolve(
    controller: str | None,
    proc: Path = Path("/proc"),
    pid: str = "self",
    *,
    mounts: list[CgroupMount] | None = None,
) -> Path | None:
    """The directory of ``pid``'s cgroup for a v1 ``controller`` (``None``: the v2 unified cgroup).

    Returns ``None`` when that hierarchy is not mounted or the process is not in it. Inside a cgroup
    namespace or a container the membership path may be relative to the mount's root; both cases
    are handled.
    """
    mounts = cgroup_mounts(proc, pid) if mounts is None else mounts
    for member in membership(proc, pid):
        if controller is None and (member.hierarchy != 0 or member.controllers):
            continue
        if controller is not None and controller not in member.controllers:
            continue
        for mount in mounts:
            if controller is None and mount.version != 2:
                continue
            if controller is not None and (mount.version != 1 or controller not in mount.controllers):
                continue
            rel = member.path
            if mount.root != "/" and rel.startswith(mount.root):
                rel = rel[len(mount.root) :]
            candidate = mount.mountpoint / rel.lstrip("/")
            return candidate if candidate.is_dir() else mount.mountpoint
    return None

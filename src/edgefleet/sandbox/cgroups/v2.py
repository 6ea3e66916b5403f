"""cgroup v2 (unified): delegation through ``cgroup.subtree_control``, ``cgroup.kill``, PSI.

Controllers are enabled top-down, from the mount root to the driver's parent, with ``+ctrl`` in
each level's ``cgroup.subtree_control`` (only those the level offers in ``cgroup.controllers``), so
a delegated subtree works as well as the root. Sandbox groups are leaves; a memory limit also sets
``memory.oom.group=1`` (an OOM kills the whole workload) and ``memory.swap.max=0``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from pathlib import Path

from edgefleet.probe.cgroupfs import CgroupMount, cgroup_mounts
from edgefleet.sandbox.cgroups.base import (
    Group,
    Unenforced,
    Usage,
    read_int,
    read_keyed,
    read_pressure,
    wait_until,
)
from edgefleet.sandbox.errors import SandboxFailedError
from edgefleet.sandbox.limits import CFS_PERIOD_US, Limits

__all__ = ["V2Driver"]

_WANTED = ("cpu", "cpuset", "memory", "pids", "io")


class V2Driver:
    """Direct writes to the unified hierarchy."""

    version = 2

    def __init__(
        self,
        parent: str = "edgefleet",
        *,
        mounts: list[CgroupMount] | None = None,
        proc: Path = Path("/proc"),
        root: Path | None = None,
    ) -> None:
        if root is None:
            mounts = cgroup_mounts(proc) if mounts is None else mounts
            unified = [m for m in mounts if m.version == 2]
            if not unified:
                raise SandboxFailedError("cgroup v2: no cgroup2 mount found in mountinfo")
            root = unified[0].mountpoint
        self.root = root
        self.parent = parent.strip("/")

    @property
    def base(self) -> Path:
        return self.root / self.parent

    def available(self) -> frozenset[str]:
        """Controllers the parent can hand to its children (after delegation)."""
        level = self.root
        offered = _words(level / "cgroup.controllers")
        for part in Path(self.parent).parts:
            level = level / part
            if not level.is_dir():
                return frozenset(offered)
            offered &= _words(level / "cgroup.controllers")
        return frozenset(offered)

    def unenforceable(self, limits: Limits) -> list[Unenforced]:
        have = self.available()
        out: list[Unenforced] = []
        checks = (
            ("cpus", limits.cpus is not None, "cpu"),
            ("cpu-weight", limits.cpu_weight is not None, "cpu"),
            ("cpuset", limits.cpuset_cpus is not None, "cpuset"),
            ("cpuset-mems", limits.cpuset_mems is not None, "cpuset"),
            ("memory", limits.memory_max is not None, "memory"),
            ("memory-high", limits.memory_high is not None, "memory"),
            ("pids", limits.pids_max is not None, "pids"),
            ("io-weight", limits.io_weight is not None, "io"),
            ("io-max", bool(limits.io_max), "io"),
        )
        for limit, wanted, ctrl in checks:
            if wanted and ctrl not in have:
                out.append(Unenforced(limit, f"the v2 '{ctrl}' controller is not available in {self.root}"))
        return out

    def _delegate(self, wanted: set[str]) -> None:
        level = self.root
        for part in Path(self.parent).parts:
            enable = wanted & _words(level / "cgroup.controllers")
            missing = enable - _words(level / "cgroup.subtree_control")
            if missing:
                (level / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(missing)))
            level = level / part
            level.mkdir(exist_ok=True)
        enable = wanted & _words(level / "cgroup.controllers")
        missing = enable - _words(level / "cgroup.subtree_control")
        if missing:
            (level / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(missing)))

    def names(self) -> list[str]:
        with contextlib.suppress(OSError):
            return sorted(p.name for p in self.base.iterdir() if p.is_dir())
        return []

    def open(self, name: str) -> Group | None:
        directory = self.base / name
        return _group(name, directory) if directory.is_dir() else None

    def create(self, name: str, limits: Limits) -> Group:  # noqa: PLR0912 - one branch per limit
        skip = {u.limit for u in self.unenforceable(limits)}
        directory = self.base / name
        applied: dict[str, str] = {}

        def write(fname: str, value: str) -> None:
            (directory / fname).write_text(value)
            applied[fname] = value

        try:
            self._delegate(set(_WANTED))
            directory.mkdir(exist_ok=True)
            quota = limits.cfs_quota_us()
            if quota is not None and "cpus" not in skip:
                write("cpu.max", f"{quota} {CFS_PERIOD_US}")
            if limits.cpu_weight is not None and "cpu-weight" not in skip:
                write("cpu.weight", str(limits.cpu_weight))
            if limits.cpuset_cpus is not None and "cpuset" not in skip:
                write("cpuset.cpus", limits.cpuset_cpus)
            if limits.cpuset_mems is not None and "cpuset-mems" not in skip:
                write("cpuset.mems", limits.cpuset_mems)
            if limits.memory_high is not None and "memory-high" not in skip:
                write("memory.high", str(limits.memory_high))
            if limits.memory_max is not None and "memory" not in skip:
                write("memory.max", str(limits.memory_max))
                if (directory / "memory.swap.max").exists():
                    write("memory.swap.max", "0")
                if (directory / "memory.oom.group").exists():
                    write("memory.oom.group", "1")
            if limits.pids_max is not None and "pids" not in skip:
                write("pids.max", str(limits.pids_max))
            if limits.io_weight is not None and "io-weight" not in skip:
                write("io.weight", f"default {limits.io_weight}")
            if "io-max" not in skip:
                for io in limits.io_max:
                    parts = [
                        f"{k}={getattr(io, k)}"
                        for k in ("rbps", "wbps", "riops", "wiops")
                        if getattr(io, k) is not None
                    ]
                    write("io.max", f"{io.device} {' '.join(parts)}")
        except OSError as exc:
            if directory.is_dir():
                self.remove(_group(name, directory))
            hint = (
                "; a cgroup that holds processes cannot hand controllers to children, "
                "so pick a parent without processes (a delegated subtree's child)"
                if exc.errno == errno.EBUSY and str(exc.filename).endswith("subtree_control")
                else ""
            )
            raise SandboxFailedError(
                f"cgroup v2: could not set up {name!r}: {exc.strerror} ({exc.filename}){hint}",
                path=str(exc.filename),
            ) from exc
        if limits.devices:
            # v2 filters devices with an eBPF program; the sandbox's private /dev holds only these nodes
            applied["devices"] = "private /dev: " + ", ".join(d.path for d in limits.devices)
        return _group(name, directory, applied)

    def procs(self, group: Group) -> list[int]:
        with contextlib.suppress(OSError):
            return sorted(int(p) for p in group.procs_files[0].read_text().split())
        return []

    def usage(self, group: Group) -> Usage:
        directory = group.dirs[0]
        stat = read_keyed(directory / "cpu.stat")
        events = read_keyed(directory / "memory.events")
        usage = Usage(
            cpu_time_s=stat["usage_usec"] / 1e6 if "usage_usec" in stat else None,
            cpu_periods=stat.get("nr_periods"),
            cpu_throttled_periods=stat.get("nr_throttled"),
            cpu_throttled_s=stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else None,
            memory_current=read_int(directory / "memory.current"),
            memory_peak=read_int(directory / "memory.peak"),
            memory_max_hits=events.get("max"),
            memory_high_hits=events.get("high"),
            oom_kills=events.get("oom_kill"),
            pids_current=read_int(directory / "pids.current"),
            pids_max_hits=read_keyed(directory / "pids.events").get("max"),
            pressure=read_pressure(directory),
        )
        usage.pressure_scope = "cgroup" if usage.pressure else None
        return usage

    def kill(self, group: Group, timeout: float = 5.0) -> None:
        directory = group.dirs[0]

        def empty() -> bool:
            populated = read_keyed(directory / "cgroup.events").get("populated")
            return populated == 0 if populated is not None else not self.procs(group)

        if (directory / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (directory / "cgroup.kill").write_text("1")
        else:
            with contextlib.suppress(OSError):
                (directory / "cgroup.freeze").write_text("1")
            for pid in self.procs(group):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                (directory / "cgroup.freeze").write_text("0")
        if not wait_until(empty, timeout):
            raise SandboxFailedError(
                f"cgroup v2: {group.name!r} still has processes after kill", pids=self.procs(group)
            )

    def remove(self, group: Group) -> None:
        directory = group.dirs[0]
        for _ in range(200):
            try:
                directory.rmdir()
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise SandboxFailedError(
                        f"cgroup v2: cannot remove {directory}: {exc.strerror}", path=str(directory)
                    ) from exc
                wait_until(lambda: False, 0.01)
            else:
                return
        raise SandboxFailedError(f"cgroup v2: {directory} stays busy", path=str(directory))

    def prune(self) -> None:
        level = self.base
        while level != self.root:
            try:
                level.rmdir()
            except OSError:
                return
            level = level.parent


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _group(name: str, directory: Path, applied: dict[str, str] | None = None) -> Group:
    return Group(name, (directory,), (directory / "cgroup.procs",), dict(applied or {}))

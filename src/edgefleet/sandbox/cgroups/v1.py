"""cgroup v1: one hierarchy per controller (possibly co-mounted, like ``cpu,cpuacct``).

Limits are written into the group of each controller's hierarchy; ``cpuset.cpus``/``cpuset.mems``
are filled before anything attaches (an empty cpuset refuses tasks). Kill freezes the group first
(when the freezer is mounted) so a fork bomb cannot outrun the SIGKILL loop.
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
from edgefleet.sandbox.limits import (
    CFS_PERIOD_US,
    Limits,
    io_weight_to_blkio,
    weight_to_shares,
)

__all__ = ["DEFAULT_DEVICE_RULES", "V1Driver"]

_USED = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")

# The nodes every process needs (the OCI runtime default set) plus mknod of anything.
DEFAULT_DEVICE_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts
)


class V1Driver:
    """Direct cgroupfs writes to the v1 hierarchies found in ``mountinfo``."""

    version = 1

    def __init__(
        self,
        parent: str = "edgefleet",
        *,
        mounts: list[CgroupMount] | None = None,
        proc: Path = Path("/proc"),
        pressure_dir: Path | None = None,
    ) -> None:
        mounts = cgroup_mounts(proc) if mounts is None else mounts
        self._roots: dict[str, Path] = {}
        for mount in mounts:
            if mount.version != 1:
                continue
            for ctrl in mount.controllers & set(_USED):
                self._roots.setdefault(ctrl, mount.mountpoint)
        self.parent = parent.strip("/")
        self._pressure_dir = proc / "pressure" if pressure_dir is None else pressure_dir

    def available(self) -> frozenset[str]:
        return frozenset(self._roots)

    def _dir(self, ctrl: str, name: str) -> Path:
        return self._roots[ctrl] / self.parent / name

    def _dirs(self, name: str) -> dict[str, Path]:
        return {ctrl: self._dir(ctrl, name) for ctrl in self._roots}

    def unenforceable(self, limits: Limits) -> list[Unenforced]:  # noqa: PLR0912 - one branch per limit
        have = self.available()
        out: list[Unenforced] = []

        def need(limit: str, ctrl: str, extra: str = "") -> None:
            if ctrl not in have:
                out.append(Unenforced(limit, f"the v1 '{ctrl}' controller is not mounted{extra}"))

        if limits.cpus is not None:
            need("cpus", "cpu")
        if limits.cpu_weight is not None:
            need("cpu-weight", "cpu")
        if limits.cpuset_cpus is not None:
            need("cpuset", "cpuset")
        if limits.cpuset_mems is not None:
            need("cpuset-mems", "cpuset")
        if limits.memory_max is not None:
            need("memory", "memory")
        if limits.memory_high is not None:
            out.append(Unenforced("memory-high", "cgroup v1 has no memory.high (v2 only)"))
        if limits.pids_max is not None:
            need("pids", "pids")
        if limits.devices:
            need("device", "devices")
        blkio = self._roots.get("blkio")
        if limits.io_weight is not None:
            if blkio is None:
                need("io-weight", "blkio")
            elif not (blkio / "blkio.weight").exists() and not (blkio / "blkio.bfq.weight").exists():
                out.append(
                    Unenforced("io-weight", "blkio has no weight file (the I/O scheduler is not CFQ/BFQ)")
                )
        if limits.io_max:
            if blkio is None:
                need("io-max", "blkio")
            elif not (blkio / "blkio.throttle.read_bps_device").exists():
                out.append(Unenforced("io-max", "blkio has no throttle files"))
        return out

    def names(self) -> list[str]:
        seen: set[str] = set()
        for ctrl in self._roots:
            base = self._roots[ctrl] / self.parent
            with contextlib.suppress(OSError):
                seen.update(p.name for p in base.iterdir() if p.is_dir())
        return sorted(seen)

    def open(self, name: str) -> Group | None:
        dirs = self._dirs(name)
        present = {c: d for c, d in dirs.items() if d.is_dir()}
        if not present:
            return None
        return _group(name, present)

    def create(self, name: str, limits: Limits) -> Group:
        skip = {u.limit for u in self.unenforceable(limits)}
        dirs = self._dirs(name)
        applied: dict[str, str] = {}
        try:
            for ctrl, directory in dirs.items():
                directory.mkdir(parents=True, exist_ok=True)
                if ctrl == "cpuset":
                    self._fill_cpuset(directory)
            self._write_limits(dirs, limits, skip, applied)
        except OSError as exc:
            group = _group(name, {c: d for c, d in dirs.items() if d.is_dir()})
            self.remove(group)
            raise SandboxFailedError(
                f"cgroup v1: could not set up {name!r}: {exc.strerror} ({exc.filename})",
                path=str(exc.filename),
            ) from exc
        return _group(name, dirs, applied)

    def _fill_cpuset(self, directory: Path) -> None:
        # a new v1 cpuset is empty and refuses tasks: inherit from the nearest non-empty ancestor,
        # filling every level on the way down
        chain = [directory]
        while chain[-1] != self._roots["cpuset"] and chain[-1].parent != chain[-1]:
            chain.append(chain[-1].parent)
        for level in reversed(chain[:-1]):
            for key in ("cpuset.cpus", "cpuset.mems"):
                if not (level / key).read_text().strip():
                    (level / key).write_text((level.parent / key).read_text().strip() or "0")

    def _write_limits(  # noqa: PLR0912 - one branch per limit
        self, dirs: dict[str, Path], limits: Limits, skip: set[str], applied: dict[str, str]
    ) -> None:
        def write(ctrl: str, fname: str, value: str) -> None:
            path = dirs[ctrl] / fname
            path.write_text(value)
            applied[f"{ctrl}/{fname}"] = value

        if "cpu" in dirs:
            quota = limits.cfs_quota_us()
            if quota is not None and "cpus" not in skip:
                write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US))
                write("cpu", "cpu.cfs_quota_us", str(quota))
            if limits.cpu_weight is not None and "cpu-weight" not in skip:
                write("cpu", "cpu.shares", str(weight_to_shares(limits.cpu_weight)))
        if "cpuset" in dirs:
            if limits.cpuset_cpus is not None:
                write("cpuset", "cpuset.cpus", limits.cpuset_cpus)
            if limits.cpuset_mems is not None:
                write("cpuset", "cpuset.mems", limits.cpuset_mems)
        if "memory" in dirs and limits.memory_max is not None:
            write("memory", "memory.limit_in_bytes", str(limits.memory_max))
            if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
                # memory+swap = memory: the limit ends in an OOM kill, not in swapping
                write("memory", "memory.memsw.limit_in_bytes", str(limits.memory_max))
        if "pids" in dirs and limits.pids_max is not None:
            write("pids", "pids.max", str(limits.pids_max))
        if "blkio" in dirs:
            if limits.io_weight is not None and "io-weight" not in skip:
                fname = "blkio.weight" if (dirs["blkio"] / "blkio.weight").exists() else "blkio.bfq.weight"
                write("blkio", fname, str(io_weight_to_blkio(limits.io_weight)))
            if "io-max" not in skip:
                for io in limits.io_max:
                    for key, fname in (
                        ("rbps", "read_bps_device"),
                        ("wbps", "write_bps_device"),
                        ("riops", "read_iops_device"),
                        ("wiops", "write_iops_device"),
                    ):
                        value = getattr(io, key)
                        if value is not None:
                            write("blkio", f"blkio.throttle.{fname}", f"{io.device} {value}")
        if "devices" in dirs:
            write("devices", "devices.deny", "a")
            for rule in (*DEFAULT_DEVICE_RULES, *(d.rule() for d in limits.devices)):
                (dirs["devices"] / "devices.allow").write_text(rule)
            applied["devices/devices.allow"] = "; ".join(
                (*DEFAULT_DEVICE_RULES, *(d.rule() for d in limits.devices))
            )

    def procs(self, group: Group) -> list[int]:
        pids: set[int] = set()
        for procs in group.procs_files:
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def _ctrl_dir(self, group: Group, ctrl: str) -> Path | None:
        root = self._roots.get(ctrl)
        if root is None:
            return None
        candidate = root / self.parent / group.name
        return candidate if candidate in group.dirs else None

    def usage(self, group: Group) -> Usage:
        usage = Usage()
        if (cpuacct := self._ctrl_dir(group, "cpuacct")) is not None:
            ns = read_int(cpuacct / "cpuacct.usage")
            usage.cpu_time_s = None if ns is None else ns / 1e9
        if (cpu := self._ctrl_dir(group, "cpu")) is not None:
            stat = read_keyed(cpu / "cpu.stat")
            usage.cpu_periods = stat.get("nr_periods")
            usage.cpu_throttled_periods = stat.get("nr_throttled")
            if "throttled_time" in stat:
                usage.cpu_throttled_s = stat["throttled_time"] / 1e9
        if (mem := self._ctrl_dir(group, "memory")) is not None:
            usage.memory_current = read_int(mem / "memory.usage_in_bytes")
            usage.memory_peak = read_int(mem / "memory.max_usage_in_bytes")
            usage.memory_max_hits = read_int(mem / "memory.failcnt")
            usage.oom_kills = read_keyed(mem / "memory.oom_control").get("oom_kill")
        if (pids := self._ctrl_dir(group, "pids")) is not None:
            usage.pids_current = read_int(pids / "pids.current")
            usage.pids_max_hits = read_keyed(pids / "pids.events").get("max")
        # v1 groups have no pressure files of their own: report the system's, labelled as such
        usage.pressure = read_pressure(self._pressure_dir, suffix="")
        usage.pressure_scope = "system" if usage.pressure else None
        return usage

    def kill(self, group: Group, timeout: float = 5.0) -> None:
        freezer = self._ctrl_dir(group, "freezer")
        if freezer is not None:
            with contextlib.suppress(OSError):
                (freezer / "freezer.state").write_text("FROZEN")
        try:

            def sweep() -> bool:
                pids = self.procs(group)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return not pids

            sweep()
        finally:
            if freezer is not None:
                with contextlib.suppress(OSError):
                    (freezer / "freezer.state").write_text("THAWED")
        if not wait_until(sweep, timeout):
            raise SandboxFailedError(
                f"cgroup v1: {group.name!r} still has processes after SIGKILL", pids=self.procs(group)
            )

    def remove(self, group: Group) -> None:
        for directory in group.dirs:
            for _ in range(200):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise SandboxFailedError(
                            f"cgroup v1: cannot remove {directory}: {exc.strerror}", path=str(directory)
                        ) from exc
                    wait_until(lambda: False, 0.01)
            else:
                raise SandboxFailedError(f"cgroup v1: {directory} stays busy", path=str(directory))

    def prune(self) -> None:
        for root in dict.fromkeys(self._roots.values()):
            with contextlib.suppress(OSError):
                (root / self.parent).rmdir()


def _group(name: str, dirs: dict[str, Path], applied: dict[str, str] | None = None) -> Group:
    unique = tuple(dict.fromkeys(dirs.values()))
    return Group(name, unique, tuple(d / "cgroup.procs" for d in unique), dict(applied or {}))

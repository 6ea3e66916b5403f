"""A fake root filesystem (``proc``, ``sys``, ``dev``, ``etc``, ``run``) for probing in tests.

:class:`FakeTree` writes files and relative symlinks the way the kernel lays them out and hands
back a :class:`~edgefleet.probe.paths.ProbePaths` whose kernel calls answer from recorded data.
:func:`write_linux_base` writes what every Linux machine has; :mod:`edgefleet.testing.fake_devices`
builds whole boards on top of it.
"""

from __future__ import annotations

import errno
import os
import struct
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from edgefleet.probe.paths import ProbePaths

__all__ = ["FIXED_TIME", "FakeTree", "fake_onnxruntime", "v4l2_capability", "write_linux_base"]

FIXED_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def v4l2_capability(
    *, driver: str, card: str, bus_info: str, version: int, capabilities: int, device_caps: int
) -> bytes:
    """The 104 bytes of a ``struct v4l2_capability`` as ``VIDIOC_QUERYCAP`` fills it."""
    return struct.pack(
        "<16s32s32sIII12x",
        driver.encode(),
        card.encode(),
        bus_info.encode(),
        version,
        capabilities,
        device_caps,
    )


@dataclass
class FakeTree:
    """A directory that imitates a machine's ``/proc``, ``/sys``, ``/dev``, ``/etc`` and ``/run``."""

    root: Path
    ioctl_answers: dict[str, bytes] = field(default_factory=dict)
    """Device node name (``video0``) → the bytes its VIDIOC_QUERYCAP answers."""
    tools: dict[str, str] = field(default_factory=dict)
    """Executables on the fake PATH: name → full path."""
    libraries: dict[str, str] = field(default_factory=dict)
    """Shared libraries: name (``edgetpu``) → file (``libedgetpu.so.1``)."""
    modules: dict[str, types.ModuleType | None] = field(default_factory=dict)
    """Installed Python modules: name → the module import returns (None: installed but not importable)."""
    landlock: int | None = None
    """The Landlock ABI the fake kernel answers; None: the syscall does not exist (ENOSYS)."""

    def path(self, rel: str) -> Path:
        """The fixture path of ``rel`` (``sys/class/accel``)."""
        return self.root / rel.lstrip("/")

    def write(self, rel: str, content: str | bytes = "") -> Path:
        """Create a file (and its parents) with ``content``."""
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return target

    def files(self, base: str, entries: Mapping[str, str]) -> None:
        """Write several files below ``base``: name → content."""
        for name, content in entries.items():
            self.write(f"{base}/{name}", content)

    def mkdir(self, rel: str) -> Path:
        """Create a directory (and its parents)."""
        target = self.path(rel)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def link(self, rel: str, target: str) -> Path:
        """A symlink at ``rel`` pointing at the tree path ``target``, written relative as sysfs does."""
        where = self.path(rel)
        where.parent.mkdir(parents=True, exist_ok=True)
        where.symlink_to(os.path.relpath(self.path(target), where.parent))
        return where

    def _ioctl(self, node: Path, request: int, size: int) -> bytes:
        del request
        if not node.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(node))
        answer = self.ioctl_answers.get(node.name)
        if answer is None:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY), str(node))
        return answer[:size]

    def _import(self, name: str) -> types.ModuleType:
        module = self.modules.get(name)
        if module is None:
            raise ImportError(f"No module named {name!r}")
        return module

    def _landlock(self) -> int:
        if self.landlock is None:
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        return self.landlock

    def probe_paths(self) -> ProbePaths:
        """ProbePaths over this tree, whose kernel calls and tool look-ups answer from this tree."""
        return ProbePaths.under(
            self.root,
            ioctl=self._ioctl,
            which=self.tools.get,
            find_library=self.libraries.get,
            find_module=lambda name: name in self.modules,
            import_module=self._import,
            landlock_abi=self._landlock,
            now=lambda: FIXED_TIME,
        )


def fake_onnxruntime(version: str, providers: Sequence[str]) -> types.ModuleType:
    """A module answering ONNX Runtime's discovery API (``__version__``, ``get_available_providers``)."""
    module = types.ModuleType("onnxruntime")
    module.__version__ = version  # type: ignore[attr-defined]
    module.get_available_providers = lambda: list(providers)  # type: ignore[attr-defined]
    return module


_GOVERNORS = "conservative ondemand userspace powersave performance schedutil\n"
_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


def write_linux_base(
    tree: FakeTree,
    *,
    hostname: str,
    release: str,
    version: str,
    cpuinfo: str,
    cpus: int,
    cores_per_package: int | None = None,
    mem_total_kib: int,
    os_release: str,
    pid1: str = "systemd",
    cmdline: str = "console=ttyS0 root=/dev/mmcblk0p2 rw rootwait",
    arch: str | None = None,
    governor: str | None = "schedutil",
    cgroup: Literal["v2", "v1"] = "v2",
    cgroup_path: str = "/system.slice/edgefleet-agent.service",
    namespaces: Sequence[str] = _NAMESPACES,
    seccomp_actions: str | None = "kill_process kill_thread trap errno user_notif trace log allow",
) -> None:
    """What every Linux machine has: kernel identity, CPUs, memory, cgroups, namespaces, PID 1."""
    t = tree
    t.files(
        "proc/sys/kernel",
        {"hostname": f"{hostname}\n", "osrelease": f"{release}\n", "version": f"{version}\n"},
    )
    if arch is not None:
        t.write("proc/sys/kernel/arch", f"{arch}\n")
    t.write("proc/cmdline", f"{cmdline}\n")
    t.mkdir("dev")
    t.write("proc/cpuinfo", cpuinfo)
    t.write("proc/1/comm", f"{pid1}\n")
    if pid1 == "systemd":
        t.mkdir("run/systemd/system")
    t.write("etc/os-release", os_release)
    avail = mem_total_kib * 3 // 4
    t.write(
        "proc/meminfo",
        f"MemTotal:       {mem_total_kib} kB\nMemFree:        {avail - 1024} kB\n"
        f"MemAvailable:   {avail} kB\nSwapTotal:       0 kB\nSwapFree:        0 kB\n"
        "HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n",
    )
    t.write("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n")
    cpu = "sys/devices/system/cpu"
    span = f"0-{cpus - 1}" if cpus > 1 else "0"
    t.files(cpu, {"online": f"{span}\n", "possible": f"{span}\n", "isolated": "\n"})
    per_package = cores_per_package or cpus
    for n in range(cpus):
        t.files(f"{cpu}/cpu{n}/topology", {"core_id": f"{n % per_package}\n", "physical_package_id": "0\n"})
        if governor is not None:
            t.files(
                f"{cpu}/cpu{n}/cpufreq",
                {
                    "scaling_governor": f"{governor}\n",
                    "scaling_driver": "cpufreq-dt\n",
                    "scaling_available_governors": _GOVERNORS,
                },
            )
    t.mkdir(f"{cpu}/cpufreq")
    status = "Name:\tpython3\nNoNewPrivs:\t0\nSeccomp:\t0\n"
    if seccomp_actions is not None:
        status += "Seccomp_filters:\t0\n"
        t.write("proc/sys/kernel/seccomp/actions_avail", f"{seccomp_actions}\n")
    t.write("proc/self/status", status)
    for ns in namespaces:
        t.write(f"proc/self/ns/{ns}", f"{ns}:[4026531835]")
        t.write(f"proc/sys/user/max_{ns}_namespaces", "63432\n")
    _write_cgroups(t, cgroup, cgroup_path)


_V1 = (
    ("cpu,cpuacct", 2),
    ("cpuset", 3),
    ("memory", 4),
    ("devices", 5),
    ("freezer", 6),
    ("blkio", 7),
    ("pids", 8),
)


def _write_cgroups(t: FakeTree, mode: Literal["v2", "v1"], path: str) -> None:
    mountinfo = [
        "22 1 179:2 / / rw,relatime shared:1 - ext4 /dev/root rw",
        "23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw",
    ]
    if mode == "v2":
        mountinfo.append(
            "27 23 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw"
        )
        t.write("proc/self/cgroup", f"0::{path}\n")
        controllers = "cpuset cpu io memory hugetlb pids rdma misc\n"
        t.files("sys/fs/cgroup", {"cgroup.controllers": controllers, "cgroup.subtree_control": controllers})
        t.files(f"sys/fs/cgroup{path}", {"cgroup.controllers": controllers, "cgroup.subtree_control": "\n"})
        rows = [f"{c}\t0\t1\t1" for c in controllers.split()]
    else:
        lines, rows = [], []
        for i, (group, hierarchy) in enumerate(_V1):
            mountinfo.append(
                f"{30 + i} 27 0:{30 + i} / /sys/fs/cgroup/{group} rw,nosuid,nodev,noexec,relatime "
                f"- cgroup cgroup rw,{group}"
            )
            lines.append(f"{hierarchy}:{group}:{path}")
            t.mkdir(f"sys/fs/cgroup/{group}{path}")
            rows += [f"{c}\t{hierarchy}\t1\t1" for c in group.split(",")]
        mountinfo.insert(2, "27 23 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755")
        t.write("proc/self/cgroup", "\n".join(reversed(lines)) + "\n")
    t.write("proc/self/mountinfo", "\n".join(mountinfo) + "\n")
    t.write("proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\n" + "\n".join(rows) + "\n")

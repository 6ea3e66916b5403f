"""Fixture cgroupfs trees (v1 per-controller hierarchies, v2 unified) with a matching mountinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

V1_CONTROLLERS = ("cpu,cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")

V1_FILES = {
    "cpu,cpuacct": {
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.shares": "1024",
        "cpu.stat": "nr_periods 40\nnr_throttled 30\nthrottled_time 2500000000\n",
        "cpuacct.usage": "1500000000",
    },
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.usage_in_bytes": "1048576",
        "memory.max_usage_in_bytes": "33554432",
        "memory.failcnt": "76",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    },
    "pids": {"pids.max": "max", "pids.current": "3", "pids.events": "max 2\n"},
    "blkio": {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": ""},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {"freezer.state": "THAWED"},
}


class CgroupTree:
    """A fake cgroupfs: ``root`` holds the hierarchies, ``proc`` a mountinfo pointing at them."""

    def __init__(self, base: Path) -> None:
        self.root = base / "cgroup"
        self.proc = base / "proc"
        (self.proc / "self").mkdir(parents=True)
        (self.proc / "pressure").mkdir()
        for res, avg in (("cpu", "1.50"), ("memory", "0.00"), ("io", "0.25")):
            (self.proc / "pressure" / res).write_text(
                f"some avg10={avg} avg60=0.00 avg300=0.00 total=1\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            )
        self.lines: list[str] = []

    def mount_v1(self, controllers: tuple[str, ...] = V1_CONTROLLERS) -> None:
        for i, ctrls in enumerate(controllers):
            point = self.root / ctrls
            point.mkdir(parents=True)
            (point / "cgroup.procs").write_text("")
            for fname, text in V1_FILES.get(ctrls, {}).items():
                (point / fname).write_text(text)
            if ctrls == "cpuset":
                (point / "cpuset.cpus").write_text("0-1\n")
                (point / "cpuset.mems").write_text("0\n")
            self.lines.append(f"{30 + i} 25 0:{26 + i} / {point} rw,nosuid - cgroup cgroup rw,{ctrls}")
        self._flush()

    def mount_v2(self, controllers: str = "cpuset cpu io memory hugetlb pids") -> Path:
        point = self.root / "unified"
        point.mkdir(parents=True)
        (point / "cgroup.controllers").write_text(controllers + "\n")
        (point / "cgroup.subtree_control").write_text("")
        (point / "cgroup.procs").write_text("")
        self.lines.append(f"40 25 0:40 / {point} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate")
        self._flush()
        return point

    def v1_group(self, parent: str, name: str) -> None:
        """What the kernel would show after ``mkdir``: the control files of each hierarchy."""
        for ctrls in V1_CONTROLLERS:
            directory = self.root / ctrls / parent / name
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "cgroup.procs").write_text("")
            files = dict(V1_FILES[ctrls])
            for path_name, text in files.items():
                (directory / path_name).write_text(text)
            if ctrls == "cpuset":
                for level in (directory.parent, directory):
                    (level / "cpuset.cpus").write_text("")
                    (level / "cpuset.mems").write_text("")

    def v2_group(self, parent: str, name: str, files: dict[str, str] | None = None) -> Path:
        point = self.root / "unified"
        level = point
        for part in (*Path(parent).parts, name):
            level = level / part
            level.mkdir(exist_ok=True)
            (level / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
            (level / "cgroup.subtree_control").write_text("")
        defaults = {
            "cgroup.procs": "",
            "cgroup.events": "populated 0\nfrozen 0\n",
            "cgroup.kill": "",
            "cpu.max": "max 100000",
            "cpu.weight": "100",
            "memory.max": "max",
            "memory.swap.max": "max",
            "memory.oom.group": "0",
            "pids.max": "max",
        }
        for fname, text in {**defaults, **(files or {})}.items():
            (level / fname).write_text(text)
        return level

    def _flush(self) -> None:
        (self.proc / "self" / "mountinfo").write_text("\n".join(self.lines) + "\n")


@pytest.fixture
def cgtree(tmp_path: Path) -> CgroupTree:
    return CgroupTree(tmp_path)

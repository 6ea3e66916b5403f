"""The v1 and v2 drivers write the right files, read usage and pick themselves from mountinfo."""

from pathlib import Path

import pytest

from edgefleet.probe.cgroupfs import cgroup_mounts
from edgefleet.sandbox.cgroups import V1Driver, V2Driver, detect_driver
from edgefleet.sandbox.errors import SandboxFailedError
from edgefleet.sandbox.limits import DeviceRule, IoMax, Limits

from .conftest import CgroupTree

pytestmark = pytest.mark.unit

ALL = Limits(
    cpus=1.5,
    cpuset_cpus="1",
    cpu_weight=200,
    memory_max=64 << 20,
    memory_high=32 << 20,
    pids_max=16,
    io_weight=500,
    io_max=(IoMax("8:0", rbps=1 << 20),),
    devices=(DeviceRule("/dev/video0", "c", 81, 0),),
)


def test_detect_picks_v1_on_hybrid_and_v2_on_unified(cgtree: CgroupTree) -> None:
    """Hybrid (v1 controllers + cgroup2) uses v1; unified only uses v2; none is a clear error."""
    with pytest.raises(SandboxFailedError, match="no cgroup hierarchy"):
        detect_driver(proc=cgtree.proc)
    cgtree.mount_v2()
    assert detect_driver(proc=cgtree.proc).version == 2
    cgtree.mount_v1()
    assert detect_driver(proc=cgtree.proc).version == 1


def test_v1_writes_limits_into_each_hierarchy(cgtree: CgroupTree) -> None:
    """cfs quota/period, shares from the weight formula, cpuset filled before attach, memory+memsw,
    pids, blkio throttle, devices deny-all then allow."""
    cgtree.mount_v1()
    driver = V1Driver("ef", mounts=cgroup_mounts(cgtree.proc))
    cgtree.v1_group("ef", "w1")
    group = driver.create("w1", ALL)
    cpu = cgtree.root / "cpu,cpuacct" / "ef" / "w1"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "150000"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.shares").read_text() == "2048"
    cpuset = cgtree.root / "cpuset" / "ef"
    assert (cpuset / "cpuset.cpus").read_text() == "0-1"  # parent filled from the root
    assert (cpuset / "w1" / "cpuset.cpus").read_text() == "1"
    assert (cpuset / "w1" / "cpuset.mems").read_text() == "0"
    memory = cgtree.root / "memory" / "ef" / "w1"
    assert (memory / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    assert (cgtree.root / "pids" / "ef" / "w1" / "pids.max").read_text() == "16"
    blkio = cgtree.root / "blkio" / "ef" / "w1"
    assert (blkio / "blkio.throttle.read_bps_device").read_text() == "8:0 1048576"
    devices = cgtree.root / "devices" / "ef" / "w1"
    assert (devices / "devices.deny").read_text() == "a"
    assert (devices / "devices.allow").read_text() == "c 81:0 rwm"  # the last rule written
    assert "c 81:0 rwm" in group.applied["devices/devices.allow"]
    assert len(group.procs_files) == 7  # cpu,cpuacct is one directory
    assert set(driver.names()) == {"w1"}


def test_v1_reports_what_it_cannot_enforce(cgtree: CgroupTree) -> None:
    """memory.high does not exist on v1; a missing controller or blkio weight file is named."""
    cgtree.mount_v1(("cpu,cpuacct", "memory", "blkio"))
    driver = V1Driver("ef", mounts=cgroup_mounts(cgtree.proc))
    missing = {u.limit: u.reason for u in driver.unenforceable(ALL)}
    assert set(missing) == {"memory-high", "pids", "cpuset", "device", "io-weight"}
    assert "v2 only" in missing["memory-high"]
    assert "'pids' controller is not mounted" in missing["pids"]


def test_v1_usage_and_kill(cgtree: CgroupTree) -> None:
    """CPU time, throttling, failcnt, OOM kills, pids events and system pressure are read."""
    cgtree.mount_v1()
    driver = V1Driver("ef", mounts=cgroup_mounts(cgtree.proc), proc=cgtree.proc)
    cgtree.v1_group("ef", "w1")
    group = driver.create("w1", Limits(memory_max=64 << 20))
    usage = driver.usage(group)
    assert usage.cpu_time_s == 1.5
    assert (usage.cpu_periods, usage.cpu_throttled_periods, usage.cpu_throttled_s) == (40, 30, 2.5)
    assert (usage.memory_current, usage.memory_peak, usage.memory_max_hits) == (1 << 20, 32 << 20, 76)
    assert usage.oom_kills == 1
    assert (usage.pids_current, usage.pids_max_hits) == (3, 2)
    assert usage.pressure == {"cpu": 1.5, "memory": 0.0, "io": 0.25}
    assert usage.pressure_scope == "system"
    assert usage.limits_hit() == ["memory", "oom", "pids", "cpus"]
    driver.kill(group)  # empty procs: returns at once, thaws the freezer
    assert (cgtree.root / "freezer" / "ef" / "w1" / "freezer.state").read_text() == "THAWED"
    assert driver.open("w1") is not None
    assert driver.open("nope") is None


def test_v2_delegates_controllers_and_writes_limits(cgtree: CgroupTree) -> None:
    """+controllers go into subtree_control top-down; cpu.max, weight, memory max/high, oom.group,
    swap 0, pids, io weight and io.max are written."""
    root = cgtree.mount_v2()
    cgtree.v2_group("ef", "w1")
    driver = V2Driver("ef", mounts=cgroup_mounts(cgtree.proc))
    assert driver.unenforceable(ALL) == []
    group = driver.create("w1", ALL)
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"
    assert (root / "ef" / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"
    w1 = root / "ef" / "w1"
    expected = {
        "cpu.max": "150000 100000",
        "cpu.weight": "200",
        "cpuset.cpus": "1",
        "memory.max": str(64 << 20),
        "memory.high": str(32 << 20),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "pids.max": "16",
        "io.weight": "default 500",
        "io.max": "8:0 rbps=1048576",
    }
    for fname, value in expected.items():
        assert (w1 / fname).read_text() == value, fname
    assert "private /dev" in group.applied["devices"]


def test_v2_missing_controllers_are_reported(cgtree: CgroupTree) -> None:
    """A controller the (delegated) parent does not offer makes its limits unenforceable."""
    cgtree.mount_v2("hugetlb")
    driver = V2Driver("ef", mounts=cgroup_mounts(cgtree.proc))
    missing = {u.limit for u in driver.unenforceable(ALL)}
    assert missing == {"cpus", "cpu-weight", "cpuset", "memory", "memory-high", "pids", "io-weight", "io-max"}


def test_v2_usage_and_kill(cgtree: CgroupTree) -> None:
    """cpu.stat, memory.events, pids.events and PSI come from the group; kill writes cgroup.kill."""
    cgtree.mount_v2()
    w1 = cgtree.v2_group(
        "ef",
        "w1",
        {
            "cpu.stat": "usage_usec 2000000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300000\n",
            "memory.current": "4096",
            "memory.peak": "8192",
            "memory.events": "low 0\nhigh 3\nmax 5\noom 1\noom_kill 1\n",
            "pids.current": "2",
            "pids.events": "max 0\n",
            "cpu.pressure": "some avg10=2.00 avg60=0 avg300=0 total=9\n",
            "memory.pressure": (
                "some avg10=0.50 avg60=0 avg300=0 total=9\nfull avg10=0 avg60=0 avg300=0 total=0\n"
            ),
        },
    )
    driver = V2Driver("ef", mounts=cgroup_mounts(cgtree.proc))
    group = driver.open("w1")
    assert group is not None
    usage = driver.usage(group)
    assert (usage.cpu_time_s, usage.cpu_throttled_periods, usage.cpu_throttled_s) == (2.0, 4, 0.3)
    assert (usage.memory_current, usage.memory_peak, usage.memory_high_hits, usage.oom_kills) == (
        4096,
        8192,
        3,
        1,
    )
    assert usage.pressure == {"cpu": 2.0, "memory": 0.5}
    assert usage.pressure_scope == "cgroup"
    driver.kill(group)
    assert (w1 / "cgroup.kill").read_text() == "1"


def test_no_v2_mount_is_an_error(tmp_path: Path) -> None:
    """A v2 driver without a cgroup2 mount says so."""
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text("")
    with pytest.raises(SandboxFailedError, match="no cgroup2 mount"):
        V2Driver(proc=tmp_path)

"""CPU budget from affinity and the cgroup quota, on fixture /proc and cgroupfs trees."""

from pathlib import Path

import pytest

from edgefleet.probe.cgroupfs import cgroup_mode, cgroup_mounts
from edgefleet.probe.cpu_budget import parse_cpulist, read_cpu_budget


def _proc(tmp_path: Path, mountinfo: str, cgroup: str) -> Path:
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "mountinfo").write_text(mountinfo)
    (proc / "cgroup").write_text(cgroup)
    return tmp_path / "proc"


@pytest.mark.unit
def test_parse_cpulist() -> None:
    """Kernel CPU lists with ranges and singles."""
    assert parse_cpulist("0-3,6,8-9\n") == (0, 1, 2, 3, 6, 8, 9)
    assert parse_cpulist("") == ()


@pytest.mark.unit
def test_v2_quota_nested_takes_the_tightest(tmp_path: Path) -> None:
    """A 1.5-CPU quota under a 3-CPU parent on an 8-CPU box gives 1 thread, not 8."""
    root = tmp_path / "cg"
    leaf = root / "edge" / "work"
    leaf.mkdir(parents=True)
    (root / "edge" / "cpu.max").write_text("300000 100000\n")
    (leaf / "cpu.max").write_text("150000 100000\n")
    proc = _proc(tmp_path, f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw\n", "0::/edge/work\n")
    budget = read_cpu_budget(proc, affinity=lambda: set(range(8)))
    assert budget.quota == 1.5
    assert budget.effective == 1.5
    assert budget.threads == 1
    assert budget.source == f"quota:{leaf}"
    assert cgroup_mode(cgroup_mounts(proc)) == "v2"


@pytest.mark.unit
def test_v1_quota_on_comounted_cpu_cpuacct(tmp_path: Path) -> None:
    """Old board kernels: cpu,cpuacct co-mounted, cfs_quota_us / cfs_period_us."""
    mnt = tmp_path / "cpu,cpuacct"
    grp = mnt / "workload"
    grp.mkdir(parents=True)
    (grp / "cpu.cfs_quota_us").write_text("200000\n")
    (grp / "cpu.cfs_period_us").write_text("100000\n")
    (mnt / "cpu.cfs_quota_us").write_text("-1\n")
    (mnt / "cpu.cfs_period_us").write_text("100000\n")
    proc = _proc(
        tmp_path,
        f"25 1 0:22 / {mnt} rw - cgroup cgroup rw,cpu,cpuacct\n",
        "3:cpu,cpuacct:/workload\n",
    )
    budget = read_cpu_budget(proc, affinity=lambda: {0, 1, 2, 3})
    assert budget.quota == 2.0
    assert budget.threads == 2
    assert cgroup_mode(cgroup_mounts(proc)) == "v1"


@pytest.mark.unit
def test_no_quota_uses_affinity(tmp_path: Path) -> None:
    """Unlimited quota: the budget is the allowed CPUs; unreadable /proc is not an error."""
    budget = read_cpu_budget(tmp_path / "missing", affinity=lambda: {2, 3})
    assert budget.cpus == (2, 3)
    assert budget.quota is None
    assert budget.threads == 2
    assert budget.source == "affinity"

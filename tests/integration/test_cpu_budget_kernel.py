"""The CPU budget read inside a real cgroup with a real CPU quota on this kernel."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edgefleet.probe.cgroupfs import cgroup_mounts
from edgefleet.testing.require import require

CHILD = (
    "import json; from edgefleet.probe.cpu_budget import read_cpu_budget as r; b = r(); "
    "print(json.dumps({'quota': b.quota, 'threads': b.threads, 'source': b.source}))"
)


def _quota_dir() -> tuple[Path, str, str]:
    """A fresh cgroup directory with the CPU controller, and the quota file names to use."""
    mounts = cgroup_mounts()
    v1 = [m for m in mounts if m.version == 1 and "cpu" in m.controllers]
    name = f"edgefleet-test-{uuid.uuid4().hex[:8]}"
    if v1:
        return v1[0].mountpoint / name, "cpu.cfs_quota_us", "v1"
    v2 = [m for m in mounts if m.version == 2]
    require(
        v2 and "cpu" in (v2[0].mountpoint / "cgroup.controllers").read_text().split(),
        "a cgroup CPU controller",
    )
    return v2[0].mountpoint / name, "cpu.max", "v2"


@pytest.mark.integration
def test_budget_inside_a_real_quota_cgroup() -> None:
    """A child placed in a cgroup with a 0.5-CPU quota reads quota 0.5 and sizes 1 thread."""
    require(os.geteuid() == 0, "root (to create cgroups)")
    group, _, version = _quota_dir()
    group.mkdir()
    try:
        if version == "v1":
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text("50000")
        else:
            (group / "cpu.max").write_text("50000 100000")
        procs = group / "cgroup.procs"
        child = subprocess.run(
            [sys.executable, "-c", f"open({str(procs)!r}, 'w').write('0'); " + CHILD],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(child.stdout)
        assert got["quota"] == 0.5
        assert got["threads"] == 1
        assert got["source"] == f"quota:{group}"
    finally:
        group.rmdir()

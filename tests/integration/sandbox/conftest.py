"""Real sandboxes on this kernel under a unique parent cgroup, checked to be gone afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.probe.cgroupfs import cgroup_mode, cgroup_mounts
from edgefleet.sandbox import Sandbox, detect_driver
from edgefleet.testing.require import require

# the workload runs as nobody: it needs an interpreter outside root's home
SYSTEM_PYTHON = "/usr/bin/python3"


def leftover_cgroups(parent: str) -> list[Path]:
    """Every directory named ``parent`` under any mounted cgroup hierarchy."""
    return [m.mountpoint / parent for m in cgroup_mounts() if (m.mountpoint / parent).exists()]


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """A unique parent cgroup name; the test fails if anything is left under it."""
    require(os.geteuid() == 0, "root (cgroups and namespaces)")
    require(cgroup_mode(cgroup_mounts()) != "none", "a mounted cgroup hierarchy")
    require(Path(SYSTEM_PYTHON).exists(), f"{SYSTEM_PYTHON} (an interpreter the sandbox user may run)")
    parent = f"edgefleet-test-{uuid.uuid4().hex[:10]}"
    yield parent
    driver = detect_driver(parent)
    for name in driver.names():
        group = driver.open(name)
        if group is not None:
            driver.kill(group)
            driver.remove(group)
    driver.prune()
    left = leftover_cgroups(parent)
    assert not left, f"cgroups left behind: {left}"


@pytest.fixture
def sandbox(cgroup_parent: str, tmp_path: Path) -> Sandbox:
    """A native sandbox whose groups live under the unique parent and whose state is in tmp_path."""
    return Sandbox(run_dir=tmp_path / "run", parent=cgroup_parent)

"""The probe on this machine agrees with what /proc and /sys say, read independently here."""

import os
import re
from pathlib import Path

import pytest

from edgefleet.probe.inventory import Inventory, collect


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return collect()


def _mounts() -> list[tuple[str, str]]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fstype, source_opts = line.split(" - ", 1)[1].split(" ", 1)
        out.append((fstype, source_opts))
    return out


@pytest.mark.integration
def test_cpu_matches_proc_and_sys(inventory: Inventory) -> None:
    """Threads = online CPUs, model = cpuinfo's model name, governor 'unsupported' iff no cpufreq driver."""
    assert inventory.cpu is not None
    online = 0
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        lo, _, hi = part.partition("-")
        online += int(hi or lo) - int(lo) + 1
    assert inventory.cpu.threads == online
    assert inventory.cpu.threads == os.cpu_count()
    assert inventory.cpu.architecture == os.uname().machine
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    if cpufreq.is_dir():
        assert inventory.cpu.governors
        assert inventory.cpu.governors["0"] == (cpufreq / "scaling_governor").read_text().strip()
    else:
        assert inventory.cpu.governor == "unsupported"
        assert inventory.cpu.cpufreq_driver == "unsupported"


@pytest.mark.integration
def test_memory_matches_meminfo(inventory: Inventory) -> None:
    """MemTotal in bytes."""
    total_kib = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    assert inventory.memory is not None
    assert inventory.memory.total_bytes == total_kib * 1024


@pytest.mark.integration
def test_kernel_matches_uname(inventory: Inventory) -> None:
    """Release and build string are uname's."""
    assert inventory.kernel is not None
    assert inventory.kernel.release == os.uname().release
    assert inventory.kernel.version == os.uname().version


@pytest.mark.integration
def test_cgroup_mode_matches_mountinfo(inventory: Inventory) -> None:
    """Mode from the mount table: both v1 controllers and cgroup2 → hybrid (as on this machine)."""
    mounts = _mounts()
    v2 = any(fstype == "cgroup2" for fstype, _ in mounts)
    v1 = any(
        fstype == "cgroup"
        and any(
            o
            for o in opts.split()[-1].split(",")
            if o not in {"rw", "ro"} and not o.startswith("name=") and "=" not in o
        )
        for fstype, opts in mounts
    )
    expected = "hybrid" if v1 and v2 else "v1" if v1 else "v2" if v2 else "none"
    assert inventory.cgroups is not None
    assert inventory.cgroups.mode == expected
    controllers = {c.name for c in inventory.cgroups.controllers or []}
    for fstype, opts in mounts:
        if fstype == "cgroup":
            for option in opts.split()[-1].split(","):
                if option in {"cpu", "memory", "pids", "cpuset"}:
                    assert option in controllers


@pytest.mark.integration
def test_writable_matches_access(inventory: Inventory) -> None:
    """A controller is writable exactly when this process may create a cgroup in its directory."""
    assert inventory.cgroups is not None
    for controller in inventory.cgroups.controllers or []:
        assert controller.cgroup is not None
        assert controller.writable == os.access(controller.cgroup, os.W_OK)


@pytest.mark.integration
def test_namespaces_match_proc_self_ns(inventory: Inventory) -> None:
    """Every namespace kind in /proc/self/ns is reported available."""
    kinds = {n.name for n in Path("/proc/self/ns").iterdir() if not n.name.endswith("_for_children")}
    assert inventory.namespaces is not None
    assert set(inventory.namespaces.available or []) == kinds


@pytest.mark.integration
def test_nothing_fails_on_this_machine(inventory: Inventory) -> None:
    """No section fails, and every unknown field carries a reason."""
    assert inventory.unknown == {}
    for name in Inventory.model_fields:
        section = getattr(inventory, name)
        for field, reason in getattr(section, "unknown", {}).items():
            assert getattr(section, field) is None
            assert reason

"""A field that cannot be read is null with a reason; the probe itself never raises."""

import ctypes
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgefleet.probe.cpu import CpuInfo
from edgefleet.probe.inventory import collect
from edgefleet.probe.memory import collect_memory
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns
from edgefleet.testing import fake_devices

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_override() -> None:
    """In the child before exec: without these capabilities root obeys file modes like anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


@pytest.mark.unit
def test_directory_instead_of_file_is_unknown_with_reason(tmp_path: Path) -> None:
    """/proc/meminfo that is a directory: every memory field is null and says why."""
    paths = fake_devices.x86_intel_npu_uvc(tmp_path).probe_paths()
    meminfo = tmp_path / "proc/meminfo"
    meminfo.unlink()
    meminfo.mkdir()
    mem = collect_memory(paths)
    assert mem.total_bytes is None
    assert mem.unknown["total_bytes"] == f"{meminfo}: is a directory, expected a file"
    assert mem.transparent_hugepages == "madvise"  # the rest of the section is still read


@pytest.mark.unit
def test_missing_value_inside_a_readable_file(tmp_path: Path) -> None:
    """A meminfo without MemAvailable (kernel < 3.14) reports only that field as unknown."""
    paths = fake_devices.raspberry_pi5_hailo8l(tmp_path).probe_paths()
    meminfo = tmp_path / "proc/meminfo"
    meminfo.write_text("\n".join(x for x in meminfo.read_text().splitlines() if "MemAvailable" not in x))
    mem = collect_memory(paths)
    assert mem.available_bytes is None
    assert mem.unknown == {"available_bytes": "/proc/meminfo has no MemAvailable"}
    assert mem.total_bytes == 8_245_008 * 1024


@pytest.mark.unit
def test_empty_root_gives_unknowns_not_a_crash(tmp_path: Path) -> None:
    """An empty tree: every section is present, its unreadable fields carry reasons."""
    inv = collect(ProbePaths.under(tmp_path, find_module=lambda _: False, landlock_abi=lambda: 1))
    assert inv.unknown == {}
    assert inv.cpu
    assert inv.cpu.model is None
    assert inv.cpu.unknown["model"].endswith("proc/cpuinfo: not present")
    assert inv.kernel
    assert "osrelease: not present" in inv.kernel.unknown["release"]
    assert inv.cgroups
    assert inv.cgroups.mode is None
    assert "mountinfo" in inv.cgroups.unknown["mode"]
    assert inv.accelerators
    assert inv.accelerators.devices == []


@pytest.mark.unit
def test_a_failing_section_is_reported_by_the_inventory(tmp_path: Path) -> None:
    """A section reader that raises unexpectedly leaves that section null with the error, others intact."""

    def broken_which(name: str) -> str | None:
        raise RuntimeError(f"PATH lookup exploded for {name}")

    paths = replace(fake_devices.raspberry_pi5_hailo8l(tmp_path).probe_paths(), which=broken_which)
    inv = collect(paths)
    assert inv.runtimes is None
    assert "RuntimeError: PATH lookup exploded" in inv.unknown["runtimes"]
    assert inv.accelerators
    assert inv.accelerators.devices
    assert inv.accelerators.devices[0].usable_runtimes == []  # nothing is claimed usable when unknown


@pytest.mark.unit
def test_section_rejects_a_value_listed_as_unknown() -> None:
    """The convention is enforced: a field listed in `unknown` must be null."""
    with pytest.raises(ValidationError, match="listed as unknown but has a value"):
        CpuInfo.model_validate(
            {name: None for name in CpuInfo.model_fields if name != "unknown"}
            | {"model": "x", "unknown": {"model": "why"}}
        )


CHILD = """
import json, sys
from pathlib import Path
from edgefleet.probe.inventory import collect
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns
inv = collect(ProbePaths.under(Path(sys.argv[1]), find_module=lambda _: False))
print(json.dumps({"cpu": inv.cpu.unknown, "model": inv.cpu.model, "cameras": inv.cameras.unknown,
                  "unknown": inv.unknown}))
"""


@pytest.mark.unit
def test_unreadable_file_is_unknown_with_reason() -> None:
    """A mode-000 /proc/cpuinfo (read by an unprivileged user) is 'permission denied', not a crash."""
    with tempfile.TemporaryDirectory(prefix="edgefleet-probe-") as tmp:
        root = Path(tmp)
        fake_devices.x86_intel_npu_uvc(root)
        cpuinfo = root / "proc/cpuinfo"
        cpuinfo.chmod(0)
        (root / "dev").chmod(0)
        try:
            child = subprocess.run(
                [sys.executable, "-c", CHILD, str(root)],
                capture_output=True,
                text=True,
                check=True,
                # root reads mode-000 files: drop the capabilities that let it
                preexec_fn=_drop_file_override if os.geteuid() == 0 else None,
            )
        finally:
            (root / "dev").chmod(0o755)
        got = json.loads(child.stdout)
    assert got["model"] is None
    assert got["cpu"]["model"] == f"{cpuinfo}: permission denied"
    assert got["cameras"]["cameras"] == f"{root / 'dev'}: permission denied"
    assert got["unknown"] == {}


@pytest.mark.unit
def test_any_os_error_while_reading_a_field_becomes_its_reason() -> None:
    """An OSError from any path operation (readlink, resolve...) is recorded, not raised."""
    unknown = Unknowns()

    def denied() -> str:
        raise PermissionError(13, "Permission denied", "/sys/class/accel/accel0/device")

    assert unknown.attempt("devices", denied) is None
    assert unknown == {"devices": "/sys/class/accel/accel0/device: permission denied"}

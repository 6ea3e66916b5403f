"""What the sandbox refuses or reports before anything starts."""

import sys
from pathlib import Path

import pytest

from edgefleet.errors import PermissionDeniedError
from edgefleet.probe.cgroupfs import cgroup_mounts
from edgefleet.sandbox import Limits, Sandbox, SandboxSpec
from edgefleet.sandbox.cgroups import V1Driver
from edgefleet.sandbox.errors import UnenforceableError
from edgefleet.sandbox.launcher import _parse_sync
from edgefleet.sandbox.seccomp import seccomp_available

from .conftest import CgroupTree

pytestmark = pytest.mark.unit


def _sandbox(cgtree: CgroupTree, tmp_path: Path, euid: int = 0) -> Sandbox:
    cgtree.mount_v1(("cpu,cpuacct", "memory"))
    driver = V1Driver("ef", mounts=cgroup_mounts(cgtree.proc))
    return Sandbox(driver, run_dir=tmp_path / "run", geteuid=lambda: euid)


def test_needs_root(cgtree: CgroupTree, tmp_path: Path) -> None:
    """Without root the native sandbox says so instead of failing half-way."""
    with pytest.raises(PermissionDeniedError, match="needs root"):
        _sandbox(cgtree, tmp_path, euid=1000).check(SandboxSpec("w", ("true",)))


def test_missing_controllers_are_reported_or_refused(cgtree: CgroupTree, tmp_path: Path) -> None:
    """Without a pids hierarchy --pids is reported as not enforced, and --strict refuses it."""
    sandbox = _sandbox(cgtree, tmp_path)
    spec = SandboxSpec("w", ("true",), Limits(pids_max=10, memory_max=64 << 20))
    assert [u.limit for u in sandbox.check(spec) if u.limit != "seccomp"] == ["pids"]
    with pytest.raises(UnenforceableError, match="pids"):
        sandbox.check(spec, strict=True)


def test_seccomp_without_pyseccomp_is_reported(
    cgtree: CgroupTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When pyseccomp is not installed the run goes on without the filter and says why."""
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # what an absent package looks like to import
    assert "pyseccomp" in (seccomp_available() or "")
    sandbox = _sandbox(cgtree, tmp_path)
    unenforced = sandbox.check(SandboxSpec("w", ("true",)))
    assert [u.limit for u in unenforced] == ["seccomp"]
    with pytest.raises(UnenforceableError, match="seccomp"):
        sandbox.check(SandboxSpec("w", ("true",)), strict=True)


def test_sync_pipe_messages() -> None:
    """The shim's PID message and the child's error arrive in either order."""
    assert _parse_sync(b"P42\n") == (42, None)
    assert _parse_sync(b"P42\nEcould not execute 'x': No such file") == (
        42,
        "could not execute 'x': No such file",
    )
    assert _parse_sync(b"Ecould not set the hostname: EPERMP42\n") == (
        42,
        "could not set the hostname: EPERM",
    )
    assert _parse_sync(b"") == (None, None)

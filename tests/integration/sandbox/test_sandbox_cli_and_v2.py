"""`edgefleet run` end to end, and the v2 driver on this kernel's cgroup2 mount."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from edgefleet.probe.cgroupfs import cgroup_mounts
from edgefleet.sandbox import Limits, Sandbox, SandboxSpec
from edgefleet.sandbox.cgroups import V2Driver
from edgefleet.testing.require import require

from .conftest import SYSTEM_PYTHON, leftover_cgroups

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", "run", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_reports_oom_as_json_and_exits_137(cgroup_parent: str) -> None:
    """`edgefleet run --memory 32m --json` prints the report; the exit status is 128+SIGKILL."""
    r = _cli("--cgroup-parent", cgroup_parent, "--memory", "32m", "--json", "--", SYSTEM_PYTHON, "-c",
             "x = bytearray(200 << 20)")  # fmt: skip
    assert r.returncode == 137, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["reason"] == "oom"
    assert report["oom_killed"] is True
    assert report["applied"]


def test_cli_passes_output_and_exit_code(cgroup_parent: str) -> None:
    """The command's output reaches the terminal and its exit code is the CLI's; a table goes to stderr."""
    r = _cli("--cgroup-parent", cgroup_parent, "--pids", "8", "--", "/bin/sh", "-c", "echo hello; exit 3")
    assert r.returncode == 3
    assert r.stdout == "hello\n"
    assert "exit code 3" in r.stderr


def test_cli_unknown_device_fails_before_start(cgroup_parent: str) -> None:
    """An unknown device is exit 3 naming it; nothing was created."""
    r = _cli("--cgroup-parent", cgroup_parent, "--device", "/dev/video9", "--", "true")
    assert r.returncode == 3
    assert "/dev/video9" in r.stderr
    assert not leftover_cgroups(cgroup_parent)


def test_v2_driver_runs_and_kills_with_cgroup_kill(tmp_path: Path) -> None:
    """On the cgroup2 mount (no controllers on a hybrid host) the v2 driver attaches, reports CPU
    time and PSI, and stops a workload with cgroup.kill."""
    require(os.geteuid() == 0, "root")
    unified = [m for m in cgroup_mounts() if m.version == 2]
    require(unified, "a cgroup2 mount")
    parent = f"edgefleet-test-{uuid.uuid4().hex[:10]}"
    driver = V2Driver(parent)
    sandbox = Sandbox(driver, run_dir=tmp_path / "run")
    try:
        process = sandbox.start(
            SandboxSpec("v2", (SYSTEM_PYTHON, "-c", "import time; time.sleep(60)"), Limits())
        )
        time.sleep(0.2)
        assert process.pid in driver.procs(process.group)
        usage = process.usage()
        assert usage.cpu_time_s is not None
        report = process.stop(grace=0.3)
        assert report.reason == "stopped"
        assert report.cgroup_version == 2
    finally:
        driver.prune()
    assert not (unified[0].mountpoint / parent).exists()


def test_cli_sigterm_stops_the_workload_and_cleans_up(cgroup_parent: str) -> None:
    """SIGTERM to `edgefleet run` stops the workload (grace, then kill) and leaves no cgroup."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "run",
            "--cgroup-parent",
            cgroup_parent,
            "--",
            "/bin/sleep",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not leftover_cgroups(cgroup_parent) or not any(
        p.iterdir() for p in leftover_cgroups(cgroup_parent)
    ):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not leftover_cgroups(cgroup_parent)

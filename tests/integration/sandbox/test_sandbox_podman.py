"""The podman backend runs a busybox rootfs with the same limits (runc, cgroupfs, explicit ulimits)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgefleet.sandbox import Isolation, Limits, SandboxSpec
from edgefleet.sandbox.podman import PodmanBackend, PodmanTarget
from edgefleet.testing.require import require, require_tool

pytestmark = pytest.mark.integration

APPLETS = ("sh", "cat", "echo", "id", "hostname", "ls", "grep", "head", "tr")


@pytest.fixture
def busybox_rootfs(tmp_path: Path) -> Path:
    """A minimal root file system: /bin/busybox of busybox-static plus applet links."""
    require(os.geteuid() == 0, "root (rootful podman)")
    require_tool("podman")
    require_tool("runc")
    busybox = Path("/bin/busybox")
    require(busybox.exists(), "busybox-static (/bin/busybox)")
    root = tmp_path / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    tmp_path.chmod(0o755)
    return root


SHOW = (
    "for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max; do "
    "[ -r $f ] && echo mem=$(cat $f); done; echo uid=$(id -u); echo host=$(hostname); "
    "echo nets=$(ls /sys/class/net); grep -E '^(NoNewPrivs|CapEff)' /proc/self/status"
)


def test_busybox_rootfs_runs_with_the_limits_visible_inside(
    busybox_rootfs: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Memory limit visible inside, nobody, own hostname, loopback only, no caps, no_new_privs."""
    spec = SandboxSpec(
        "podtest",
        ("/bin/sh", "-c", SHOW),
        Limits(memory_max=64 << 20, cpus=0.5, pids_max=32),
        Isolation(network="none", hostname="podbox"),
    )
    report = PodmanBackend().run(spec, PodmanTarget(rootfs=busybox_rootfs), timeout=120)
    out = capfd.readouterr().out
    assert report.exit_code == 0, out
    assert f"mem={64 << 20}" in out
    assert "uid=65534" in out
    assert "host=podbox" in out
    assert "nets=lo" in out
    assert "NoNewPrivs:\t1" in out
    assert "CapEff:\t0000000000000000" in out
    assert "--pids-limit 32" in report.applied["podman"]
    leftovers = subprocess.run(
        ["podman", "ps", "-a", "--filter", "name=edgefleet-podtest", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert leftovers.stdout.strip() == ""


def test_cli_podman_backend(busybox_rootfs: Path) -> None:
    """`edgefleet run --backend podman --rootfs DIR` passes the exit code and reports as JSON."""
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "run", "--backend", "podman", "--rootfs", str(busybox_rootfs),
         "--memory", "48m", "--json", "--", "/bin/sh", "-c", SHOW + "; exit 5"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert r.returncode == 5, r.stderr
    assert f"mem={48 << 20}" in r.stdout
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["backend"] == "podman"
    assert report["exit_code"] == 5

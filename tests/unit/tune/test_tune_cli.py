"""`edgefleet tune` end to end against a fixture board (--root), as a person runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgefleet.tuning.fake import fake_board

from .conftest import snapshot


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "edgefleet",
        "tune",
        "--root",
        str(tmp / "board"),
        "--state-dir",
        str(tmp / "state"),
        "--profiles-dir",
        str(tmp / "profiles"),
        *args,
    ]
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "EDGEFLEET_DATA_DIR": str(tmp / "data")}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=60)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    fake_board(tmp_path / "board", cpus=4, cpufreq=True)
    (tmp_path / "profiles").mkdir()
    return tmp_path


@pytest.mark.unit
def test_cli_list_show_plan_apply_verify_status_revert(tmp: Path) -> None:
    """The whole life cycle from the command line, ending byte for byte where it started."""
    before = snapshot(tmp / "board")
    r = _cli(tmp, "list")
    assert r.returncode == 0, r.stderr
    for name in ("balanced", "edge-latency", "edge-throughput", "edge-powersave"):
        assert name in r.stdout
    r = _cli(tmp, "show", "edge-latency")
    assert "Keep model weights" in r.stdout
    r = _cli(tmp, "plan", "edge-latency")
    assert r.returncode == 0, r.stderr
    steps = json.loads(_cli(tmp, "plan", "edge-latency", "--json").stdout)["steps"]
    assert {
        "knob": "sysctl:vm.swappiness",
        "current": "60",
        "target": "10",
        "action": "set",
    }.items() <= steps[0].items()
    assert "needs reboot" in r.stdout
    assert "nothing was changed" in r.stdout
    assert snapshot(tmp / "board") == before
    r = _cli(tmp, "apply", "edge-latency")
    assert r.returncode == 0, r.stderr
    assert "applied edge-latency: 18 write(s)" in r.stdout
    assert "in force only while a process holds" in r.stdout
    assert "needs reboot" in r.stdout
    assert (tmp / "board/proc/sys/vm/swappiness").read_text() == "10"
    r = _cli(tmp, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified edge-latency" in r.stdout
    r = _cli(tmp, "status")
    assert "profile: edge-latency (applied)" in r.stdout
    data = json.loads(_cli(tmp, "status", "--json").stdout)
    assert (data["profile"], data["state"], data["originals"]) == ("edge-latency", "applied", 18)
    checks = json.loads(_cli(tmp, "verify", "--json").stdout)["checks"]
    assert {c["verdict"] for c in checks} == {"passed", "advice", "skipped"}
    assert "tuned: not running" in r.stdout
    r = _cli(tmp, "revert")
    assert r.returncode == 0, r.stderr
    assert "reverted edge-latency: restored 18 file(s)" in r.stdout
    assert snapshot(tmp / "board") == before
    assert "nothing to revert" in _cli(tmp, "revert").stdout


@pytest.mark.unit
def test_cli_verify_reports_drift_with_exit_7(tmp: Path) -> None:
    """A knob changed behind edgefleet's back makes verify fail, naming it."""
    assert _cli(tmp, "apply", "edge-latency").returncode == 0
    (tmp / "board/proc/sys/vm/swappiness").write_text("60\n")
    r = _cli(tmp, "verify")
    assert r.returncode == 7
    assert "1 of" in r.stderr
    assert "tune.verify_failed" in r.stderr
    assert _cli(tmp, "revert").returncode == 0


@pytest.mark.unit
def test_cli_bad_profile_exits_2_naming_file_and_line(tmp: Path) -> None:
    (tmp / "profiles" / "bad.toml").write_text('description = "x"\n\n[sysfs]\n"/etc/shadow" = "1"\n')
    before = snapshot(tmp / "board")
    r = _cli(tmp, "apply", "bad")
    assert r.returncode == 2
    assert "bad.toml:4:" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr
    assert snapshot(tmp / "board") == before


@pytest.mark.unit
def test_cli_refuses_while_tuned_runs(tmp: Path) -> None:
    """A tuned process in the (fixture) /proc makes apply refuse with exit 4."""
    proc = tmp / "board" / "proc" / "999"
    proc.mkdir(parents=True)
    (proc / "comm").write_text("tuned\n")
    (proc / "cmdline").write_bytes(b"/usr/sbin/tuned\0")
    r = _cli(tmp, "apply", "edge-latency")
    assert r.returncode == 4
    assert "tuned is running" in r.stderr
    assert "tune.tuned_active" in r.stderr
    assert "tuned: process 999 is tuned" in _cli(tmp, "status").stdout


@pytest.mark.unit
def test_cli_export_and_import(tmp: Path) -> None:
    out = tmp / "exported" / "edge-lat"
    r = _cli(tmp, "export", "edge-latency", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "tuned.conf").is_file()
    r = _cli(tmp, "import", str(out), "--name", "from-tuned")
    assert r.returncode == 0, r.stderr
    assert (tmp / "profiles" / "from-tuned.toml").is_file()
    assert "from-tuned" in _cli(tmp, "list").stdout
    bad = tmp / "bad-tuned"
    bad.mkdir()
    (bad / "tuned.conf").write_text("[main]\nsummary=x\n[video]\npanel_power_savings=0\n")
    r = _cli(tmp, "import", str(bad))
    assert r.returncode == 2
    flat = " ".join(r.stderr.split())
    assert (
        "tuned.conf:4: section 'video', panel_power_savings=0: no edgefleet knob for tuned plugin 'video'"
        in flat
    )

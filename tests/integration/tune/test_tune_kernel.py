"""Real kernel: apply, verify and revert on this machine's sysctls, THP, IRQs and PM QoS.

Every test restores what it touched in a finally block, byte for byte, even when it fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.testing.require import require
from edgefleet.tuning import NoTuned, ProfileStore, Roots, Tuner, recover
from edgefleet.tuning.knobs.pm_qos import LatencyHold, read_latency
from edgefleet.tuning.knobs.vm import bracketed

SYSCTLS = [
    Path("/proc/sys/vm/swappiness"),
    Path("/proc/sys/vm/dirty_ratio"),
    Path("/proc/sys/vm/dirty_background_ratio"),
]
THP = [
    Path("/sys/kernel/mm/transparent_hugepage/enabled"),
    Path("/sys/kernel/mm/transparent_hugepage/defrag"),
]
HARNESS = Path(__file__).with_name("tune_crash_harness.py")


def _writable(paths: list[Path]) -> bool:
    return all(p.is_file() and os.access(p, os.W_OK) for p in paths) and os.geteuid() == 0


def _restore(saved: dict[Path, bytes]) -> None:
    for path, data in saved.items():
        if path.read_bytes() != data:
            text = data.decode()
            path.write_text(bracketed(text) if "transparent_hugepage" in str(path) else text)


@pytest.fixture
def kernel_files() -> Iterator[dict[Path, bytes]]:
    """The real files these tests change, saved first and put back afterwards whatever happens."""
    require(
        _writable(SYSCTLS + THP), "root with writable /proc/sys/vm and /sys/kernel/mm/transparent_hugepage"
    )
    saved = {p: p.read_bytes() for p in SYSCTLS + THP}
    try:
        yield saved
    finally:
        _restore(saved)


def _differs(current: bytes, choices: list[int]) -> str:
    value = int(current.decode().strip())
    return str(next(c for c in choices if c != value))


@pytest.fixture
def profile_dir(tmp_path: Path, kernel_files: dict[Path, bytes]) -> Path:
    """A profile whose every value differs from what the kernel has now."""
    d = tmp_path / "profiles"
    d.mkdir()
    swap, dirty, bg = (kernel_files[p] for p in SYSCTLS)
    thp_now = bracketed(kernel_files[THP[0]].decode())
    defrag_now = bracketed(kernel_files[THP[1]].decode())
    (d / "itest.toml").write_text(
        'description = "integration"\n[sysctl]\n'
        f'"vm.swappiness" = {{ value = {_differs(swap, [13, 14])}, comment = "test" }}\n'
        f'"vm.dirty_ratio" = {{ value = {_differs(dirty, [17, 18])}, comment = "test" }}\n'
        f'"vm.dirty_background_ratio" = {{ value = {_differs(bg, [7, 8])}, comment = "test" }}\n'
        "[vm]\n"
        f'transparent_hugepages = "{"never" if thp_now != "never" else "madvise"}"\n'
        f'transparent_hugepage_defrag = "{"defer" if defrag_now != "defer" else "never"}"\n'
    )
    return d


def _tuner(tmp_path: Path, profiles: Path) -> Tuner:
    return Tuner(state_dir=tmp_path / "state", store=ProfileStore([profiles]), tuned=NoTuned())


@pytest.mark.integration
def test_apply_verify_revert_on_the_real_kernel(
    tmp_path: Path, profile_dir: Path, kernel_files: dict[Path, bytes]
) -> None:
    """Sysctls and THP change, verify passes, revert restores every file byte for byte."""
    tuner = _tuner(tmp_path, profile_dir)
    report = tuner.apply("itest")
    assert len(report.written) == 5
    for path in SYSCTLS + THP:
        assert path.read_bytes() != kernel_files[path], path
    _, checks = tuner.verify()
    assert {c.verdict for c in checks} == {"passed"}
    assert tuner.apply("itest").written == []  # idempotent
    tuner.revert()
    for path in SYSCTLS + THP:
        assert path.read_bytes() == kernel_files[path], path


@pytest.mark.integration
def test_edge_latency_on_this_machine(tmp_path: Path, kernel_files: dict[Path, bytes]) -> None:
    """The built-in applies here: sysctls and THP change, cpufreq knobs are skipped, nothing fails."""
    tuner = _tuner(tmp_path, tmp_path)
    tuner.apply("edge-latency")
    assert Path("/proc/sys/vm/swappiness").read_text().strip() == "10"
    assert bracketed(THP[0].read_text()) == "never"
    _, checks = tuner.verify()
    verdicts = {c.step.setting.label: c.verdict for c in checks}
    assert "failed" not in verdicts.values(), checks
    if not Path("/sys/devices/system/cpu/cpu0/cpufreq").exists():
        assert verdicts["cpu:governor"] == "skipped"
    tuner.revert()
    for path in SYSCTLS + THP:
        assert path.read_bytes() == kernel_files[path], path


@pytest.mark.integration
def test_irq_affinity_moves_and_returns(tmp_path: Path) -> None:
    """IRQs leave the avoided CPU and return to their exact affinity lists on revert."""
    online = Path("/sys/devices/system/cpu/online").read_text().strip()
    files = [
        Path("/proc/irq/default_smp_affinity"),
        *sorted(Path("/proc/irq").glob("[0-9]*/smp_affinity_list")),
    ]
    require(os.geteuid() == 0 and online != "0" and len(files) > 1, "root, 2+ CPUs and /proc/irq")
    saved = {p: p.read_bytes() for p in files}
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    last = online.split("-")[-1].split(",")[-1]
    (profiles / "pin.toml").write_text(f'[irq]\navoid_cpus = {{ value = "{last}", comment = "test" }}\n')
    tuner = _tuner(tmp_path, profiles)
    try:
        report = tuner.apply("pin")
        assert report.written
        _, checks = tuner.verify()
        assert "failed" not in {c.verdict for c in checks}
        tuner.revert()
        assert {p: p.read_bytes() for p in files} == saved
    finally:
        for p, data in saved.items():
            if p.read_bytes() != data:
                p.write_bytes(data)


@pytest.mark.integration
def test_pm_qos_limit_holds_only_while_open() -> None:
    """/dev/cpu_dma_latency enforces the limit while the hold is open and drops it on close."""
    device = Path("/dev/cpu_dma_latency")
    require(device.exists() and os.access(device, os.W_OK), "a writable /dev/cpu_dma_latency")
    before = read_latency(device)
    assert before is not None
    with LatencyHold(device, 5) as hold:
        assert hold.held
        now = read_latency(device)
        assert now is not None
        assert now <= 5
    assert read_latency(device) == before


def _start_victim(tmp_path: Path, profiles: Path, stop_after: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HARNESS), str(tmp_path / "state"), str(profiles), "itest", str(stop_after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("WROTE "):
        proc.kill()
        pytest.fail(
            f"harness did not reach write {stop_after}: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
    return proc, line.split(" ", 1)[1].strip()


@pytest.mark.integration
@pytest.mark.parametrize(("stop_after", "how"), [(1, "cli-status"), (4, "library"), (2, "cli-recover")])
def test_sigkill_between_writes_then_recovery_restores_originals(
    tmp_path: Path, profile_dir: Path, kernel_files: dict[Path, bytes], stop_after: int, how: str
) -> None:
    """kill -9 in the middle of an apply; recovery (CLI or the agent's library call) restores every byte."""
    proc, key = _start_victim(tmp_path, profile_dir, stop_after)
    try:
        assert Path(key).read_bytes() != kernel_files[Path(key)]  # the kernel really changed
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        journal = (tmp_path / "state" / "journal.json").read_text()
        assert '"state": "applying"' in journal
        if how == "library":
            rec = recover(tmp_path / "state", roots=Roots())
            assert rec is not None
            assert rec.failed == []
        else:
            cmd = [sys.executable, "-m", "edgefleet", "tune", "--state-dir", str(tmp_path / "state")]
            cmd.append("status" if how == "cli-status" else "recover")
            r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
            assert r.returncode == 0, r.stderr
            assert "recovered from an interrupted applying of 'itest'" in " ".join(
                (r.stdout + r.stderr).split()
            )
        for path in SYSCTLS + THP:
            assert path.read_bytes() == kernel_files[path], path
        assert not (tmp_path / "state" / "journal.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)  # reaps it and closes its pipes


@pytest.mark.integration
def test_cli_apply_hold_keeps_the_latency_limit_until_sigterm(tmp_path: Path) -> None:
    """`edgefleet tune apply NAME --hold` holds the limit while it runs and releases it on SIGTERM."""
    device = Path("/dev/cpu_dma_latency")
    require(device.exists() and os.access(device, os.W_OK), "a writable /dev/cpu_dma_latency")
    before = read_latency(device)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "qos.toml").write_text('[pm_qos]\nforce_latency = { value = 7, comment = "test" }\n')
    cmd = [sys.executable, "-m", "edgefleet", "tune", "--state-dir", str(tmp_path / "state")]
    cmd += ["--profiles-dir", str(profiles), "apply", "qos", "--hold"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].startswith("holding 1 PM QoS limit"), lines
        held = read_latency(device)
        assert held is not None
        assert held <= 7
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert read_latency(device) == before
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)

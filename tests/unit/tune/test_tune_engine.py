"""Plan, apply, verify, revert and recover against fixture boards (with and without cpufreq)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgefleet.tuning import Roots, Step, SystemTunedDetector
from edgefleet.tuning.errors import TunedActiveError, TuneStateError, TuneWriteError
from edgefleet.tuning.knobs.pm_qos import LatencyHold, read_latency

from .conftest import MakeTuner, snapshot

LATENCY = "edge-latency"


def _base(roots: Roots) -> Path:
    return roots.sys.parent


def _by_label(steps: tuple[Step, ...] | list[Step]) -> dict[str, list[Step]]:
    out: dict[str, list[Step]] = {}
    for s in steps:
        out.setdefault(s.setting.label, []).append(s)
    return out


@pytest.mark.unit
def test_plan_on_a_cpufreq_board_targets_every_policy(board: Roots, make_tuner: MakeTuner) -> None:
    """Governor, EPP, boost and min perf are planned per policy on a board that has them."""
    plan = _by_label(make_tuner(board).plan(LATENCY).steps)
    gov = plan["cpu:governor"]
    assert len(gov) == 4
    assert {(s.current, s.target, s.action) for s in gov} == {("schedutil", "performance", "set")}
    assert {s.target for s in plan["cpu:energy_performance_preference"]} == {"performance"}
    assert [(s.current, s.target) for s in plan["cpu:boost"]] == [("0", "1")]
    assert {s.target for s in plan["cpu:min_perf_pct"]} == {"1800000"}  # 100% of the policy's range
    assert plan["cpu:energy_perf_bias"][0].action == "unsupported"  # not an Intel CPU
    assert plan["pm_qos:force_latency"][0].target == "2"  # cstate.id_no_zero:1 -> C1's 2 µs
    boot = plan["boot:isolcpus"][0]
    assert (boot.action, boot.needs_reboot) == ("advice", True)


@pytest.mark.unit
def test_without_cpufreq_cpu_knobs_are_unsupported_not_failed(vm_board: Roots, make_tuner: MakeTuner) -> None:
    """A board without a cpufreq driver plans cpu knobs as unsupported; apply and verify still pass."""
    tuner = make_tuner(vm_board)
    plan = _by_label(tuner.plan(LATENCY).steps)
    for label in ("cpu:governor", "cpu:boost", "cpu:min_perf_pct", "cpu:energy_performance_preference"):
        assert [s.action for s in plan[label]] == ["unsupported"], label
    tuner.apply(LATENCY)
    _, checks = tuner.verify()
    verdicts = {c.step.setting.label: c.verdict for c in checks}
    assert verdicts["cpu:governor"] == "skipped"
    assert verdicts["sysctl:vm.swappiness"] == "passed"
    assert verdicts["pm_qos:force_latency"] == "advice"  # nobody holds it
    assert verdicts["boot:nohz_full"] == "advice"
    assert "failed" not in verdicts.values()


@pytest.mark.unit
def test_apply_verify_revert_restores_every_byte(board: Roots, make_tuner: MakeTuner) -> None:
    """Apply writes the targets, verify passes, revert puts every file back byte for byte."""
    base = _base(board)
    before = snapshot(base)
    tuner = make_tuner(board)
    report = tuner.apply(LATENCY)
    assert (board.proc_sys / "vm" / "swappiness").read_text() == "10"
    assert (board.sys / "devices/system/cpu/cpufreq/policy2/scaling_governor").read_text() == "performance"
    assert (board.sys / "kernel/mm/transparent_hugepage/enabled").read_text() == "never"
    assert len(report.written) == 3 + 2 + 4 + 4 + 1 + 4  # sysctl, thp, governor, epp, boost, min freq
    name, checks = tuner.verify()
    assert name == LATENCY
    assert [c for c in checks if c.verdict == "failed"] == []
    assert tuner.status().profile == LATENCY
    reverted = tuner.revert()
    assert reverted.profile == LATENCY
    assert len(reverted.restored) == len(report.written)
    assert snapshot(base) == before
    assert not tuner.journal.path.exists()


@pytest.mark.unit
def test_applying_twice_keeps_the_first_originals(vm_board: Roots, make_tuner: MakeTuner) -> None:
    """A second apply writes nothing and the journal still holds the values from before the first."""
    tuner = make_tuner(vm_board)
    tuner.apply(LATENCY)
    first = json.loads(tuner.journal.path.read_text())["originals"]
    again = tuner.apply(LATENCY)
    assert again.written == []
    assert json.loads(tuner.journal.path.read_text())["originals"] == first
    assert {o["value"] for o in first if o["key"].endswith("swappiness")} == {"60\n"}
    tuner.revert()
    assert (vm_board.proc_sys / "vm" / "swappiness").read_text() == "60\n"


@pytest.mark.unit
def test_switching_profiles_restores_what_only_the_old_one_changed(
    board: Roots, make_tuner: MakeTuner, user_dir: Path
) -> None:
    """Going from edge-latency to a profile without THP puts THP back; revert returns to the originals."""
    (user_dir / "swap-only.toml").write_text('[sysctl]\n"vm.swappiness" = 30\n')
    tuner = make_tuner(board)
    tuner.apply(LATENCY)
    report = tuner.apply("swap-only")
    thp = board.sys / "kernel/mm/transparent_hugepage/enabled"
    assert str(thp) in report.restored
    assert thp.read_text() == "madvise"
    assert (board.proc_sys / "vm/swappiness").read_text() == "30"
    assert (board.proc_sys / "vm/dirty_ratio").read_text() == "20\n"
    tuner.revert()
    assert (board.proc_sys / "vm/swappiness").read_text() == "60\n"


@pytest.mark.unit
def test_modifiers_only_raise_and_pick_available_alternatives(board: Roots, make_tuner: MakeTuner) -> None:
    """'>2048' keeps somaxconn 4096 but raises read-ahead 128; governor alternatives follow the driver."""
    steps = _by_label(make_tuner(board).plan("edge-throughput").steps)
    assert [(s.current, s.action) for s in steps["sysctl:net.core.somaxconn"]] == [("4096", "keep")]
    assert {(s.current, s.target, s.action) for s in steps["sysfs:/sys/block/*/queue/read_ahead_kb"]} == {
        ("128", "4096", "set")
    }
    assert len(steps["sysfs:/sys/block/*/queue/read_ahead_kb"]) == 2  # the glob matched both disks
    assert steps["sysfs:/sys/firmware/acpi/platform_profile"][0].action == "unsupported"
    policy0 = board.sys / "devices/system/cpu/cpufreq/policy0"
    (policy0 / "scaling_available_governors").write_text("performance powersave ondemand\n")
    (policy0 / "scaling_governor").write_text("performance\n")
    save = _by_label(make_tuner(board).plan("balanced").steps)["cpu:governor"]
    assert (save[0].target, save[1].action) == ("ondemand", "ok")  # schedutil is not offered by policy0


@pytest.fixture
def unwritable() -> Iterator[Callable[[Path], None]]:
    """Make a fixture file refuse writes, even from root: immutable (chattr +i) where the filesystem
    allows it, else a link to a kernel file that has no write handler."""
    locked: list[Path] = []

    def make(path: Path) -> None:
        chattr = shutil.which("chattr")
        if (
            chattr
            and subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False).returncode == 0
        ):
            locked.append(path)
            return
        path.unlink()
        path.symlink_to("/proc/version")

    yield make
    for path in locked:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.unit
def test_a_failed_write_rolls_back_everything(
    board: Roots, make_tuner: MakeTuner, unwritable: Callable[[Path], None]
) -> None:
    """All or nothing: a later write fails, every earlier one is undone, the error names the line."""
    base = _base(board)
    unwritable(board.sys / "devices/system/cpu/cpufreq/policy3/scaling_governor")
    before = snapshot(base)
    tuner = make_tuner(board)
    with pytest.raises(
        TuneWriteError, match=r"edge-latency\.toml:\d+: writing 'performance' to .* failed"
    ) as info:
        tuner.apply(LATENCY)
    assert "policy3/scaling_governor" in info.value.message
    assert info.value.fields["line"] == 14  # governor in edge-latency.toml
    assert "rolled back 8 earlier write(s)" in info.value.message  # 3 sysctls, 2 THP, 3 governors
    assert snapshot(base) == before
    assert not tuner.journal.path.exists()


@pytest.mark.unit
def test_crash_between_writes_is_recovered(board: Roots, make_tuner: MakeTuner) -> None:
    """An apply that dies after its first write leaves an 'applying' journal; recovery restores it."""

    class Crash(BaseException):
        pass

    def crash(step: Step) -> None:
        raise Crash(step.key)

    base = _base(board)
    before = snapshot(base)
    with pytest.raises(Crash):
        make_tuner(board, after_write=crash).apply(LATENCY)
    assert (board.proc_sys / "vm" / "swappiness").read_text() == "10"
    assert json.loads((make_tuner(board).journal.path).read_text())["state"] == "applying"
    status = make_tuner(board).status()  # any later apply/revert/status recovers first
    assert status.recovered is not None
    assert str(board.proc_sys / "vm" / "swappiness") in status.recovered.restored
    assert status.profile is None
    assert snapshot(base) == before


@pytest.mark.unit
def test_a_journal_from_another_boot_is_dropped(vm_board: Roots, make_tuner: MakeTuner) -> None:
    """After a reboot the journal describes a kernel that is gone: it is dropped, nothing is written."""
    tuner = make_tuner(vm_board)
    tuner.apply(LATENCY)
    (vm_board.proc_sys / "kernel/random/boot_id").write_text("another-boot\n")
    (vm_board.proc_sys / "vm/swappiness").write_text("61\n")
    rec = tuner.recover()
    assert rec is not None
    assert rec.stale_boot
    assert (vm_board.proc_sys / "vm/swappiness").read_text() == "61\n"
    assert tuner.status().profile is None


@pytest.mark.unit
def test_irq_affinity_moves_off_the_inference_cpus(
    board: Roots, make_tuner: MakeTuner, user_dir: Path
) -> None:
    """avoid_cpus takes CPUs out of every IRQ's list and of the default mask; revert puts them back."""
    (user_dir / "pin.toml").write_text(
        '[irq]\navoid_cpus = { value = "1", comment = "inference on CPU 1" }\n'
    )
    tuner = make_tuner(board)
    before = snapshot(_base(board))
    tuner.apply("pin")
    assert (board.proc_irq / "24" / "smp_affinity_list").read_text() == "0,2-3"
    assert (board.proc_irq / "default_smp_affinity").read_text() == "d"
    _, checks = tuner.verify()
    assert {c.verdict for c in checks} == {"passed"}
    tuner.revert()
    assert snapshot(_base(board)) == before


@pytest.mark.unit
def test_pm_qos_is_held_only_while_open(board: Roots, make_tuner: MakeTuner) -> None:
    """The latency limit is a hold: written to the device and kept while the object is open."""
    tuner = make_tuner(board)
    report = tuner.apply(LATENCY)
    assert [s.target for s in report.holds] == ["2"]
    holds = tuner.hold(report)
    assert read_latency(board.cpu_dma_latency) == 2
    assert all(h.held for h in holds)
    for h in holds:
        h.close()
    assert not holds[0].held
    with LatencyHold(board.cpu_dma_latency, 7) as h:
        assert h.held
        assert struct.unpack("=i", board.cpu_dma_latency.read_bytes())[0] == 7


@pytest.mark.unit
def test_boot_items_are_advice_and_never_written(vm_board: Roots, make_tuner: MakeTuner) -> None:
    """isolcpus is reported with needs-reboot; once on the command line it verifies as passed."""
    cmdline = vm_board.proc_cmdline.read_text()
    tuner = make_tuner(vm_board)
    tuner.apply(LATENCY)
    assert vm_board.proc_cmdline.read_text() == cmdline
    vm_board.proc_cmdline.write_text("ro isolcpus=managed_irq,domain,1-3 nohz_full=1-3\n")
    _, checks = tuner.verify()
    assert {c.verdict for c in checks if c.step.setting.knob == "boot"} == {"passed"}


@pytest.mark.unit
def test_tuned_running_is_refused_and_nothing_written(
    vm_board: Roots, make_tuner: MakeTuner, tmp_path: Path
) -> None:
    """With tuned's pid file naming a live process, apply refuses with a clear message."""
    proc = tmp_path / "fakeproc"
    (proc / "4242").mkdir(parents=True)
    run = tmp_path / "run-tuned"
    run.mkdir()
    (run / "tuned.pid").write_text("4242\n")
    before = snapshot(_base(vm_board))
    tuner = make_tuner(vm_board, tuned=SystemTunedDetector(proc=proc, run_dir=run, dbus_send=None))
    with pytest.raises(TunedActiveError, match=r"tuned is running .*tuned-adm profile"):
        tuner.apply(LATENCY)
    assert snapshot(_base(vm_board)) == before


@pytest.mark.unit
def test_tuned_detection_by_process_and_dbus(tmp_path: Path) -> None:
    """tuned is found by its process name, or by D-Bus name ownership through the injected runner."""
    import subprocess

    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "comm").write_text("python3\n")
    (proc / "77" / "cmdline").write_bytes(b"/usr/bin/python3\0-Es\0/usr/sbin/tuned\0-l\0")
    assert SystemTunedDetector(proc=proc, run_dir=tmp_path, dbus_send=None).running() == "process 77 is tuned"
    (proc / "77" / "cmdline").write_bytes(b"/usr/bin/python3\0app.py\0")
    assert SystemTunedDetector(proc=proc, run_dir=tmp_path, dbus_send=None).running() is None
    bus = tmp_path / "bus"
    bus.write_text("")
    calls: list[list[str]] = []

    def runner(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "method return\n   boolean true\n", "")

    found = SystemTunedDetector(
        proc=proc, run_dir=tmp_path, bus_socket=bus, dbus_send="sh", runner=runner
    ).running()
    assert found == "D-Bus name com.redhat.tuned is owned on the system bus"
    assert calls[0][-1] == "string:com.redhat.tuned"


@pytest.mark.unit
def test_a_corrupt_journal_is_a_clear_error(vm_board: Roots, make_tuner: MakeTuner) -> None:
    tuner = make_tuner(vm_board)
    tuner.journal.state_dir.mkdir(parents=True)
    tuner.journal.path.write_text("{not json")
    with pytest.raises(TuneStateError, match=r"journal .* cannot be read"):
        tuner.status()


@pytest.mark.unit
def test_verify_without_an_applied_profile_names_what_to_do(vm_board: Roots, make_tuner: MakeTuner) -> None:
    with pytest.raises(TuneStateError, match="no profile is applied"):
        make_tuner(vm_board).verify()
    name, checks = make_tuner(vm_board).verify("balanced")
    assert name == "balanced"
    assert {c.verdict for c in checks} == {"skipped"}


@pytest.mark.unit
def test_the_journal_holds_every_original_before_the_first_write(board: Roots, make_tuner: MakeTuner) -> None:
    """At the first write, the fsync'd journal already lists the original of every file the apply touches."""
    seen: list[dict[str, object]] = []

    def look(step: Step) -> None:
        del step
        seen.append(json.loads(tuner.journal.path.read_text()))

    tuner = make_tuner(board, after_write=look)
    report = tuner.apply(LATENCY)
    first = seen[0]
    assert first["state"] == "applying"
    originals = {o["key"]: o["value"] for o in first["originals"]}  # type: ignore[attr-defined]
    assert set(originals) == {s.key for s in report.written}
    assert originals[str(board.proc_sys / "vm" / "swappiness")] == "60\n"
    assert originals[str(board.sys / "kernel/mm/transparent_hugepage/enabled")] == "madvise"
    tuner.revert()


@pytest.mark.unit
def test_an_interrupted_revert_is_finished_by_recovery(board: Roots, make_tuner: MakeTuner) -> None:
    """A journal left in 'reverting' (a crash inside revert) is completed at the next start."""
    before = snapshot(_base(board))
    tuner = make_tuner(board)
    tuner.apply(LATENCY)
    state = tuner.journal.load()
    assert state is not None
    state.state = "reverting"
    tuner.journal.save(state)
    rec = make_tuner(board).recover()
    assert rec is not None
    assert rec.state == "reverting"
    assert rec.failed == []
    assert snapshot(_base(board)) == before
    assert make_tuner(board).recover() is None


@pytest.mark.unit
def test_a_failed_switch_leaves_the_previous_profile_in_force(
    board: Roots, make_tuner: MakeTuner, unwritable: Callable[[Path], None], user_dir: Path
) -> None:
    """Switching to a profile whose write fails keeps the old profile applied, with its journal."""
    (user_dir / "throttle.toml").write_text('[sysctl]\n"vm.swappiness" = 33\n[cpu]\ngovernor = "powersave"\n')
    tuner = make_tuner(board)
    tuner.apply(LATENCY)
    journal = tuner.journal.path.read_bytes()
    applied = snapshot(_base(board))
    unwritable(board.sys / "devices/system/cpu/cpufreq/policy1/scaling_governor")
    with pytest.raises(TuneWriteError, match=r"throttle\.toml:4: .*policy1/scaling_governor"):
        tuner.apply("throttle")
    assert snapshot(_base(board)) == applied
    assert tuner.journal.path.read_bytes() == journal
    assert tuner.status().profile == LATENCY


@pytest.mark.unit
def test_a_refused_irq_is_reported_not_rolled_back(
    board: Roots, make_tuner: MakeTuner, unwritable: Callable[[Path], None], user_dir: Path
) -> None:
    """A kernel-managed IRQ that refuses its affinity does not undo the others; verify skips it."""
    (user_dir / "pin.toml").write_text('[irq]\navoid_cpus = "3"\n')
    refusing = board.proc_irq / "25" / "smp_affinity_list"
    unwritable(refusing)
    tuner = make_tuner(board)
    report = tuner.apply("pin")
    assert [s.key for s, _ in report.refused] == [str(refusing)]
    assert (board.proc_irq / "24" / "smp_affinity_list").read_text() == "0-2"
    _, checks = tuner.verify()
    verdicts = {c.step.key: c.verdict for c in checks}
    assert verdicts[str(refusing)] == "skipped"
    assert set(verdicts.values()) == {"passed", "skipped"}
    saved = json.loads(tuner.journal.path.read_text())
    assert str(refusing) not in {o["key"] for o in saved["originals"]}
    assert saved["refused"] == [str(refusing)]
    assert tuner.revert().failed == []

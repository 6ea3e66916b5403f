"""The tuning engine: plan → persist originals → apply (all or nothing) → verify → revert / recover.

:class:`Tuner` is what the CLI and the device agent call. Every OS touch point (roots, the state
directory, the tuned detector, the knob plugins) is a constructor argument with the real default.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.tuning.errors import TunedActiveError, TuneProfileError, TuneStateError, TuneWriteError
from edgefleet.tuning.journal import Journal, JournalState, Original
from edgefleet.tuning.knob import Check, Knob, Step
from edgefleet.tuning.knobs import LatencyHold, PmQosKnob, default_knobs
from edgefleet.tuning.profile import Profile, ProfileStore
from edgefleet.tuning.roots import Roots
from edgefleet.tuning.tuned import SystemTunedDetector, TunedDetector

__all__ = ["ApplyReport", "Plan", "RecoveryReport", "RevertReport", "Status", "Tuner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    profile: Profile
    steps: tuple[Step, ...]

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.writes]


@dataclass(frozen=True)
class ApplyReport:
    plan: Plan
    written: list[Step]
    refused: list[tuple[Step, str]]
    restored: list[str]  # keys of a previous profile that this one does not set
    holds: list[Step]  # PM QoS steps: in force only while a LatencyHold is open
    recovered: RecoveryReport | None = None


@dataclass(frozen=True)
class RevertReport:
    profile: str | None
    restored: list[str]
    failed: list[tuple[str, str]] = field(default_factory=list)
    recovered: RecoveryReport | None = None


@dataclass(frozen=True)
class RecoveryReport:
    """What start-up recovery did with a journal left by an interrupted apply or revert."""

    profile: str
    state: str
    restored: list[str]
    failed: list[tuple[str, str]]
    stale_boot: bool = False


@dataclass(frozen=True)
class Status:
    profile: str | None
    state: str | None
    originals: int
    tuned: str | None
    journal: Path
    recovered: RecoveryReport | None = None


class Tuner:
    """Applies profiles to one machine (or one fixture tree)."""

    def __init__(
        self,
        *,
        state_dir: Path,
        store: ProfileStore,
        roots: Roots | None = None,
        knobs: Mapping[str, Knob] | None = None,
        tuned: TunedDetector | None = None,
        after_write: Callable[[Step], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.roots = roots or Roots()
        self.store = store
        self.journal = Journal(state_dir)
        self.knobs: Mapping[str, Knob] = knobs if knobs is not None else default_knobs(self.roots)
        self.tuned: TunedDetector = tuned if tuned is not None else SystemTunedDetector()
        self.after_write = after_write
        self.clock = clock

    # -- plan ---------------------------------------------------------------------------------

    def plan(self, name: str) -> Plan:
        """Read current values and decide every step; raises on any bad line before anything runs."""
        profile = self.store.load(name)
        problems: list[TuneProfileError] = []
        for s in profile.settings:
            knob = self.knobs.get(s.knob)
            why = f"no knob plugin {s.knob!r}" if knob is None else knob.validate(s)
            if why:
                problems.append(TuneProfileError(why, source=s.source, line=s.line, knob=s.label))
        if problems:
            problems.sort(key=lambda p: (str(p.fields["source"]), p.fields["line"] or 0))
            if len(problems) == 1:
                raise problems[0]
            err = TuneProfileError(f"{len(problems)} problems: " + "; ".join(p.message for p in problems))
            err.fields.update(source=problems[0].fields["source"], line=problems[0].fields["line"])
            raise err
        steps: list[Step] = []
        for s in profile.settings:
            steps.extend(self.knobs[s.knob].plan(s))
        return Plan(profile, tuple(steps))

    # -- apply --------------------------------------------------------------------------------

    def _refuse_if_tuned(self) -> None:
        why = self.tuned.running()
        if why:
            raise TunedActiveError(
                f"tuned is running ({why}); it owns these kernel settings, so edgefleet will not write them. "
                "Switch tuned's profile with `tuned-adm profile NAME` (see `edgefleet tune export`), "
                "or stop tuned first",
                reason=why,
            )

    def apply(self, name: str) -> ApplyReport:
        """Apply profile ``name``: all of its writes, or none of them.

        Originals are journaled before the first write; applying the same profile again writes
        nothing new and keeps the originals of the first apply. Switching from another profile
        restores the files only that profile had changed.
        """
        with self.journal.locked():
            self._refuse_if_tuned()
            recovered = self._recover_locked()
            plan = self.plan(name)
            before = self.journal.load()
            originals = {o.key: o for o in before.originals} if before else {}
            for step in plan.writes:
                if step.key not in originals and step.original is not None:
                    originals[step.key] = Original(
                        step.setting.knob, step.key, step.original, step.setting.label
                    )
            planned_keys = {s.key for s in plan.steps}
            stale = [o for o in originals.values() if o.key not in planned_keys]
            state = JournalState(
                profile=name,
                state="applying",
                boot_id=self.roots.boot_id(),
                originals=list(originals.values()),
                updated=self.clock(),
            )
            self.journal.save(state)
            written, refused = self._write_all(plan, before)
            restored: list[str] = []
            for o in reversed(stale):
                try:
                    self.knobs[o.knob].rollback(o.key, o.value)
                    restored.append(o.key)
                except OSError as exc:
                    log.warning("tune.restore_failed", extra={"key": o.key, "error": str(exc)})
            stale = [o for o in stale if o.key in restored]
            # a refused write changed nothing; writing the "original" back could be refused as well
            dropped = {o.key for o in stale} | (
                {s.key for s, _ in refused} - (before.keys() if before else set())
            )
            state.originals = [o for o in state.originals if o.key not in dropped]
            state.refused = [s.key for s, _ in refused]
            state.state = "applied"
            state.updated = self.clock()
            self.journal.save(state)
            holds = [s for s in plan.steps if s.action == "hold"]
            log.info(
                "tune.applied", extra={"profile": name, "written": len(written), "refused": len(refused)}
            )
            return ApplyReport(plan, written, refused, restored, holds, recovered)

    def _write_all(
        self, plan: Plan, before: JournalState | None
    ) -> tuple[list[Step], list[tuple[Step, str]]]:
        written: list[Step] = []
        refused: list[tuple[Step, str]] = []
        for step in plan.writes:
            try:
                self.knobs[step.setting.knob].apply(step)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                if step.best_effort:
                    refused.append((step, reason))
                    continue
                failed = self._undo(written)
                # when an undo failed, the 'applying' journal stays and recovery retries every original
                if not failed and before is not None:
                    self.journal.save(before)
                elif not failed:
                    self.journal.clear()
                s = step.setting
                raise TuneWriteError(
                    f"{s.source}:{s.line}: writing {step.target!r} to {step.key} ({s.label}) failed: "
                    f"{reason}; "
                    f"rolled back {len(written) - len(failed)} earlier write(s)"
                    + (f", could not restore {', '.join(k for k, _ in failed)}" if failed else ""),
                    key=step.key,
                    knob=s.label,
                    source=str(s.source),
                    line=s.line,
                    errno=errno.errorcode.get(exc.errno or 0, ""),
                ) from exc
            written.append(step)
            if self.after_write is not None:
                self.after_write(step)
        return written, refused

    def _undo(self, written: list[Step]) -> list[tuple[str, str]]:
        failed: list[tuple[str, str]] = []
        for step in reversed(written):
            if step.original is None:
                continue
            try:
                self.knobs[step.setting.knob].rollback(step.key, step.original)
            except OSError as exc:
                failed.append((step.key, str(exc)))
        return failed

    def hold(self, plan_or_report: Plan | ApplyReport) -> list[LatencyHold]:
        """Open the PM QoS holds of an applied profile; they last until closed (the agent keeps them)."""
        steps = plan_or_report.holds if isinstance(plan_or_report, ApplyReport) else plan_or_report.steps
        out: list[LatencyHold] = []
        for step in steps:
            knob = self.knobs[step.setting.knob]
            if step.action == "hold" and isinstance(knob, PmQosKnob):
                out.append(knob.hold(step))
        return out

    # -- verify, revert, status, recover ------------------------------------------------------

    def verify(self, name: str | None = None) -> tuple[str, list[Check]]:
        """Re-read every knob of ``name`` (default: the applied profile) and compare by tuned's rules."""
        with self.journal.locked():
            self._recover_locked()
            state = self.journal.load()
        if name is None:
            if state is None:
                raise TuneStateError(
                    "no profile is applied; name one: edgefleet tune verify NAME", code="tune.not_applied"
                )
            name = state.profile
        refused = set(state.refused) if state and state.profile == name else set()
        checks: list[Check] = []
        for step in self.plan(name).steps:
            if step.key in refused:
                checks.append(Check(step, "skipped", step.current, "the kernel refused this write at apply"))
            elif step.action == "hold":
                check = self.knobs[step.setting.knob].verify(step)
                if check.verdict == "failed":
                    check = Check(step, "advice", check.current, "not held: " + step.note)
                checks.append(check)
            else:
                checks.append(self.knobs[step.setting.knob].verify(step))
        return name, checks

    def revert(self) -> RevertReport:
        """Write back every original of the applied profile and drop the journal."""
        with self.journal.locked():
            recovered = self._recover_locked()
            state = self.journal.load()
            if state is None:
                return RevertReport(None, [], recovered=recovered)
            state.state = "reverting"
            self.journal.save(state)
            restored, failed = self._restore(state)
            return RevertReport(state.profile, restored, failed, recovered)

    def _restore(self, state: JournalState) -> tuple[list[str], list[tuple[str, str]]]:
        restored: list[str] = []
        failed: list[tuple[str, str]] = []
        for o in reversed(state.originals):
            try:
                self.knobs[o.knob].rollback(o.key, o.value)
                restored.append(o.key)
            except (OSError, KeyError) as exc:
                failed.append((o.key, str(exc)))
        if failed:
            state.originals = [o for o in state.originals if o.key in {k for k, _ in failed}]
            self.journal.save(state)
        else:
            self.journal.clear()
        return restored, failed

    def recover(self) -> RecoveryReport | None:
        """Finish what a crashed apply or revert left: write every original back. Safe to call always."""
        with self.journal.locked():
            return self._recover_locked()

    def _recover_locked(self) -> RecoveryReport | None:
        state = self.journal.load()
        if state is None:
            return None
        boot = self.roots.boot_id()
        if state.boot_id and boot and state.boot_id != boot:
            # The kernel that held these values is gone; writing old originals could undo boot-time config.
            self.journal.clear()
            return RecoveryReport(state.profile, state.state, [], [], stale_boot=True)
        if state.state == "applied":
            return None
        restored, failed = self._restore(state)
        log.warning("tune.recovered", extra={"profile": state.profile, "restored": len(restored)})
        return RecoveryReport(state.profile, state.state, restored, failed)

    def status(self) -> Status:
        with self.journal.locked():
            recovered = self._recover_locked()
            state = self.journal.load()
        return Status(
            profile=state.profile if state else None,
            state=state.state if state else None,
            originals=len(state.originals) if state else 0,
            tuned=self.tuned.running(),
            journal=self.journal.path,
            recovered=recovered,
        )

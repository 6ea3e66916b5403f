"""Keep many sandboxed workloads running: restarts with backoff, probes, usage, logs, adoption.

Each workload has a directory ``<state_dir>/workloads/<name>/`` holding ``workload.json`` (what to
run, written by :meth:`Supervisor.add`), the sandbox's ``state.json``/``exit.json`` and the
rotating ``output.log``. A new :class:`Supervisor` over the same ``state_dir`` (after the agent
restarted) adopts every workload whose cgroup still holds the recorded PID, instead of starting a
second copy, and records the exit of those that ended while it was away.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgefleet.errors import EdgefleetError
from edgefleet.sandbox.cgroups.base import Usage
from edgefleet.sandbox.errors import SandboxNotFoundError, WorkloadConflictError
from edgefleet.sandbox.launcher import Sandbox, SandboxProcess
from edgefleet.sandbox.logs import tail
from edgefleet.sandbox.report import RunReport
from edgefleet.sandbox.serialize import spec_from_dict, spec_to_dict
from edgefleet.sandbox.spec import SandboxSpec
from edgefleet.sandbox.supervisor.policy import RestartPolicy, RestartTracker
from edgefleet.sandbox.supervisor.probes import Probe, run_probe

__all__ = ["Supervisor", "Workload", "WorkloadState", "WorkloadStatus"]

WorkloadState = Literal["pending", "running", "backoff", "crash_loop", "exited", "stopped"]
_KEPT_EXITS = 10


@dataclass(frozen=True)
class Workload:
    """One supervised workload: the sandbox spec plus restart policy, probes, stop grace and logs."""

    spec: SandboxSpec
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    liveness: Probe | None = None
    readiness: Probe | None = None
    stop_grace_s: float = 10.0
    log_max_bytes: int = 1 << 20
    log_backups: int = 3
    strict: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = spec_to_dict(self.spec)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        probes = {k: Probe(**{**v, "command": tuple(v["command"])}) if v else None for k, v in data.items()
                  if k in {"liveness", "readiness"}}  # fmt: skip
        return cls(
            spec=spec_from_dict(data["spec"]),
            restart=RestartPolicy(**data["restart"]),
            liveness=probes["liveness"],
            readiness=probes["readiness"],
            stop_grace_s=data["stop_grace_s"],
            log_max_bytes=data["log_max_bytes"],
            log_backups=data["log_backups"],
            strict=data["strict"],
        )


@dataclass
class WorkloadStatus:
    """What a workload is doing now and how its last runs ended."""

    name: str
    state: WorkloadState
    pid: int | None = None
    adopted: bool = False
    restarts: int = 0
    ready: bool | None = None
    live: bool | None = None
    next_start_in_s: float | None = None
    last_error: str | None = None
    exits: list[RunReport] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    usage: Usage | None = None

    @property
    def last_exit(self) -> RunReport | None:
        return self.exits[-1] if self.exits else None


@dataclass
class _ProbeState:
    probe: Probe
    due: float
    failures: int = 0
    passed: bool | None = None


@dataclass
class _Entry:
    workload: Workload
    tracker: RestartTracker
    state: WorkloadState = "pending"
    process: SandboxProcess | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    restarts: int = 0
    adopted: bool = False
    stopping: bool = False
    probe_failed: str | None = None
    last_error: str | None = None
    exits: deque[RunReport] = field(default_factory=lambda: deque(maxlen=_KEPT_EXITS))
    starts: deque[float] = field(default_factory=lambda: deque(maxlen=_KEPT_EXITS))
    probes: dict[str, _ProbeState] = field(default_factory=dict)


class Supervisor:
    """Runs :class:`Workload` s in sandboxes and keeps them in their desired state.

    Call :meth:`tick` from your own loop, or :meth:`start` a background thread that does.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        sandbox: Sandbox | None = None,
        parent: str = "edgefleet",
        clock: Callable[[], float] = time.monotonic,
        probe_runner: Callable[[Probe], tuple[bool, str]] = run_probe,
        interval_s: float = 0.2,
    ) -> None:
        self.state_dir = state_dir
        self.sandbox = sandbox or Sandbox(run_dir=state_dir / "workloads", parent=parent)
        self._clock, self._probe, self._interval = clock, probe_runner, interval_s
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._adopt_all()

    # -- workloads -------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.sandbox.run_dir / name

    def add(self, workload: Workload) -> WorkloadStatus:
        """Record ``workload`` and start it now; a name already supervised is a conflict."""
        with self._lock:
            if workload.name in self._entries:
                raise WorkloadConflictError(
                    f"workload {workload.name!r} is already supervised", name=workload.name
                )
            self.sandbox.check(workload.spec, strict=workload.strict)
            wdir = self._dir(workload.name)
            wdir.mkdir(parents=True, exist_ok=True)
            (wdir / "workload.json").write_text(json.dumps(workload.to_dict()))
            entry = _Entry(workload, RestartTracker(workload.restart))
            self._entries[workload.name] = entry
            self._launch(entry)
            return self._status(entry)

    def remove(self, name: str, grace_s: float | None = None) -> RunReport | None:
        """Stop ``name`` (SIGTERM, grace, then kill the cgroup) and forget it; its final report."""
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None:
                raise SandboxNotFoundError(f"workload {name!r} is not supervised", name=name)
            report = self._stop(entry, grace_s)
            shutil.rmtree(self._dir(name), ignore_errors=True)
            return report

    def _stop(self, entry: _Entry, grace_s: float | None) -> RunReport | None:
        entry.stopping = True
        report = None
        if entry.process is not None:
            grace = entry.workload.stop_grace_s if grace_s is None else grace_s
            report = entry.process.stop(grace)
            entry.exits.append(report)
            entry.process = None
        entry.state = "stopped"
        return report

    def status(self, name: str) -> WorkloadStatus:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise SandboxNotFoundError(f"workload {name!r} is not supervised", name=name)
            return self._status(entry)

    def statuses(self) -> list[WorkloadStatus]:
        with self._lock:
            return [self._status(e) for e in self._entries.values()]

    def logs(self, name: str, lines: int = 50) -> list[str]:
        """The last ``lines`` lines the workload wrote (stdout and stderr), across rotations."""
        with self._lock:
            entry = self._entries.get(name)
            backups = entry.workload.log_backups if entry else 9
        return tail(self._dir(name) / "output.log", lines, backups)

    def _status(self, entry: _Entry) -> WorkloadStatus:
        now = self._clock()
        usage = None
        if entry.process is not None and entry.state == "running":
            with contextlib.suppress(OSError):
                usage = entry.process.usage()
        ready = entry.probes["readiness"].passed if "readiness" in entry.probes else None
        live = entry.probes["liveness"].passed if "liveness" in entry.probes else None
        return WorkloadStatus(
            name=entry.workload.name,
            state=entry.state,
            pid=entry.process.pid if entry.process is not None else None,
            adopted=entry.adopted,
            restarts=entry.restarts,
            ready=ready,
            live=live,
            next_start_in_s=max(0.0, entry.next_start - now) if entry.state == "backoff" else None,
            last_error=entry.last_error,
            exits=list(entry.exits),
            starts=list(entry.starts),
            usage=usage,
        )

    # -- the loop ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """One pass: collect exits, restart what is due, run due probes."""
        with self._lock:
            for entry in list(self._entries.values()):
                self._step(entry)

    def start(self) -> None:
        """Run :meth:`tick` every ``interval_s`` in a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="edgefleet-supervisor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._halt.wait(self._interval):
            self.tick()

    def close(self, *, stop_workloads: bool = False) -> None:
        """Stop the loop. Workloads keep running (to be adopted later) unless ``stop_workloads``."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if stop_workloads:
            with self._lock:
                for entry in self._entries.values():
                    self._stop(entry, None)

    def _step(self, entry: _Entry) -> None:
        now = self._clock()
        if entry.state == "running" and entry.process is not None:
            if entry.process.poll():
                self._exited(entry, entry.process.report())
                return
            self._run_probes(entry, now)
        elif entry.state in {"pending", "backoff"} and now >= entry.next_start:
            self._launch(entry)

    def _launch(self, entry: _Entry) -> None:
        wl = entry.workload
        log = (self._dir(wl.name) / "output.log", wl.log_max_bytes, wl.log_backups)
        try:
            entry.process = self.sandbox.start(wl.spec, strict=wl.strict, log=log)
        except EdgefleetError as exc:
            entry.last_error = exc.message
            entry.process = None
            self._schedule_restart(entry, ran_for=0.0)
            return
        now = self._clock()
        entry.state, entry.started_at, entry.probe_failed, entry.adopted = "running", now, None, False
        entry.starts.append(now)
        entry.probes = self._fresh_probes(wl, now)

    @staticmethod
    def _fresh_probes(wl: Workload, now: float) -> dict[str, _ProbeState]:
        out = {}
        for kind, probe in (("liveness", wl.liveness), ("readiness", wl.readiness)):
            if probe is not None:
                out[kind] = _ProbeState(probe, now + probe.initial_delay_s)
        return out

    def _run_probes(self, entry: _Entry, now: float) -> None:
        for kind, ps in entry.probes.items():
            if now < ps.due:
                continue
            ok, detail = self._probe(ps.probe)
            ps.due = now + ps.probe.period_s
            if ok:
                ps.failures, ps.passed = 0, True
                continue
            ps.failures += 1
            if ps.failures >= ps.probe.failure_threshold:
                ps.passed = False
                if kind == "liveness" and entry.process is not None:
                    entry.probe_failed = f"liveness probe failed {ps.failures} times: {detail}"
                    report = entry.process.stop(entry.workload.stop_grace_s)
                    report.reason = "probe_failed"
                    report.error = entry.probe_failed
                    self._exited(entry, report)
                    return

    def _exited(self, entry: _Entry, report: RunReport) -> None:
        entry.exits.append(report)
        entry.process = None
        if entry.stopping:
            entry.state = "stopped"
        elif entry.workload.restart.wants_restart(report):
            self._schedule_restart(entry, ran_for=self._clock() - entry.started_at)
        else:
            entry.state = "exited"

    def _schedule_restart(self, entry: _Entry, ran_for: float) -> None:
        now = self._clock()
        delay = entry.tracker.next_delay(now, ran_for)
        if delay is None:
            entry.state = "crash_loop"
            entry.last_error = (
                f"crash loop: more than {entry.workload.restart.crash_loop_restarts} restarts within "
                f"{entry.workload.restart.crash_loop_window_s:g} s; not restarting"
            )
            return
        entry.state, entry.next_start = "backoff", now + delay
        entry.restarts += 1

    # -- adoption ----------------------------------------------------------------------------------

    def _adopt_all(self) -> None:
        with contextlib.suppress(OSError):
            for wdir in sorted(self.sandbox.run_dir.iterdir()):
                config = wdir / "workload.json"
                if config.exists():
                    self._adopt(Workload.from_dict(json.loads(config.read_text())))

    def _adopt(self, workload: Workload) -> None:
        entry = _Entry(workload, RestartTracker(workload.restart))
        self._entries[workload.name] = entry
        process = self.sandbox.adopt(workload.name)
        now = self._clock()
        if process is None:
            # gone without a trace, or its start was cut short before the launch record: start it again
            self.sandbox.discard_torn(workload.name)
            entry.state, entry.next_start = "pending", now
            return
        entry.process, entry.adopted = process, True
        entry.started_at = now - max(0.0, time.time() - process.started)
        entry.state = "running"
        entry.probes = self._fresh_probes(workload, now)
        if process.poll():  # it ended while nobody watched: record how, then apply the policy
            self._exited(entry, process.report())

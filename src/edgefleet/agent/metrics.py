"""The agent's metrics: the agent itself, the device, and every workload it runs.

One function, :func:`collect`, builds the families at scrape (or push) time from the agent's
state; ``/metrics`` renders them (:func:`edgefleet.agent.exposition.render`) and remote-write
sends the same samples (:mod:`edgefleet.agent.remote`). Names follow
:func:`edgefleet.telemetry.metrics.metric_name`; the list is in docs/agent.md.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet import __version__
from edgefleet.agent.exposition import Family
from edgefleet.errors import EdgefleetError
from edgefleet.telemetry.metrics import metric_name

if TYPE_CHECKING:
    from edgefleet.agent.agent import Agent

__all__ = ["WORKLOAD_STATES", "AgentStats", "collect"]

WORKLOAD_STATES = ("pending", "running", "backoff", "crash_loop", "exited", "stopped")


@dataclass
class AgentStats:
    """Counters the agent's loops bump; read at scrape time."""

    reconciles: dict[str, int] = field(default_factory=lambda: {"ok": 0, "retry": 0, "error": 0})
    last_reconcile_s: float | None = None
    last_reconcile_at: float | None = None
    remote_writes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "error": 0})
    _ooms: dict[str, tuple[list[Any], int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reconciled(self, result: str, seconds: float) -> None:
        with self._lock:
            self.reconciles[result] = self.reconciles.get(result, 0) + 1
            self.last_reconcile_s = seconds
            self.last_reconcile_at = time.time()

    def ooms(self, sandbox: str, exits: list[Any]) -> int:
        """OOM kills of ``sandbox`` since the agent started: exit reports not seen before are added
        (the supervisor keeps the last ten, so this counts right when scraped at least every ten exits)."""
        with self._lock:
            seen, total = self._ooms.get(sandbox, ([], 0))
            new = [e for e in exits if not any(e is s for s in seen)]
            total += sum(1 for e in new if getattr(e, "oom_killed", False))
            self._ooms[sandbox] = (list(exits), total)
            return total


def _g(what: str, unit: str | None, help_: str, area: str = "agent") -> Family:
    return Family(metric_name(area, what, unit), "gauge", help_)


def _c(what: str, unit: str | None, help_: str, area: str = "agent") -> Family:
    return Family(metric_name(area, what, unit, counter=True), "counter", help_)


def _agent(agent: Agent, st: dict[str, Any]) -> list[Family]:
    stats = agent.stats
    fams = [
        _g("up", None, "The agent process runs").add(1),
        _g("build", "info", "The agent's edgefleet version").add(1, version=__version__),
        _g("server_reachable", None, "1 when the last call to the control plane succeeded").add(
            1 if st["server_reachable"] else 0
        ),
        _g("revision", None, "Desired-state revision: received (desired) and reached")
        .add(st["desired_revision"], kind="desired")
        .add(st["reached_revision"], kind="reached"),
        _c("polls", None, "Desired-state polls answered").add(st["polls"]),
        _c("reports", None, "Reports delivered to the control plane").add(st["reports"]),
        _c("reconciles", None, "Reconcile passes over a new desired state, by result"),
        _c("updates", None, "Workload updates by result"),
        _g("outbox_events", None, "Events waiting for delivery").add(st["outbox"]["queued"]),
        _c("outbox_dropped", None, "Events dropped because the outbox was full").add(st["outbox"]["dropped"]),
    ]
    for result, n in stats.reconciles.items():
        fams[6].add(n, result=result)
    for result, n in st["updates"].items():
        fams[7].add(n, result=result)
    if stats.last_reconcile_s is not None:
        fams.append(_g("last_reconcile_duration", "seconds", "How long the last reconcile pass took"))
        fams[-1].add(stats.last_reconcile_s)
    if stats.last_reconcile_at is not None:
        fams.append(_g("last_reconcile_timestamp", "seconds", "When the last reconcile pass ended (Unix)"))
        fams[-1].add(stats.last_reconcile_at)
    logs = agent.logs.stats()
    fams += [
        _g("log_buffer", "bytes", "Compressed log batches waiting for delivery, on disk").add(logs["bytes"]),
        _g("log_buffer_lines", None, "Log lines waiting for delivery").add(logs["lines"]),
        _c("log_lines", None, "Log lines collected (agent and workloads)").add(logs["collected"]),
        _c("log_shipped_lines", None, "Log lines delivered to the control plane").add(logs["shipped"]),
        _c("log_dropped_lines", None, "Log lines dropped because the buffer was full").add(logs["dropped"]),
    ]
    rw = _c("remote_writes", None, "Remote-write pushes by result")
    for result, n in stats.remote_writes.items():
        rw.add(n, result=result)
    fams.append(rw)
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        fams.append(
            _g("rss", "bytes", "Resident memory of the agent").add(pages * os.sysconf("SC_PAGE_SIZE"))
        )
    return fams


def _workloads(agent: Agent, st: dict[str, Any]) -> list[Family]:
    up = _g("up", None, "1 when the workload's process runs", "workload")
    ready = _g("ready", None, "1 when the readiness probe passes", "workload")
    state = _g("state", None, "1 for the supervisor state the workload is in", "workload")
    restarts = _c("restarts", None, "Restarts by the supervisor since the agent started", "workload")
    ooms = _c("ooms", None, "Runs ended by the kernel's OOM killer since the agent started", "workload")
    cpu = _c("cpu", "seconds", "CPU time of the workload's cgroup (current run)", "workload")
    throttled = _c("cpu_throttled", "seconds", "Time the cgroup was throttled (current run)", "workload")
    memory = _g("memory", "bytes", "Memory the workload's cgroup uses", "workload")
    pids = _g("pids", None, "Processes and threads in the workload's cgroup", "workload")
    sup = agent.supervisor
    for w in st["workloads"]:
        lab = {"deployment": w["deployment"], "version": w["version"]}
        current = w.get("state", "pending")
        up.add(1 if current == "running" else 0, **lab)
        ready.add(1 if w.get("ready") else 0, **lab)
        for s in WORKLOAD_STATES:
            state.add(1 if s == current else 0, **lab, state=s)
        restarts.add(w.get("restarts", 0), **lab)
        if sup is None:
            continue
        with contextlib.suppress(EdgefleetError):
            ws = sup.status(w["sandbox"])
            ooms.add(agent.stats.ooms(w["sandbox"], ws.exits), **lab)
            u = ws.usage
            if u is None:
                continue
            for fam, val in (
                (cpu, u.cpu_time_s),
                (throttled, u.cpu_throttled_s),
                (memory, u.memory_current),
                (pids, u.pids_current),
            ):
                if val is not None:
                    fam.add(float(val), **lab)
    return [up, ready, state, restarts, ooms, cpu, throttled, memory, pids]


def collect(agent: Agent) -> list[Family]:
    """Every family the agent exports now (families with no sample are left out)."""
    st = agent.status()
    fams = _agent(agent, st) + agent.device_metrics.collect() + _workloads(agent, st)
    return [f for f in fams if f.samples]

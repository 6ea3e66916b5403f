"""SIGKILL of a serving process under load: the supervisor restarts it, requests fail only in the gap."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from edgefleet.testing.faults import Trials, kill, trial_count
from tests.integration.agent.conftest import AgentProc, Fleet, make_bundle, new_agent, serving, workload_of

pytestmark = pytest.mark.integration

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 4}]}


@dataclass
class Load:
    """Closed-loop load on one port: every request's send time, end time and whether it succeeded."""

    port: int
    log: list[tuple[float, float, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        url = f"http://127.0.0.1:{self.port}/v2/models/det/infer"
        with httpx.Client(timeout=2.0) as client:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    ok = client.post(url, json=BODY).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.log.append((t0, time.monotonic(), ok))
                if not ok:
                    time.sleep(0.005)


def _serve_pid(port: int) -> int:
    """The ``edgefleet serve`` process listening on ``port`` (its pid in this namespace)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and b"--http-port" in argv and str(port).encode() in argv:
            return int(proc.name)
    raise AssertionError(f"no serve process with --http-port {port}")


N = trial_count(quick=1, full=10)


@pytest.mark.timeout(300 + 90 * N)
def test_serving_process_sigkill_under_load(tmp_path: Path, fleet: Fleet, agents: list[AgentProc]) -> None:
    n = N
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    a.wait(lambda s: s["polls"] > 0, 90, "enrollment")
    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 120, "serving")
    port = int(workload_of(st, "det")["http_port"])  # type: ignore[index]

    notes = (
        "a model served by the agent's sandboxed supervisor under closed-loop HTTP load (one client, "
        "requests back to back); SIGKILL of the edgefleet serve process at a random moment; the "
        "supervisor restarts it (restart policy on-failure: 1 s back-off for a first failure, doubling "
        "for failures less than 60 s apart; 3 restarts in 120 s is a crash loop). Kills are spaced 65 s "
        "apart, so each is a first failure. Gap: from the kill to the first successful request after "
        "it. Data lost: requests that failed outside the gap (the goal is 0)."
    )
    last_kill = 0.0
    with Trials("serving process SIGKILL under load", planned=n, notes=notes) as trials:
        for _ in range(n):
            with trials.trial() as t:
                time.sleep(max(0.0, last_kill + 65.0 - time.monotonic()) if trials.done else 0.0)
                a.wait(lambda s: bool((workload_of(s, "det") or {}).get("ready")), 120, "ready")
                load = Load(port)
                thread = threading.Thread(target=load.run, daemon=True)
                thread.start()
                try:
                    time.sleep(1.0 + trials.rng.uniform(0.0, 2.0))
                    pid = _serve_pid(port)
                    t_kill = time.monotonic()
                    kill(pid)
                    last_kill = t_kill
                    end = time.monotonic() + 120
                    while time.monotonic() < end:  # until requests succeed again, then a little more
                        back = [r for r in load.log if r[0] > t_kill and r[2]]
                        if back and time.monotonic() - back[0][1] > 2.0:
                            break
                        time.sleep(0.1)
                finally:
                    load.stop.set()
                    thread.join(timeout=10)
                ok_after = [r for r in load.log if r[0] > t_kill and r[2]]
                assert ok_after, "the serving process did not come back within 120 s"
                recovered = ok_after[0][1]
                before = [r for r in load.log if r[1] < t_kill]
                outside = [r for r in load.log if not r[2] and (r[1] < t_kill or r[0] > recovered)]
                failed = [r for r in load.log if not r[2]]
                assert before, "no request before the kill"
                assert all(r[2] for r in before), "requests failed before the kill"
                t.measure("gap_s", recovered - t_kill)
                t.measure("failed_requests", len(failed))
                t.data_lost = len(outside)
                assert not outside, f"{len(outside)} requests failed outside the gap"
                assert _serve_pid(port) != pid
                t.outcome = "restarted by the supervisor; requests failed only in the gap"

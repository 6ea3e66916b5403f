"""SIGKILL of the agent at a random moment of an update: the device ends on the old or the new version,
serving all along, with one sandbox and nothing half-installed left behind."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from edgefleet.testing.faults import Trials, trial_count
from tests.faults.conftest import sandboxes, state_of
from tests.integration.agent.conftest import AgentProc, Fleet, infer, make_bundle, new_agent, serving

pytestmark = pytest.mark.integration

# three versions in a cycle: the store keeps the current and the previous bundle, so every update
# downloads and installs (the garbage-collected third one comes back over the network)
VERSIONS = (("1.0.0", 2.0), ("2.0.0", 3.0), ("3.0.0", 4.0))


def _leftovers(state: Path) -> list[str]:
    """What an interrupted install or download may leave: ``bundles/.tmp-*``, ``downloads/*``."""
    out = [p.name for p in (state / "bundles").glob(".tmp-*")]
    out += [p.name for p in (state / "downloads").glob("*")] if (state / "downloads").is_dir() else []
    return sorted(out)


def _serving_while_agent_dead(state: Path, scales: set[float]) -> tuple[float, int]:
    """The workload ``state.json`` names answers with one of ``scales``; (its scale, requests that failed)."""
    st = state_of(state)
    w = st["workloads"]["det"]
    failed, got = 0, None
    for _ in range(5):
        try:
            got = infer(int(w["http_port"]))[0]
        except httpx.HTTPError:
            failed += 1
            time.sleep(0.2)
    assert got in scales, f"workload of state.json answered {got}, expected one of {sorted(scales)}"
    return got, failed


def _staged_unrecorded(state: Path) -> bool:
    """The recorded workload's model repository holds a version ``state.json`` does not record yet
    (a hot reload staged and loaded it; the switch that records it had not happened)."""
    w = state_of(state)["workloads"]["det"]
    versions = {p.name for p in (Path(w["repo"]) / w["model_name"]).iterdir() if p.name.isdigit()}
    return bool(versions - {str(w["model_version"])})


N = trial_count(quick=3, full=100)


@pytest.mark.timeout(300 + 90 * N)
def test_agent_sigkill_at_random_points_of_an_update(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    n = N
    for version, scale in VERSIONS:
        fleet.upload(make_bundle(tmp_path, "det", version, scale=scale))
    a = new_agent(tmp_path, fleet, agents)
    a.start("--health-window", "1")
    a.wait(lambda s: s["polls"] > 0, 90, "enrollment")
    a.join = None
    fleet.deploy("det", VERSIONS[0][0])
    a.wait(lambda s: serving(s, "det", VERSIONS[0][0]) and not s["in_progress"], 120, "first version")

    # one update without a fault: how long updates take here, so kills land anywhere inside one
    t0 = time.monotonic()
    fleet.deploy("det", VERSIONS[1][0])
    a.wait(lambda s: serving(s, "det", VERSIONS[1][0]) and not s["in_progress"], 120, "timing update")
    span = time.monotonic() - t0
    current = 1

    notes = (
        "one agent, three bundle versions in a cycle (each update downloads, verifies, installs, hot "
        "reloads the model in the running serve, waits out readiness and a 1 s health window, switches); "
        "SIGKILL at a uniform random time in [0, 1.3 x one update's duration] after the deploy (update "
        f"measured at {span:.1f} s); while the agent is dead the workload state.json names must answer, "
        "with the recorded model or (a hot reload cut short between serve's swap and the switch, the new "
        "version staged but unrecorded) the new one; after a restart the device serves the old or new "
        "version, then reaches the new one with exactly one sandbox and no .tmp-*/download leftovers. "
        "Data lost: inference requests that failed while the agent was dead."
    )
    with Trials("agent SIGKILL at a random point of an update", planned=n, notes=notes) as trials:
        for _ in range(n):
            with trials.trial() as t:
                old_v, old_s = VERSIONS[current]
                current = (current + 1) % len(VERSIONS)
                new_v, new_s = VERSIONS[current]
                delay = trials.rng.uniform(0.0, span * 1.5)
                fleet.deploy("det", new_v)
                time.sleep(delay)
                try:  # what the agent was doing (its status socket answers in milliseconds)
                    seen = a.status()
                    step = seen["in_progress"].get("det")
                    phase = (
                        f"while {step}"
                        if step
                        else (
                            "after the switch" if serving(seen, "det", new_v) else "before the update began"
                        )
                    )
                except Exception:  # noqa: BLE001 - busy: the kill goes ahead all the same
                    phase = "(status did not answer)"
                a.kill()
                t.measure("kill_after_s", delay)
                on_disk = state_of(a.state)["workloads"]["det"]["version"]
                assert on_disk in (old_v, new_v), on_disk
                scale, failed = _serving_while_agent_dead(a.state, {old_s, new_s})
                early = scale != (old_s if on_disk == old_v else new_s)
                if early:  # only a hot reload cut short between serve's swap and the switch
                    assert on_disk == old_v, (on_disk, scale)
                    assert scale == new_s, (on_disk, scale)
                    assert _staged_unrecorded(a.state), "the recorded workload serves an unrecorded model"
                t.data_lost = failed

                a.start("--health-window", "1")
                st = a.wait(
                    lambda s, o=old_v, v=new_v: serving(s, "det", o) or serving(s, "det", v), 120, "serving"
                )
                t.outcome = f"killed {phase}: " + (
                    "new model already swapped in by serve, old version recorded and put back at restart, "
                    "new one reached"
                    if early
                    else "old version kept serving, new one reached after restart"
                    if on_disk == old_v
                    else "new version serving"
                )
                st = a.wait(
                    lambda s, v=new_v: serving(s, "det", v) and not s["in_progress"], 180, "new version"
                )
                w = next(w for w in st["workloads"] if w["deployment"] == "det")
                assert infer(w["http_port"])[0] == new_s
                end = time.monotonic() + 30
                while sandboxes(a.state, a.prefix) != [w["sandbox"]] and time.monotonic() < end:
                    time.sleep(0.3)
                assert sandboxes(a.state, a.prefix) == [w["sandbox"]]
                assert _leftovers(a.state) == [], _leftovers(a.state)

"""Corrupted bytes in the agent's local bundle store: detected before the bundle is started again,
removed and downloaded again; the device serves the right model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgefleet.bundle.store import BundleStore
from edgefleet.sandbox.supervisor import Supervisor
from edgefleet.testing.faults import Trial, Trials, trial_count
from tests.faults.conftest import state_of
from tests.integration.agent.conftest import (
    AgentProc,
    Fleet,
    infer,
    make_bundle,
    new_agent,
    serving,
    workload_of,
)

pytestmark = pytest.mark.integration

SCALE = {"1.0.0": 2.0, "2.0.0": 3.0}


def _corrupt(bundle_dir: Path, trials: Trials) -> str:
    """Flip one byte of one file of an installed bundle; returns which file."""
    files = sorted(p for p in bundle_dir.rglob("*") if p.is_file())
    victim = trials.rng.choice(files)
    data = bytearray(victim.read_bytes())
    at = trials.rng.randrange(len(data))
    data[at] ^= trials.rng.randrange(1, 256)
    victim.write_bytes(bytes(data))
    return victim.name


def _reboot(a: AgentProc) -> None:
    """The agent stops and its sandboxes go (a power cut); it starts again from disk."""
    a.stop()
    sup = Supervisor(a.state / "supervisor", parent=a.prefix)
    for st in sup.statuses():
        sup.remove(st.name, grace_s=2.0)
    sup.close()
    a.start()


N = trial_count(quick=1, full=15)


@pytest.mark.timeout(300 + 120 * N)
def test_damaged_bundle_in_the_store_is_detected_and_fetched_again(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    n = N
    for version, scale in SCALE.items():
        fleet.upload(make_bundle(tmp_path, "det", version, scale=scale))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    dev = a.wait(lambda s: s["polls"] > 0, 90, "enrollment")["device_id"]
    a.join = None
    for version in SCALE:  # the store holds both: the running one and the one to roll back to
        fleet.deploy("det", version)
        a.wait(lambda s, v=version: serving(s, "det", v) and not s["in_progress"], 120, version)
    current, previous = "2.0.0", "1.0.0"
    notes = (
        "one agent holding two installed bundles (the running one and the one kept for rollback); one "
        "byte of a random file (model or bundle.json) at a random offset is flipped, then either the "
        "device reboots (agent stopped, sandboxes gone, agent started: the running bundle is started "
        "from disk) or the previous version is deployed again (the kept bundle is reused). Checked: "
        "the damage is detected before anything starts (a bundle_damaged event reaches the server), "
        "the bundle is downloaded again and verifies, the right model answers. Data lost: trials where "
        "a damaged model was started."
    )
    with Trials("corrupted bytes in the local bundle store", planned=n, notes=notes) as trials:
        for _ in range(n):
            with trials.trial() as t:
                _one(a, fleet, dev, trials, t, current=current, previous=previous)
                if t.outcome.startswith("rollback"):
                    current, previous = previous, current


def _one(
    a: AgentProc, fleet: Fleet, dev: str, trials: Trials, t: Trial, *, current: str, previous: str
) -> None:
    st = state_of(a.state)
    shas = {st["workloads"]["det"]["version"]: st["workloads"]["det"]["sha256"]}
    shas |= {st["previous"]["det"]["version"]: st["previous"]["det"]["sha256"]}
    before = len([e for e in fleet.events(dev) if e["kind"] == "bundle_damaged"])
    scenario = trials.rng.choice(("reboot", "rollback"))
    target = current if scenario == "reboot" else previous
    victim = _corrupt(a.state / "bundles" / shas[target], trials)
    t0 = time.monotonic()
    if scenario == "reboot":
        _reboot(a)
    else:
        fleet.deploy("det", target)
    st = a.wait(lambda s: serving(s, "det", target) and not s["in_progress"], 180, f"{target} serving")
    t.measure("recovered_after_s", time.monotonic() - t0)
    got = infer(int(workload_of(st, "det")["http_port"]))[0]  # type: ignore[index]
    t.data_lost = int(got != SCALE[target])
    assert got == SCALE[target], f"{target} answered {got}: a damaged model runs"
    BundleStore(a.state / "bundles").verify(shas[target])  # the bytes on disk are right again
    a.wait(lambda s: s["outbox"]["queued"] == 0, 60, "events delivered")
    damaged = [e for e in fleet.events(dev) if e["kind"] == "bundle_damaged"]
    assert len(damaged) == before + 1, damaged
    kind = "model" if victim != "bundle.json" else "bundle.json"
    t.outcome = f"{scenario}: damaged {kind} detected, fetched again, right model serving"

"""The agent's state directory fills up (a small tmpfs): a clear error, the old version keeps serving,
the update goes through once space comes back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgefleet.testing.faults import Trials, fill, tmpfs, trial_count
from edgefleet.testing.require import require
from tests.integration.agent.conftest import (
    AgentProc,
    Fleet,
    infer,
    make_bundle,
    serving,
    workload_of,
)

pytestmark = pytest.mark.integration

VERSIONS = (("1.0.0", 2.0), ("2.0.0", 3.0))


N = trial_count(quick=1, full=8)


@pytest.mark.timeout(300 + 120 * N)
def test_disk_full_in_the_agent_state_directory(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    require(os.geteuid() == 0, "root (mounting a tmpfs)")
    n = N
    for version, scale in VERSIONS:
        fleet.upload(make_bundle(tmp_path, "det", version, scale=scale))
    notes = (
        "the agent's state directory is a 16 MiB tmpfs; with one version serving, the filesystem is "
        "filled to the last byte and the next version is deployed, left so for a random 3-8 s, then "
        "space is freed. Checked: the agent keeps running and says why (status last_error names the "
        "full disk), the old version answers all along, the new version is reached after space "
        "returns, and the events queued meanwhile reach the server. Data lost: events dropped."
    )
    with Trials("disk full in the agent state directory", planned=n, notes=notes) as trials:
        for i in range(n):
            with trials.trial() as t:
                mount = tmp_path / f"state-{i}"
                with tmpfs(mount, "16m"):
                    import uuid

                    prefix = "efa" + uuid.uuid4().hex[:8]
                    a = AgentProc(mount / "agent", fleet, join=fleet.join_token(), prefix=prefix)
                    a.log = tmp_path / f"agent-{prefix}.log"
                    agents.append(a)
                    try:
                        _one_trial(a, fleet, trials, t, label=f"trial{i}")
                    finally:
                        a.stop()
                        from edgefleet.sandbox.supervisor import Supervisor

                        sup = Supervisor(a.state / "supervisor", parent=a.prefix)
                        for st in sup.statuses():
                            sup.remove(st.name, grace_s=2.0)
                        sup.close()
                        agents.remove(a)


def _one_trial(a: AgentProc, fleet: Fleet, trials: Trials, t: object, *, label: str) -> None:
    """One device (an agent on its own tmpfs), its own label: earlier trials' devices are gone."""
    from edgefleet.testing.faults import Trial

    assert isinstance(t, Trial)
    a.start("--label", f"fault={label}")
    dev = a.wait(lambda s: s["polls"] > 0, 90, "enrollment")["device_id"]
    a.join = None
    fleet.deploy("det", VERSIONS[0][0], selector=f"fault={label}")
    st = a.wait(lambda s: serving(s, "det", VERSIONS[0][0]) and not s["in_progress"], 120, "old version")
    port = int(workload_of(st, "det")["http_port"])  # type: ignore[index]
    a.wait(lambda s: s["outbox"]["queued"] == 0, 60, "events delivered")

    filler = fill(a.state)
    fleet.deploy("det", VERSIONS[1][0], selector=f"fault={label}")
    full_for = trials.rng.uniform(3.0, 8.0)
    end = time.monotonic() + full_for
    while time.monotonic() < end:
        assert infer(port)[0] == VERSIONS[0][1], "the old version stopped answering"
        assert a.p is not None
        assert a.p.poll() is None, f"agent exited: {a.log.read_text()[-2000:]}"
        time.sleep(0.3)
    st = a.wait(lambda s: "space" in str(s.get("last_error") or "").lower(), 60, "a clear error")
    code = str(st["last_error"]).rpartition("[")[2].rstrip("]")
    t.outcome = f"clear error [{code}]; old version kept serving; new version once space returned"
    assert workload_of(st, "det")["version"] == VERSIONS[0][0]  # type: ignore[index]
    filler.unlink()
    t.measure("full_for_s", full_for)
    t0 = time.monotonic()
    st = a.wait(lambda s: serving(s, "det", VERSIONS[1][0]) and not s["in_progress"], 180, "new version")
    t.measure("recovered_after_s", time.monotonic() - t0)
    assert infer(int(workload_of(st, "det")["http_port"]))[0] == VERSIONS[1][1]  # type: ignore[index]
    st = a.wait(lambda s: s["outbox"]["queued"] == 0, 60, "events delivered")
    t.data_lost = int(st["outbox"]["dropped"])
    kinds = [e["kind"] for e in fleet.events(dev)]
    assert "updated" in kinds, kinds

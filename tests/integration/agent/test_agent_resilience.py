"""Offline autonomy, restarts from disk, SIGKILL in the middle of an update, tampered bundles."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from edgefleet.sandbox.supervisor import Supervisor
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


def test_agent_offline_keeps_serving_restarts_from_disk_and_delivers_later(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    dev = a.wait(lambda s: s["polls"] > 0, 60, "enrollment")["device_id"]
    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")

    fleet.server.stop()  # the server goes away: the workload keeps serving, events are buffered
    st = a.wait(lambda s: s["server_reachable"] is False and s["outbox"]["queued"] > 0, 30, "offline")
    assert infer(workload_of(st, "det")["http_port"]) == [2.0] * 4

    a.stop()  # an agent restart with no server, after the workload's sandbox is gone too (a reboot)
    sup = Supervisor(a.state / "supervisor", parent=a.prefix)
    for w in sup.statuses():
        sup.remove(w.name, grace_s=2.0)
    sup.close()
    a.join = None  # later starts need no token
    a.start(cli=True)
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 back from disk, offline")
    assert st["server_reachable"] is not True
    assert infer(workload_of(st, "det")["http_port"]) == [2.0] * 4

    fleet.server.start()  # back: the buffered events arrive
    a.wait(lambda s: s["server_reachable"] is True and s["outbox"]["queued"] == 0, 60, "delivered")
    kinds = [e["kind"] for e in fleet.events(dev)]
    assert "server_unreachable" in kinds, kinds
    assert fleet.device(dev)["reported_revision"] is not None


BLUE_GREEN_STEPS = (
    "downloading",
    "verifying",
    "unpacking",
    "staging",
    "starting",
    "health_window",
    "switching",
    "cleanup",
)
HOT_RELOAD_STEPS = ("staging", "reloading", "health_window", "switching", "cleanup")


@pytest.mark.parametrize(
    ("how", "step"),
    [("blue_green", s) for s in BLUE_GREEN_STEPS] + [("hot_reload", s) for s in HOT_RELOAD_STEPS],
)
def test_agent_sigkill_at_each_step_of_an_update_leaves_old_or_new_serving(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc], how: str, step: str
) -> None:
    """SIGKILL (a failpoint) at one step of an update: while the agent is dead the recorded version
    serves; after a restart old or new serves at once, then the new one, with nothing left over."""
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    fleet.upload(make_bundle(tmp_path, "det", "2.0.0", scale=3.0))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    a.wait(lambda s: s["polls"] > 0, 60, "enrollment")
    fleet.deploy("det", "1.0.0")
    a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")
    a.stop()
    a.join = None
    a.start("--failpoint", step)
    a.wait(lambda s: s["polls"] > 0, 60, "restarted")
    fleet.deploy("det", "2.0.0", **({"resources": {"pids": 4096}} if how == "blue_green" else {}))
    assert a.p is not None
    assert a.p.wait(timeout=120) == -signal.SIGKILL, a.log.read_text()[-2000:]
    assert f'"step": "{step}"' in a.log.read_text() or step in {"verifying", "unpacking"}

    recorded = json.loads((a.state / "state.json").read_text())["workloads"]["det"]
    assert infer(recorded["http_port"])[0] in (2.0, 3.0)  # the agent is dead, the workload serves

    a.start()
    st = a.wait(lambda s: any(serving(s, "det", v) for v in ("1.0.0", "2.0.0")), 90, "old or new serving")
    w = workload_of(st, "det")
    assert w is not None
    assert infer(w["endpoint"])[0] in (2.0, 3.0)
    st = a.wait(lambda s: serving(s, "det", "2.0.0") and not s["in_progress"], 120, "2.0.0 in the end")
    w = workload_of(st, "det")
    assert w is not None
    assert infer(w["endpoint"]) == [3.0] * 4
    time.sleep(1.0)
    sup = Supervisor(a.state / "supervisor", parent=a.prefix)
    try:  # exactly one sandbox: no half-started copy left behind
        assert [x.name for x in sup.statuses()] == [w["sandbox"]]
    finally:
        sup.close()
    repos = [p.name for p in (a.state / "models").iterdir()]
    assert repos == [w["sandbox"]], repos
    versions = sorted(p.name for p in (a.state / "models" / w["sandbox"] / "det").iterdir())
    assert versions == [str(w["model_version"])], versions
    assert not [p for p in (a.state / "bundles").iterdir() if p.name.startswith(".tmp-")]


def test_agent_refuses_a_tampered_bundle_and_reports_it(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    tar = make_bundle(tmp_path, "det", "1.0.0")
    fleet.upload(tar)
    import hashlib

    digest = hashlib.sha256(tar.read_bytes()).hexdigest()
    blob = fleet.server.data / "blobs" / digest[:2] / digest
    assert blob.exists()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the stored blob changes behind the server's back
    blob.write_bytes(bytes(data))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    dev = a.wait(lambda s: s["polls"] > 0, 60, "enrollment")["device_id"]
    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: "det" in s["failed"], 90, "refused")
    assert st["failed"]["det"]["kind"] == "refused"
    assert "sha256" in st["failed"]["det"]["reason"]
    assert st["workloads"] == []
    a.wait(lambda s: s["outbox"]["queued"] == 0, 30, "reported")
    kinds = [e["kind"] for e in fleet.events(dev)]
    assert "update_refused" in kinds, kinds

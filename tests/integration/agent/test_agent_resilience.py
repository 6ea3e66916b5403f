"""Offline autonomy, restarts from disk, SIGKILL in the middle of an update, tampered bundles."""

from __future__ import annotations

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


@pytest.mark.parametrize("kill_when", ["downloading", "starting", "switched"])
def test_agent_sigkill_mid_update_leaves_old_or_new_serving(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc], kill_when: str
) -> None:
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    fleet.upload(make_bundle(tmp_path, "det", "2.0.0", scale=3.0))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    a.wait(lambda s: s["polls"] > 0, 60, "enrollment")
    fleet.deploy("det", "1.0.0")
    a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")
    fleet.deploy("det", "2.0.0")
    if kill_when == "switched":
        a.wait(lambda s: (workload_of(s, "det") or {}).get("version") == "2.0.0", 90, "switch")
    else:
        a.wait(
            lambda s: s["in_progress"].get("det") == kill_when or serving(s, "det", "2.0.0"), 90, kill_when
        )
    a.kill()
    a.join = None
    a.start()
    st = a.wait(lambda s: any(serving(s, "det", v) for v in ("1.0.0", "2.0.0")), 90, "old or new serving")
    w = workload_of(st, "det")
    assert w is not None
    assert infer(w["http_port"])[0] in (2.0, 3.0)
    st = a.wait(lambda s: serving(s, "det", "2.0.0") and not s["in_progress"], 120, "2.0.0 in the end")
    time.sleep(1.0)
    sup = Supervisor(a.state / "supervisor", parent=a.prefix)
    try:  # exactly one sandbox: no half-started copy left behind
        assert [x.name for x in sup.statuses()] == [workload_of(st, "det")["sandbox"]]  # type: ignore[index]
    finally:
        sup.close()


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

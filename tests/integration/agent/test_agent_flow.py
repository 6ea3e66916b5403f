"""The agent against a real server process, with real sandboxes running real `edgefleet serve`."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_agent_enroll_deploy_update_rollback(tmp_path: Path, fleet: Fleet, agents: list[AgentProc]) -> None:
    """Enroll; 1.0.0 serves; 2.0.0 replaces it; a broken 3.0.0 is rolled back with its reason, by
    blue/green (resources changed) and by hot reload (model only)."""
    for v, scale in (("1.0.0", 2.0), ("2.0.0", 3.0)):
        fleet.upload(make_bundle(tmp_path, "det", v, scale=scale))
    fleet.upload(make_bundle(tmp_path, "det", "3.0.0", broken=True))
    fleet.upload(make_bundle(tmp_path, "det", "4.0.0", broken=True))
    a = new_agent(tmp_path, fleet, agents)
    a.start("--metrics-port", "0")
    st = a.wait(lambda s: s["device_id"] and s["polls"] > 0, 60, "enrollment")
    key = a.state / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert st["heavy_modules"] == []  # no numpy, onnxruntime, pydantic, sqlalchemy, httpx, typer...
    assert st["first_poll_s"] < 30  # a bound that holds on a loaded machine; bench/agent measures it
    dev = st["device_id"]
    assert fleet.device(dev)["inventory"]["cpu"]  # the probe inventory went up with the enrollment

    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")
    assert infer(workload_of(st, "det")["http_port"]) == [2.0] * 4

    fleet.deploy("det", "2.0.0")
    st = a.wait(lambda s: serving(s, "det", "2.0.0"), 90, "2.0.0 serving")
    assert infer(workload_of(st, "det")["http_port"]) == [3.0] * 4
    assert st["previous"] == {"det": "1.0.0"}
    a.wait(lambda s: s["reached_revision"] == s["desired_revision"], 30, "revision reached")

    fleet.deploy("det", "3.0.0", resources={"pids": 4096})  # blue/green: a new sandbox that crashes
    st = a.wait(lambda s: "det" in s["failed"], 120, "3.0.0 rolled back")
    assert st["failed"]["det"]["kind"] == "rolled_back"
    reason = st["failed"]["det"]["reason"]
    assert "restarts" in reason or "readiness" in reason, reason
    assert serving(st, "det", "2.0.0")
    assert infer(workload_of(st, "det")["http_port"]) == [3.0] * 4

    fleet.deploy("det", "4.0.0")  # hot reload: serve refuses the new version and keeps the old one
    st = a.wait(lambda s: s["failed"].get("det", {}).get("reason", "").startswith("hot reload"), 120, "4.0.0")
    assert st["failed"]["det"]["kind"] == "rolled_back"
    assert "could not load the new model" in st["failed"]["det"]["reason"]
    assert serving(st, "det", "2.0.0")
    assert infer(workload_of(st, "det")["endpoint"]) == [3.0] * 4
    a.wait(lambda s: s["outbox"]["queued"] == 0, 30, "events delivered")
    kinds = {e["kind"] for e in fleet.events(dev)}
    assert "update_rolled_back" in kinds, kinds

    import httpx

    m = httpx.get(f"http://127.0.0.1:{st['metrics_port']}/metrics", timeout=5).text
    assert 'edgefleet_workload_ready{deployment="det",version="2.0.0"} 1' in m
    assert (a.state / "identity.json").exists()
    assert a.status()["heavy_modules"] == []  # still none after three updates
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "agent", "status", "--state-dir", str(a.state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert f"device   {dev}" in r.stdout
    assert "reachable" in r.stdout
    assert "workload det 2.0.0" in r.stdout
    assert "failed   det" in r.stdout

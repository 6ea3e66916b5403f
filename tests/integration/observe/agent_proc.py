"""A real device agent (``python -m edgefleet.agent``) enrolled in a :class:`LiveFleet`, optionally
running a real `edgefleet serve` workload in its sandbox."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edgefleet.testing.require import require
from tests.integration.agent.conftest import AgentProc, make_bundle, serving
from tests.integration.observe.conftest import LiveFleet

DEPLOYMENT = "agentdet"


@dataclass
class RunningAgent:
    proc: AgentProc
    device: str
    metrics: str  # host:port of its /metrics

    def status(self) -> dict[str, Any]:
        return self.proc.status()


@contextmanager
def running_agent(fleet: LiveFleet, tmp: Path, *extra: str, deploy: bool = True) -> Iterator[RunningAgent]:
    """An agent labelled ``role=agent`` with /metrics on a free port; with ``deploy``, the
    ``agentdet`` deployment (a tiny ONNX model) serving on it."""
    require(os.geteuid() == 0, "root (the workload sandbox needs it)")
    tmp.mkdir(parents=True, exist_ok=True)
    r = fleet.api("POST", "/join-tokens", json={"name": "agent", "max_uses": None})
    assert r.status_code == 201, r.text
    join = str(r.json()["token"])
    prefix = "efo" + uuid.uuid4().hex[:8]
    shim: Any = SimpleNamespace(server=SimpleNamespace(url=fleet.url))
    agent = AgentProc(tmp / f"agent-{prefix}", shim, join=join, prefix=prefix)
    try:
        agent.start("--metrics-port", "0", "--label", "role=agent", "--log-interval", "1", *extra)
        st = agent.wait(lambda s: s["device_id"] and s["polls"] > 0 and s["metrics_port"], 60, "enrollment")
        if deploy:
            tar = make_bundle(tmp, DEPLOYMENT, "1.0.0")
            r = fleet.api("POST", "/bundles", files={"file": (tar.name, tar.read_bytes())})
            assert r.status_code == 201, r.text
            body = {
                "name": DEPLOYMENT,
                "bundle": {"name": DEPLOYMENT, "version": "1.0.0"},
                "selector": "role=agent",
                "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
            }
            r = fleet.api("POST", "/deployments", json=body)
            assert r.status_code == 201, r.text
            st = agent.wait(lambda s: serving(s, DEPLOYMENT, "1.0.0"), 180, "the workload serving")
            time.sleep(1.0)  # one supervisor pass with cgroup usage after ready
        yield RunningAgent(agent, str(st["device_id"]), f"127.0.0.1:{st['metrics_port']}")
    finally:
        agent.stop()
        from edgefleet.sandbox.supervisor import Supervisor

        sup_dir = agent.state / "supervisor"
        if sup_dir.exists():  # workloads outlive the agent by design: remove them here
            sup = Supervisor(sup_dir, parent=prefix)
            for ws in sup.statuses():
                sup.remove(ws.name, grace_s=2.0)
            sup.close()

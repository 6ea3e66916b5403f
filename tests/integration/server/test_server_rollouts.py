"""Rollout scenarios with the fleet simulator against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from edgefleet.server import open_server
from edgefleet.server.rollout.driver import RolloutDriver
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig
from tests.integration.server.conftest import Server

pytestmark = pytest.mark.integration

THREE_WAVES = {
    "waves": [{"percent": 10}, {"percent": 50}, {"percent": 100}],
    "bake_seconds": 30,
    "progress_deadline_seconds": 120,
}


class Fleet:
    """A simulator driven step by step from a synchronous test."""

    def __init__(self, server: Server, n: int, **config: Any) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.sim = FleetSimulator(
            SimulatorConfig(
                server=server.url, join_token=server.join_token(), devices=n, report_every=1000, **config
            )
        )
        self.loop.run_until_complete(self.sim.enroll_all())

    def poll(self) -> None:
        self.loop.run_until_complete(self.sim.poll_all())
        assert self.sim.stats.errors == 0

    def step(self, seconds: float = 0.0) -> dict[str, Any]:
        """Devices poll and report, the clock moves, the driver runs, devices see the result."""
        self.poll()
        self.server.tick(seconds)
        self.poll()
        return self.rollout()

    def rollout(self) -> dict[str, Any]:
        items = self.server.api("GET", "/rollouts", params={"limit": 1}).json()["items"]
        return dict(items[0])

    def versions(self) -> Counter[str | None]:
        return Counter(self.sim.versions("det").values())

    def close(self) -> None:
        self.loop.run_until_complete(self.sim.aclose())
        self.loop.close()


@pytest.fixture
def fleet(server: Server) -> Iterator[Fleet]:
    f = Fleet(server, 10, bad_versions=frozenset({"2.0.0-bad"}))
    server.upload("det", "1.0.0")
    r = server.api(
        "POST",
        "/deployments",
        json={
            "name": "det",
            "bundle": {"name": "det", "version": "1.0.0"},
            "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
        },
    )
    assert r.status_code == 201, r.text
    assert f.step()["phase"] == "completed"
    assert f.versions() == Counter({"1.0.0": 10})
    yield f
    f.close()


def _deploy(server: Server, version: str, **strategy: Any) -> dict[str, Any]:
    server.upload("det", version)
    r = server.api(
        "POST",
        "/deployments",
        json={
            "name": "det",
            "bundle": {"name": "det", "version": version},
            "strategy": THREE_WAVES | strategy,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["rollout"])


def test_healthy_rollout_completes_wave_by_wave(server: Server, fleet: Fleet) -> None:
    ro = _deploy(server, "2.0.0")
    assert ro["plan"] == [1, 5, 10]
    fleet.poll()
    assert fleet.versions() == Counter({"1.0.0": 9, "2.0.0": 1})
    assert fleet.step()["phase"] == "baking"
    assert fleet.step(31)["wave"] == 2
    assert fleet.versions() == Counter({"1.0.0": 5, "2.0.0": 5})
    assert fleet.step()["phase"] == "baking"
    fleet.step(31)
    assert fleet.versions() == Counter({"2.0.0": 10})
    fleet.step()
    done = fleet.step(31)
    assert done["phase"] == "completed"
    shown = server.api("GET", f"/rollouts/{done['id']}").json()
    path = [(t["from"], t["to"], t["wave"]) for t in shown["transitions"]]
    assert path == [
        ("pending", "rolling", 1),
        ("rolling", "baking", 1),
        ("baking", "rolling", 2),
        ("rolling", "baking", 2),
        ("baking", "rolling", 3),
        ("rolling", "baking", 3),
        ("baking", "completed", 3),
    ]
    assert all(t["reason"] for t in shown["transitions"])


def test_bad_bundle_trips_first_wave_and_rolls_back_only_it(server: Server, fleet: Fleet) -> None:
    _deploy(server, "2.0.0-bad")
    fleet.poll()
    assert fleet.versions() == Counter({"1.0.0": 9, "2.0.0-bad": 1})
    ro = fleet.step()
    assert ro["phase"] == "aborted"
    assert "failed a gate" in ro["reason"]
    assert "crash loops" in ro["reason"] or "workload failed" in ro["reason"]
    assert fleet.versions() == Counter({"1.0.0": 10})
    assert ro["counts"]["updated"] == 0
    dep = server.api("GET", "/deployments/det").json()
    assert dep["stable_release"] == dep["releases"][0]["id"]


def test_device_joining_mid_rollout_gets_the_rollout_version(server: Server, fleet: Fleet) -> None:
    _deploy(server, "2.0.0")
    fleet.step()
    fleet.step(31)  # wave 2 rolling
    late = fleet.sim.add_devices(2)
    fleet.loop.run_until_complete(fleet.sim.enroll_all(late))
    ro = fleet.step()
    assert ro["counts"]["devices"] == 12
    assert {d.running_version("det") for d in late} == {"2.0.0"}
    while ro["phase"] != "completed":
        ro = fleet.step(31)
    after = fleet.sim.add_devices(1)
    fleet.loop.run_until_complete(fleet.sim.enroll_all(after))
    fleet.poll()
    assert after[0].running_version("det") == "2.0.0"


def test_manual_approval_pause_resume_abort(server: Server, fleet: Fleet) -> None:
    ro = _deploy(server, "2.0.0", auto_advance=False, bake_seconds=0)
    rid = ro["id"]
    assert fleet.step()["phase"] == "awaiting_approval"
    r = server.api("POST", f"/rollouts/{rid}/resume", json={})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "server.rollout_state"
    assert server.api("POST", f"/rollouts/{rid}/approve", json={"reason": "looks good"}).json()["wave"] == 2
    assert server.api("POST", f"/rollouts/{rid}/pause", json={}).json()["phase"] == "paused"
    fleet.step()
    assert fleet.rollout()["phase"] == "paused"
    assert server.api("POST", f"/rollouts/{rid}/resume", json={}).json()["phase"] in (
        "rolling",
        "awaiting_approval",
    )
    fleet.poll()
    assert fleet.versions()["2.0.0"] == 5
    r = server.api("POST", f"/rollouts/{rid}/abort", json={"reason": "operator changed their mind"})
    assert r.json()["phase"] == "aborted"
    assert r.json()["reason"] == "operator changed their mind"
    fleet.poll()
    assert fleet.versions() == Counter({"1.0.0": 10})
    assert server.api("POST", f"/rollouts/{rid}/approve", json={}).status_code == 409


def test_gate_on_p95_latency_pauses_when_asked(server: Server) -> None:
    f = Fleet(server, 10, p95_latency_ms=250)
    try:
        server.upload("det", "1.0.0")
        r = server.api(
            "POST",
            "/deployments",
            json={
                "name": "det",
                "bundle": {"name": "det"},
                "strategy": {
                    "waves": [{"count": 2}, {"percent": 100}],
                    "bake_seconds": 0,
                    "on_failure": "pause",
                    "gates": {"max_p95_latency_ms": 100},
                },
            },
        )
        assert r.status_code == 201, r.text
        ro = f.step()
        assert ro["phase"] == "paused"
        assert "p95 latency 250 ms > 100 ms" in ro["reason"]
        assert f.versions() == Counter({"1.0.0": 2, None: 8})
    finally:
        f.close()


def test_one_replica_drives_each_rollout_and_a_restart_resumes(server: Server, fleet: Fleet) -> None:
    ro = _deploy(server, "2.0.0")
    a = RolloutDriver(server.ctx, "replica-a")
    b = RolloutDriver(server.ctx, "replica-b")
    server.app.state.driver.release()
    assert a.claim() == [ro["id"]]
    assert b.claim() == []
    assert a.claim() == [ro["id"]]  # renewal by the holder
    fleet.poll()
    a.tick()
    assert fleet.rollout()["phase"] == "baking"
    # replica a dies without releasing; after the lease runs out b takes over where a was
    server.clock.advance(server.ctx.settings.lease_seconds + 1)
    ctx2, token = open_server(server.ctx.settings, clock=server.clock)
    assert token is None
    c = RolloutDriver(ctx2, "replica-c")
    server.clock.advance(31)
    c.tick()
    ro2 = fleet.rollout()
    assert ro2["lease_owner"] == "replica-c"
    assert ro2["wave"] == 2
    ctx2.db.dispose()

"""A desired-state document near its expiry is signed again when its device asks for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from edgefleet.server.auth import sign_request
from edgefleet.server.keys import verify_document
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig
from tests.integration.server.conftest import Server

pytestmark = pytest.mark.integration

DAY = 86400.0


def _fetch(server: Server, sim: FleetSimulator) -> dict[str, Any]:
    d = sim.devices[0]
    target = "/device/v1/desired-state"
    assert d.device_id is not None
    headers = sign_request(d.key, d.device_id, "GET", target, now=server.clock())  # the device's clock agrees
    r = server.client.get(target, headers=headers)
    assert r.status_code == 200, r.text
    assert d.server_key is not None
    return dict(verify_document(r.json(), d.server_key))


def _expires(doc: dict[str, Any]) -> float:
    return datetime.strptime(doc["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_expiring_desired_state_is_renewed_when_the_device_asks(server: Server) -> None:
    """Before: a fleet unchanged for longer than the document lifetime (7 days) was served an expired
    document, which every agent refuses: after a restart a device could follow nothing any more."""
    server.upload("det", "1.0.0")
    loop = asyncio.new_event_loop()
    sim = FleetSimulator(SimulatorConfig(server=server.url, join_token=server.join_token(), devices=1))
    try:
        loop.run_until_complete(sim.enroll_all())
        body = {
            "name": "det",
            "bundle": {"name": "det", "version": "1.0.0"},
            "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
        }
        assert server.api("POST", "/deployments", json=body).status_code == 201
        server.tick()
        first = _fetch(server, sim)
        assert [w["bundle"]["version"] for w in first["workloads"]] == ["1.0.0"]
        ttl = _expires(first) - server.clock()

        server.clock.advance(ttl / 4)  # three quarters left: served as it is
        assert _fetch(server, sim)["revision"] == first["revision"]

        server.clock.advance(ttl)  # expired on the server's clock; nothing changed meanwhile
        renewed = _fetch(server, sim)
        assert _expires(renewed) > server.clock() + ttl * 0.9
        assert renewed["revision"] == first["revision"] + 1
        assert renewed["workloads"] == first["workloads"]
        assert renewed["labels"] == first["labels"]
        assert _fetch(server, sim)["revision"] == renewed["revision"]  # once, not on every poll
    finally:
        loop.run_until_complete(sim.aclose())
        loop.close()

"""A live fleet for the observe tests: a server with its background loops and simulated devices."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.server import ServerSettings, open_server
from edgefleet.server.api import create_app
from edgefleet.server.service import migrate
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig
from tests.integration.server.conftest import make_bundle, serve_in_thread


@dataclass
class LiveFleet:
    url: str
    admin: str
    client: httpx.Client
    sims: list[FleetSimulator] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return self.client.request(method, "/api/v1/projects/default" + path, headers=headers, **kw)

    def token(self, role: str) -> str:
        if role not in self.tokens:
            r = self.api("POST", "/tokens", json={"name": f"ui-{role}", "role": role})
            assert r.status_code == 201, r.text
            self.tokens[role] = str(r.json()["token"])
        return self.tokens[role]

    def upload(self, name: str, version: str) -> None:
        r = self.api("POST", "/bundles", files={"file": ("b.tar.gz", make_bundle(name, version))})
        assert r.status_code == 201, r.text

    def deploy(self, name: str, bundle: str, version: str, selector: str, **strategy: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "bundle": {"name": bundle, "version": version},
            "selector": selector,
            "strategy": {"waves": [{"count": 1}, {"percent": 50}, {"percent": 100}], "bake_seconds": 2}
            | strategy,
        }
        r = self.api("POST", "/deployments", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def wait(self, cond: Any, timeout: float = 60.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = cond()
            if got:
                return got
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}")


def _run_sims(sims: list[FleetSimulator], stop: threading.Event) -> None:
    async def main() -> None:
        for s in sims:
            await s.enroll_all()
        while not stop.is_set():
            for s in sims:
                await s.poll_all()
            await asyncio.sleep(0.4)
        for s in sims:
            await s.aclose()

    asyncio.run(main())


@pytest.fixture
def live_fleet(tmp_path: Path) -> Iterator[LiveFleet]:
    """A server on a free port (rollout driver every 0.2 s) with 8 simulated devices polling."""
    settings = ServerSettings(data_dir=tmp_path / "server", rollout_tick_seconds=0.2)
    migrate(settings)
    ctx, admin = open_server(settings)
    assert admin is not None
    app = create_app(ctx)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        fleet = LiveFleet(url=url, admin=admin, client=client)
        r = fleet.api("POST", "/join-tokens", json={"name": "sim", "max_uses": None})
        assert r.status_code == 201, r.text
        join = str(r.json()["token"])
        fleet.sims = [
            FleetSimulator(
                SimulatorConfig(server=url, join_token=join, devices=5, labels={"site": "lab"}, seed=1)
            ),
            FleetSimulator(
                SimulatorConfig(
                    server=url,
                    join_token=join,
                    devices=3,
                    labels={"site": "field"},
                    seed=2,
                    bad_versions=frozenset({"9.9.9"}),
                )
            ),
        ]
        stop = threading.Event()
        thread = threading.Thread(target=_run_sims, args=(fleet.sims, stop), daemon=True)
        thread.start()
        try:
            fleet.wait(lambda: len(fleet.api("GET", "/devices").json()["items"]) == 8, what="8 devices")
            yield fleet
        finally:
            stop.set()
            thread.join(timeout=30)
    ctx.db.dispose()

"""Control-plane SIGKILL and a PostgreSQL restart in the middle of a rollout: it resumes, and every
device ends with exactly one assignment, on the new release.

The PostgreSQL restarted here is a throwaway cluster made for the test (never a shared one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.server import ServerSettings
from edgefleet.testing.faults import FaultUnavailableError, PostgresCluster, Trials, free_port, trial_count
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig
from edgefleet.testing.require import missing, require
from tests.integration.server.conftest import make_bundle
from tests.integration.server.test_server_process import Proc, _cli

pytestmark = pytest.mark.integration

DEVICES = 30
STRATEGY = {"waves": [{"percent": 10}, {"percent": 50}, {"percent": 100}], "bake_seconds": 1}


def _psql(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql).fetchall())


def _deploy(api: httpx.Client, version: str) -> None:
    body = {
        "name": "det",
        "bundle": {"name": "det", "version": version},
        "selector": "",
        "strategy": STRATEGY,
    }
    end = time.monotonic() + 60
    while True:
        try:
            r = api.post("/deployments", json=body)
        except httpx.HTTPError:
            r = None
        if r is not None and r.status_code in (200, 201):
            return
        assert time.monotonic() < end, r.text if r is not None else "server unreachable"
        time.sleep(0.5)


def _rollout(api: httpx.Client) -> dict[str, Any] | None:
    try:
        r = api.get("/rollouts", params={"limit": 1})
    except httpx.HTTPError:
        return None
    return dict(r.json()["items"][0]) if r.status_code == 200 and r.json()["items"] else None


@dataclass
class Plane:
    """The control plane under test: its process (replaced after a SIGKILL), database, devices."""

    proc: Proc
    pg: PostgresCluster
    settings: ServerSettings
    port: int
    log: Path
    api: httpx.Client
    sim: FleetSimulator
    loop: asyncio.AbstractEventLoop

    def fire(self, fault: str) -> None:
        if fault == "kill":
            self.proc.kill()
            self.proc = Proc(self.settings, self.port, self.log)
        else:
            self.pg.restart(fault.removeprefix("pg_"))

    def settle(self, version: str, plan: dict[str, float], rng: random.Random) -> tuple[list[int], float]:
        """Devices poll until the rollout to ``version`` completes; the faults of ``plan`` fire on time.
        Returns the waves seen while it ran and how long it took."""
        t0 = time.monotonic()
        todo = sorted(plan.items(), key=lambda kv: kv[1])
        waves: list[int] = []
        while True:
            while todo and todo[0][1] <= time.monotonic() - t0:
                self.fire(todo.pop(0)[0])
            self.loop.run_until_complete(self.sim.poll_all())
            ro = _rollout(self.api)
            if ro is not None and ro["phase"] not in ("completed", "aborted"):
                waves.append(int(ro["wave"]))
            done = ro is not None and ro["phase"] == "completed" and not todo
            if done and all(v == version for v in self.sim.versions("det").values()):
                return waves, time.monotonic() - t0
            assert ro is None or ro["phase"] != "aborted", ro
            assert time.monotonic() - t0 < 240, f"rollout to {version} did not complete: {ro}"
            time.sleep(rng.uniform(0.05, 0.3))


NOTES = (
    f"{DEVICES} simulated devices, one control-plane process on a throwaway PostgreSQL cluster; a rollout "
    "in three waves (10%, 50%, 100%, 1 s bake); in each trial the server is SIGKILLed and started "
    "again, and PostgreSQL is restarted (pg_ctl -m fast or immediate, at random), each at a random "
    "moment in the first 3 s of the rollout. Checked: the rollout completes after the faults without "
    "going back a wave, every device runs the new version, each device has exactly one assignment row "
    "and one workload for the deployment. Data lost: devices not on the new release at the end."
)


N = trial_count(quick=1, full=12)


@pytest.mark.timeout(300 + 180 * N)
def test_control_plane_sigkill_and_postgres_restart_mid_rollout(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root (initdb and pg_ctl run as the postgres user)")
    n = N
    try:
        pg = PostgresCluster()
    except FaultUnavailableError as exc:
        missing(exc.message)
    with pg, contextlib.ExitStack() as stack:
        settings = ServerSettings(data_dir=tmp_path / "server", db_url=pg.url)
        r = _cli("server", "migrate", "--data-dir", str(settings.data_dir), "--db", pg.url)
        assert r.returncode == 0, r.stderr
        port, log = free_port(), tmp_path / "server.log"
        proc = Proc(settings, port, log)
        stack.callback(lambda: plane.proc.stop() if plane is not None else proc.stop())
        plane: Plane | None = None
        token = re.search(r"(efk_\S+)", log.read_text())
        assert token, log.read_text()
        api = stack.enter_context(
            httpx.Client(
                base_url=proc.url + "/api/v1/projects/default",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                timeout=10,
            )
        )
        join = api.post("/join-tokens", json={"name": "sim", "max_uses": None}).json()["token"]
        for version in ("1.0.0", "2.0.0"):
            r2 = api.post("/bundles", files={"file": ("b", make_bundle("det", version))})
            assert r2.status_code == 201, r2.text
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        sim = FleetSimulator(
            SimulatorConfig(server=proc.url, join_token=join, devices=DEVICES, report_every=1000)
        )
        stack.callback(lambda: loop.run_until_complete(sim.aclose()))
        loop.run_until_complete(sim.enroll_all())
        plane = Plane(proc, pg, settings, port, log, api, sim, loop)
        name = "control-plane SIGKILL and PostgreSQL restart mid-rollout"
        with Trials(name, planned=n, notes=NOTES) as trials:
            _deploy(api, "1.0.0")  # a first rollout without faults: every device has the deployment
            plane.settle("1.0.0", {}, trials.rng)
            for i in range(n):
                version = ("2.0.0", "1.0.0")[i % 2]
                with trials.trial() as t:
                    _deploy(api, version)
                    mode = trials.rng.choice(("fast", "immediate"))
                    plan = {"kill": trials.rng.uniform(0.0, 3.0), f"pg_{mode}": trials.rng.uniform(0.0, 3.0)}
                    t.measure("kill_after_s", plan["kill"])
                    t.measure("pg_restart_after_s", plan[f"pg_{mode}"])
                    waves, took = plane.settle(version, plan, trials.rng)
                    assert waves == sorted(waves), f"the rollout went back a wave: {waves}"
                    t.data_lost = _check_assignments(pg.url, sim, version)
                    assert t.data_lost == 0
                    t.measure("rollout_s", took)
                    t.outcome = "rollout resumed and completed; one assignment per device"


def _check_assignments(url: str, sim: FleetSimulator, version: str) -> int:
    """Each device: one assignment row for the deployment and one workload; returns devices not on it."""
    rows = _psql(
        url,
        "SELECT a.device_id, count(*), min(r.id) FROM device_assignments a "
        "JOIN deployments d ON d.id = a.deployment_id JOIN releases r ON r.id = a.release_id "
        "WHERE d.name = 'det' GROUP BY a.device_id",
    )
    assert len(rows) == DEVICES, rows
    assert all(count == 1 for _, count, _ in rows), [r for r in rows if r[1] != 1]
    assert len({rel for _, _, rel in rows}) == 1, "devices ended on different releases"
    for d in sim.devices:
        mine = [w for w in d.workloads if w["deployment"] == "det"]
        assert len(mine) == 1, (d.device_id, mine)
    return sum(1 for v in sim.versions("det").values() if v != version)

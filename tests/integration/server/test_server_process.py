"""`edgefleet server` as a real process: migrations, first start, the operator CLI, kill -9 and resume."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from edgefleet.server import ServerSettings
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig
from tests.integration.server.conftest import make_bundle

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _db_args(settings: ServerSettings) -> list[str]:
    args = ["--data-dir", str(settings.data_dir)]
    if settings.db_url:
        args += ["--db", settings.db_url]
    if settings.db_schema:
        args += ["--db-schema", settings.db_schema]
    return args


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        check=False,
        env=(os.environ | (env or {})),
        timeout=120,
    )


class Proc:
    def __init__(self, settings: ServerSettings, port: int, log: Path) -> None:
        self.log = log
        self.out = log.open("ab")
        self.p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "server",
                "run",
                "--port",
                str(port),
                *_db_args(settings),
                "--replica-id",
                f"r{port}",
                "--tls",
                "off",  # plain HTTP only when asked for
            ],
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()}")
            time.sleep(0.2)

    def kill(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=30)
        self.out.close()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()


def test_start_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    r = _cli("server", "run", "--port", "0", "--data-dir", str(tmp_path / "fresh"))
    assert r.returncode == 6, r.stderr
    assert "edgefleet server migrate" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("server", "migrate", "--data-dir", str(tmp_path / "fresh"))
    assert r.returncode == 0, r.stderr
    from edgefleet.server.store import head_revision

    assert f"database at schema revision {head_revision()}" in r.stdout


def test_start_refuses_a_newer_schema(tmp_path: Path) -> None:
    import sqlite3

    assert _cli("server", "migrate", "--data-dir", str(tmp_path)).returncode == 0
    with sqlite3.connect(tmp_path / "server.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    r = _cli("server", "run", "--port", "0", "--data-dir", str(tmp_path))
    assert r.returncode == 6
    assert "newer than this edgefleet" in r.stderr


def _steer_after_restart(env: dict[str, str], sim: FleetSimulator, loop: asyncio.AbstractEventLoop) -> None:
    """The restarted server still knows the rollout; the CLI pauses, resumes and aborts it."""
    r = _cli("rollout", "status", "det", env=env)
    assert r.returncode == 0, r.stderr
    assert "baking wave 1/2" in r.stdout
    assert "2/10 updated" in r.stdout
    r = _cli("rollout", "pause", "det", "--reason", "checking", env=env)
    assert "paused" in r.stdout
    r = _cli("rollout", "resume", "det", env=env)
    assert r.returncode == 0, r.stderr
    loop.run_until_complete(sim.poll_all())
    r = _cli("rollout", "abort", "det", "--reason", "enough", env=env)
    assert "aborted" in r.stdout
    loop.run_until_complete(sim.poll_all())
    assert Counter(sim.versions("det").values()) == Counter({"1.0.0": 10})
    r = _cli("rollout", "approve", "det", env=env)
    assert r.returncode == 4
    assert "rollout is aborted" in r.stderr
    r = _cli("rollout", "status", "det", env=env | {"EDGEFLEET_TOKEN": "efk_x_y"})
    assert r.returncode == 5


def test_operator_cli_and_kill_mid_rollout_resumes(db_settings: ServerSettings, tmp_path: Path) -> None:
    """First start prints a token once; the CLI deploys; after kill -9 the rollout goes on from its wave."""
    port = _free_port()
    log = tmp_path / "server.log"
    proc = Proc(db_settings, port, log)
    try:
        token = re.search(r"(efk_\S+)", log.read_text())
        assert token, log.read_text()
        assert "warning: --tls off" in log.read_text()
        env = {"EDGEFLEET_SERVER": proc.url, "EDGEFLEET_TOKEN": token.group(1)}
        api = httpx.Client(
            base_url=proc.url + "/api/v1/projects/default",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=30,
        )
        join = api.post("/join-tokens", json={"name": "sim", "max_uses": None}).json()["token"]
        for version in ("1.0.0", "2.0.0"):
            r = api.post("/bundles", files={"file": ("b", make_bundle("det", version))})
            assert r.status_code == 201, r.text
        loop = asyncio.new_event_loop()
        sim = FleetSimulator(SimulatorConfig(server=proc.url, join_token=join, devices=10, report_every=1000))
        loop.run_until_complete(sim.enroll_all())

        r = _cli("device", "ls", env=env)
        assert r.returncode == 0, r.stderr
        assert "devices in default (10)" in r.stdout
        r = _cli("deploy", "det", "det@1.0.0", "--waves", "100%", "--bake", "0", env=env)
        assert r.returncode == 0, r.stderr

        def settle(until: str, max_s: float = 60) -> dict[str, object]:
            end = time.monotonic() + max_s
            while True:
                loop.run_until_complete(sim.poll_all())
                ro = api.get("/rollouts", params={"limit": 1}).json()["items"][0]
                if ro["phase"] == until or time.monotonic() > end:
                    return dict(ro)
                time.sleep(0.3)

        assert settle("completed")["phase"] == "completed"
        r = _cli("deploy", "det", "det@2.0.0", "--waves", "20%,100%", "--bake", "3600", env=env)
        assert r.returncode == 0, r.stderr
        assert settle("baking")["wave"] == 1
        proc.kill()

        proc = Proc(db_settings, port, log)
        _steer_after_restart(env | {"EDGEFLEET_SERVER": proc.url}, sim, loop)
        loop.run_until_complete(sim.aclose())
        loop.close()
        api.close()
    finally:
        proc.stop()

"""Updates under load (hot reload and blue/green, zero failed requests), the update lock, maintenance
windows: real server, real agent, real sandboxes, real `edgefleet serve`."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agent.conftest import (
    PY,
    AgentProc,
    Fleet,
    infer,
    make_bundle,
    new_agent,
    serving,
    workload_of,
)

pytestmark = pytest.mark.integration


class Load:
    """Clients sending inference requests to the deployment's stable endpoint without pause."""

    def __init__(self, port: int, clients: int = 2) -> None:
        self.port = port
        self.ok: Counter[float] = Counter()
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, i: int) -> None:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 4}]}
        # client 0 keeps its connection alive across the update, client 1 opens one per request
        keep = i == 0
        client = httpx.Client(timeout=30) if keep else None
        try:
            while not self._halt.is_set():
                try:
                    url = f"http://127.0.0.1:{self.port}/v2/models/det/infer"
                    if client is not None:
                        r = client.post(url, json=body)
                    else:
                        r = httpx.post(url, json=body, timeout=30, headers={"Connection": "close"})
                    if r.status_code != 200:
                        self.errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    else:
                        self.ok[float(r.json()["outputs"][0]["data"][0])] += 1
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                client.close()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(timeout=60)


def test_updates_under_continuous_load_fail_no_request_hot_reload_and_blue_green(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    for version, scale in (("1.0.0", 2.0), ("2.0.0", 3.0), ("3.0.0", 4.0)):
        fleet.upload(make_bundle(tmp_path, "det", version, scale=scale))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    dev = a.wait(lambda s: s["polls"] > 0, 60, "enrollment")["device_id"]
    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")
    w1 = workload_of(st, "det")
    assert w1 is not None
    endpoint = w1["endpoint"]

    # a model-only change: the running serve loads version 2 of its repository in place
    with Load(endpoint) as load:
        time.sleep(1.0)
        fleet.deploy("det", "2.0.0")
        st = a.wait(lambda s: serving(s, "det", "2.0.0") and not s["in_progress"], 120, "2.0.0")
        time.sleep(1.0)
    w2 = workload_of(st, "det")
    assert w2 is not None
    assert (w2["sandbox"], w2["http_port"], w2["model_version"]) == (w1["sandbox"], w1["http_port"], 2)
    assert w2["endpoint"] == endpoint
    assert load.errors == [], load.errors[:5]
    assert load.ok[2.0] > 0, load.ok
    assert load.ok[3.0] > 0, load.ok
    hot = sum(load.ok.values())

    # a runtime change (resources): blue/green, the endpoint moves once the new sandbox is healthy
    with Load(endpoint) as load:
        time.sleep(1.0)
        fleet.deploy("det", "3.0.0", resources={"pids": 4096})
        st = a.wait(lambda s: serving(s, "det", "3.0.0") and not s["in_progress"], 120, "3.0.0")
        time.sleep(1.0)
    w3 = workload_of(st, "det")
    assert w3 is not None
    assert w3["sandbox"] != w2["sandbox"]
    assert w3["http_port"] != w2["http_port"]
    assert w3["endpoint"] == endpoint
    assert load.errors == [], load.errors[:5]
    assert load.ok[3.0] > 0, load.ok
    assert load.ok[4.0] > 0, load.ok
    a.wait(lambda s: s["outbox"]["queued"] == 0, 30, "reported")
    how = [e["data"].get("how") for e in fleet.events(dev) if e["kind"] == "updated"]
    assert how[-2:] == ["hot_reload", "blue_green"], how
    assert hot > 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "edgefleet", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _deferred(a: AgentProc, text: str) -> dict[str, Any]:
    return a.wait(lambda s: text in s["deferred"].get("det", {}).get("reason", ""), 90, f"deferred: {text}")


def _server_shows_deferred(fleet: Fleet, dev: str, text: str) -> None:
    end = time.monotonic() + 30
    while True:
        r = _cli(
            "device",
            "show",
            dev,
            "--server",
            fleet.server.url,
            "--token",
            fleet.token,
            "--ca-cert",
            str(fleet.server.ca),
        )
        assert r.returncode == 0, r.stderr
        shown = json.loads(r.stdout)
        rows = [w for w in shown["health"]["workloads"] if w["status"] == "deferred"]
        if rows and text in rows[0]["reason"]:
            assert text in json.dumps(shown["reported"]["deferred"])
            return
        assert time.monotonic() < end, shown
        time.sleep(0.5)


def _running(tmp_path: Path, fleet: Fleet, agents: list[AgentProc], n: int) -> tuple[AgentProc, str]:
    """An agent serving det 1.0.0, with 2.0.0 ... n.0.0 uploaded (model scale = version + 1)."""
    for i in range(1, n + 1):
        fleet.upload(make_bundle(tmp_path, "det", f"{i}.0.0", scale=i + 1.0))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    dev = a.wait(lambda s: s["polls"] > 0, 60, "enrollment")["device_id"]
    fleet.deploy("det", "1.0.0")
    a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")
    return a, str(dev)


def test_an_operator_lock_defers_updates_until_unlock_and_the_server_shows_why(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    a, dev = _running(tmp_path, fleet, agents, 2)
    state = str(a.state)
    r = _cli("agent", "lock", "--reason", "line 3 calibration", "--ttl", "1h", "--state-dir", state)
    assert r.returncode == 0, r.stderr
    assert "line 3 calibration" in r.stdout
    bad = _cli("agent", "lock", "--reason", "x", "--ttl", "soon", "--state-dir", state)
    assert bad.returncode == 2, bad.stderr
    assert "--ttl" in bad.stderr
    fleet.deploy("det", "2.0.0")
    st = _deferred(a, "line 3 calibration")
    assert serving(st, "det", "1.0.0")
    assert st["deferred"]["det"]["version"] == "2.0.0"
    assert st["update_lock"]["operator"]["expires_at"] is not None
    _server_shows_deferred(fleet, dev, "line 3 calibration")
    time.sleep(3.0)  # it stays deferred
    assert serving(a.status(), "det", "1.0.0")
    r = _cli("agent", "unlock", "--state-dir", state)
    assert r.returncode == 0, r.stderr
    a.wait(lambda s: serving(s, "det", "2.0.0") and not s["deferred"], 90, "2.0.0 after unlock")


def test_a_process_holding_the_lock_file_defers_updates_until_it_is_gone(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    a, dev = _running(tmp_path, fleet, agents, 2)
    lock_file = a.state / "update.lock"
    code = (
        "import fcntl, time\n"
        f"f = open({str(lock_file)!r}, 'w'); f.write('nightly batch job\\n'); f.flush()\n"
        "fcntl.flock(f, fcntl.LOCK_SH); print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        fleet.deploy("det", "2.0.0")
        st = _deferred(a, "nightly batch job")
        assert f"pid {holder.pid}" in st["deferred"]["det"]["reason"]
        _server_shows_deferred(fleet, dev, "nightly batch job")
        assert serving(st, "det", "1.0.0")
    finally:
        holder.kill()
        holder.communicate()
    a.wait(lambda s: serving(s, "det", "2.0.0") and not s["deferred"], 90, "2.0.0 once the holder is gone")


def test_maintenance_windows_are_validated_and_defer_updates_to_the_next_window(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    a, dev = _running(tmp_path, fleet, agents, 2)
    with fleet.api() as api:
        r = api.post(
            "/deployments",
            json={
                "name": "det",
                "bundle": {"name": "det", "version": "2.0.0"},
                "maintenance": {"windows": ["Mon-Fry 02:00-04:00"]},
            },
        )
        assert r.status_code == 400, r.text
        assert "maintenance.windows[0]" in r.text, r.text
        assert "Mon-Fri" in r.text
    later = datetime.now(UTC) + timedelta(days=2)
    closed = {"windows": [f"{later:%a} 03:00-03:30"], "timezone": "UTC"}
    out = fleet.deploy("det", "2.0.0", maintenance=closed)
    st = _deferred(a, "outside the maintenance windows")
    assert st["deferred"]["det"]["next_window"].startswith(f"{later:%Y-%m-%d}T03:00")
    _server_shows_deferred(fleet, dev, "outside the maintenance windows")
    assert serving(st, "det", "1.0.0")
    with fleet.api() as api:  # the rollout waits for the window: abort it and open one now
        r = api.post(f"/rollouts/{out['rollout']['id']}/abort", json={"reason": "window moved"})
        assert r.status_code == 200, r.text
    fleet.deploy("det", "2.0.0", maintenance={"windows": ["daily 00:00-24:00"], "timezone": "Europe/Berlin"})
    st = a.wait(lambda s: serving(s, "det", "2.0.0") and not s["deferred"], 90, "2.0.0 inside its window")
    assert infer(workload_of(st, "det")["endpoint"]) == [3.0] * 4  # type: ignore[index]

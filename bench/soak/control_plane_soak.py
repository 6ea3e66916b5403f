"""Soak the control plane: `edgefleet server run` (TLS, PostgreSQL) under the fleet simulator while
operators use the management API, and a release manager ships a new version every minute.

    .venv/bin/python bench/soak/control_plane_soak.py --devices 500 --duration 300 \\
        --out bench/soak/results/control-plane-soak.json

Creates its own PostgreSQL database (``ef_soak_<random>`` on ``--pg``, dropped at the end), runs the
server as its own process with its default TLS, and in this process: ``--devices`` simulated devices
polling every ``--poll-interval`` s (jitter 50 %, reports), ``--operators`` clients each doing one
management call after another (device list and detail, rollouts, fleet summary, audit, events,
labels), and a release manager that uploads a bundle and deploys it in two waves every
``--release-every`` s. Reports error rate and p50/p99 latency per kind of call, rollouts completed,
and the server's RSS at start and end. Errors are transport failures and 5xx answers; 4xx answers
that the workload provokes on purpose (a deploy while a rollout runs: 409) are counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.integration.server.conftest import make_bundle  # noqa: E402

from edgefleet import __version__  # noqa: E402
from edgefleet.runtime.loadgen.report import machine_info  # noqa: E402
from edgefleet.server.tls import client_ssl_context  # noqa: E402
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def server_quantiles(metrics: str, route: str, method: str = "GET") -> dict[str, float]:
    """p50/p99 (upper bucket bounds, seconds) of the server's own request histogram for one route:
    the time inside the server, without the client's queueing."""
    buckets: dict[float, float] = defaultdict(float)
    pat = re.compile(r"edgefleet_server_request_duration_seconds_bucket\{([^}]*)\} ([0-9.e+]+)")
    for m in pat.finditer(metrics):
        labels = dict(kv.split("=", 1) for kv in m.group(1).split(","))
        if labels.get("route") != f'"{route}"' or labels.get("method") != f'"{method}"':
            continue
        le = labels["le"].strip('"')
        buckets[float("inf") if le == "+Inf" else float(le)] += float(m.group(2))
    out: dict[str, float] = {}
    if buckets:
        total = buckets[float("inf")]
        for q in (0.5, 0.99):
            out[f"p{int(q * 100)}_s"] = next(b for b in sorted(buckets) if buckets[b] >= q * total)
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 1)


class Calls:
    """Latency and outcome of every management call, by kind."""

    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, str] = {}

    async def do(
        self, api: httpx.AsyncClient, kind: str, method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = await api.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.status[kind]["transport_error"] += 1
            self.examples.setdefault(kind, f"{type(exc).__name__}: {exc}"[:300])
            return None
        self.lat[kind].append(time.perf_counter() - t0)
        self.status[kind][str(r.status_code)] += 1
        if r.status_code >= 500:
            self.examples.setdefault(kind, r.text[:300])
        return r

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in sorted(self.status):
            st = self.status[kind]
            total = sum(st.values())
            errors = st["transport_error"] + sum(v for k, v in st.items() if k.isdigit() and int(k) >= 500)
            out[kind] = {
                "calls": total,
                "errors": errors,
                "status": dict(st),
                "p50_ms": pct(self.lat[kind], 0.5),
                "p99_ms": pct(self.lat[kind], 0.99),
            }
        return out


async def operator(
    api: httpx.AsyncClient, calls: Calls, devices: list[str], end: float, rng: random.Random
) -> None:
    while time.monotonic() < end:
        op = rng.choice(
            ["devices", "device", "events", "labels", "rollouts", "summary", "audit", "deployments"]
        )
        dev = rng.choice(devices) if devices else "dev_0"
        if op == "devices":
            r = await calls.do(api, op, "GET", "/devices", params={"limit": 200})
            if r is not None and r.status_code == 200 and r.json().get("next_cursor"):
                await calls.do(
                    api,
                    "devices_page2",
                    "GET",
                    "/devices",
                    params={"limit": 200, "cursor": r.json()["next_cursor"]},
                )
        elif op == "device":
            await calls.do(api, op, "GET", f"/devices/{dev}")
        elif op == "events":
            await calls.do(api, op, "GET", f"/devices/{dev}/events", params={"limit": 50})
        elif op == "labels":
            await calls.do(
                api,
                op,
                "PUT",
                f"/devices/{dev}/labels",
                json={"labels": {"site": "lab", "rack": str(rng.randint(1, 9))}},
            )
        elif op == "rollouts":
            await calls.do(api, op, "GET", "/rollouts", params={"limit": 20})
        elif op == "summary":
            await calls.do(api, op, "GET", "/fleet-summary")
        elif op == "audit":
            await calls.do(api, op, "GET", "/audit", params={"limit": 100})
        else:
            await calls.do(api, op, "GET", "/deployments")
        await asyncio.sleep(rng.uniform(0.05, 0.3))


async def release_manager(
    api: httpx.AsyncClient, calls: Calls, every: float, end: float, out: dict[str, int]
) -> None:
    version = 1
    while time.monotonic() < end:
        version += 1
        v = f"{version}.0.0"
        await calls.do(api, "upload", "POST", "/bundles", files={"file": ("b", make_bundle("det", v))})
        r = await calls.do(
            api,
            "deploy",
            "POST",
            "/deployments",
            json={
                "name": "det",
                "bundle": {"name": "det", "version": v},
                "strategy": {"waves": [{"percent": 50}, {"percent": 100}], "bake_seconds": 5},
            },
        )
        if r is not None and r.status_code in (200, 201):
            out["deployed"] += 1
        await asyncio.sleep(max(0.0, min(every, end - time.monotonic())))
    r = await calls.do(api, "rollouts", "GET", "/rollouts", params={"limit": 1000})
    if r is not None and r.status_code == 200:
        out["completed"] = sum(1 for x in r.json()["items"] if x["phase"] == "completed")
        out["aborted"] = sum(1 for x in r.json()["items"] if x["phase"] == "aborted")


async def run(args: argparse.Namespace, url: str, ca: Path, token: str, server_pid: int) -> dict[str, Any]:
    verify = client_ssl_context(ca)
    api = httpx.AsyncClient(
        base_url=url + "/api/v1/projects/default",
        verify=verify,
        timeout=60,
        headers={"Authorization": f"Bearer {token}"},
    )
    join = (await api.post("/join-tokens", json={"name": "soak", "max_uses": None})).json()["token"]
    await api.post("/bundles", files={"file": ("b", make_bundle("det", "1.0.0"))})
    await api.post(
        "/deployments",
        json={
            "name": "det",
            "bundle": {"name": "det", "version": "1.0.0"},
            "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
        },
    )
    sim = FleetSimulator(
        SimulatorConfig(
            server=url,
            join_token=join,
            devices=args.devices,
            poll_interval=args.poll_interval,
            jitter=0.5,
            report_every=3,
            max_connections=100,
            ca_cert=str(ca),
            seed=1,
        )
    )
    t0 = time.perf_counter()
    await sim.enroll_all()
    enroll_s = time.perf_counter() - t0
    devices = [str(d.device_id) for d in sim.devices if d.device_id]
    rss_start = rss_mib(server_pid)
    calls = Calls()
    releases = {"deployed": 0, "completed": 0, "aborted": 0}
    end = time.monotonic() + args.duration
    rng = random.Random(2)  # noqa: S311 - workload mix, not security
    samples: list[tuple[float, float | None]] = []

    async def sample_rss() -> None:
        start = time.monotonic()
        while time.monotonic() < end:
            samples.append((round(time.monotonic() - start, 1), rss_mib(server_pid)))
            await asyncio.sleep(10)

    t0 = time.perf_counter()
    await asyncio.gather(
        sample_rss(),
        sim.run(args.duration),
        *(operator(api, calls, devices, end, random.Random(rng.random())) for _ in range(args.operators)),  # noqa: S311
        release_manager(api, calls, args.release_every, end, releases),
    )
    elapsed = time.perf_counter() - t0
    metrics = (await api.get(url + "/metrics")).text
    server_side = {
        "desired_state": server_quantiles(metrics, "/device/v1/desired-state"),
        "report": server_quantiles(metrics, "/device/v1/report", "POST"),
        "devices_list": server_quantiles(metrics, "/api/v1/projects/{project}/devices"),
    }
    st = sim.stats
    await sim.aclose()
    await api.aclose()
    ops = calls.summary()
    op_calls = sum(v["calls"] for v in ops.values())
    op_errors = sum(v["errors"] for v in ops.values())
    return {
        "enroll_per_s": round(len(devices) / enroll_s, 1),
        "devices": {
            "polls": st.polls,
            "errors": st.errors,
            "last_error": st.last_error,
            "error_rate": round(st.errors / max(1, st.polls + st.errors), 6),
            "polls_per_s": round(st.polls / elapsed, 1),
            "p50_ms": pct(st.latencies, 0.5),
            "p99_ms": pct(st.latencies, 0.99),
        },
        "operators": {
            "calls": op_calls,
            "errors": op_errors,
            "error_rate": round(op_errors / max(1, op_calls), 6),
            "calls_per_s": round(op_calls / elapsed, 1),
            "by_kind": ops,
            "error_examples": calls.examples,
        },
        "releases": releases,
        "server_histogram_cumulative": server_side,
        "server_rss_mib": {"after_enroll": rss_start, "end": rss_mib(server_pid)},
        "server_rss_samples": [[t, v] for t, v in samples],
    }


def main() -> int:  # noqa: PLR0915 - one linear script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--poll-interval", type=float, default=5.0)
    ap.add_argument("--operators", type=int, default=4)
    ap.add_argument("--release-every", type=float, default=60.0)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "control-plane-soak.json")
    args = ap.parse_args()

    import psycopg

    db = f"ef_soak_{secrets.token_hex(4)}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    data = Path(tempfile.mkdtemp(prefix="ef-cp-soak-"))
    db_args = ["--data-dir", str(data), "--db", f"{args.pg}/{db}"]
    port = free_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "edgefleet", "server", "migrate", *db_args],
            check=True,
            capture_output=True,
        )
        log = (data / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "edgefleet", "server", "run", "--port", str(port), *db_args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url, ca = f"https://127.0.0.1:{port}", data / "tls" / "ca.pem"
        deadline = time.monotonic() + 90
        while True:
            text = (data / "server.log").read_text()
            m = re.search(r"(efk_\S+)", text)
            try:
                if (
                    m
                    and ca.exists()
                    and httpx.get(url + "/healthz", verify=client_ssl_context(ca), timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {text}")
            time.sleep(0.3)
        assert m is not None
        result = asyncio.run(run(args, url, ca, m.group(1), server.pid))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(data, ignore_errors=True)
    out = {
        "schema": "edgefleet.soak.control_plane/1",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/soak/control_plane_soak.py " + " ".join(sys.argv[1:]),
        "setup": {
            "devices": args.devices,
            "duration_s": args.duration,
            "poll_interval_s": args.poll_interval,
            "operators": args.operators,
            "release_every_s": args.release_every,
            "db": "postgresql",
            "tls": True,
        },
        **result,
        "machine": machine_info(),
        "edgefleet": __version__,
        "python": platform.python_version(),
        "load_average_at_end": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("devices", "releases", "server_histogram_cumulative")}, indent=1))
    print(json.dumps({k: v for k, v in out["operators"].items() if k != "by_kind"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

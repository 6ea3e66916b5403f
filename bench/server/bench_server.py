"""Control-plane capacity: enroll N simulated devices, poll with ETags, roll out a 3-wave release.

Runs `edgefleet server run` as its own process (SQLite by default, or ``--db postgresql://...``)
and the fleet simulator in this process, both on this machine::

    .venv/bin/python bench/server/bench_server.py --devices 10000 --poll-interval 60 --duration 120
    .venv/bin/python bench/server/bench_server.py --devices 10000 --db postgresql://postgres@127.0.0.1/test

Prints one JSON object: enrollment rate, polls/s, the share of 304 (ETag hits), client-side and
server-side (histogram) p50/p99 of desired-state polls, and the time a 3-wave rollout takes to
reach every device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from edgefleet import __version__
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.integration.server.conftest import make_bundle  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def histogram_quantiles(metrics: str, route: str, qs: tuple[float, ...]) -> dict[str, float]:
    """Quantiles (upper bucket bounds) of the server's request histogram for one route."""
    buckets: dict[float, float] = {}
    pat = re.compile(r"edgefleet_server_request_duration_seconds_bucket\{([^}]*)\} ([0-9.e+]+)")
    for m in pat.finditer(metrics):
        labels = dict(kv.split("=", 1) for kv in m.group(1).split(","))
        if labels.get("route") != f'"{route}"' or labels.get("method") != '"GET"':
            continue
        le = labels["le"].strip('"')
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(m.group(2))
    if not buckets:
        return {}
    total = buckets[float("inf")]
    out: dict[str, float] = {}
    for q in qs:
        for bound in sorted(buckets):
            if buckets[bound] >= q * total:
                out[f"p{int(q * 100)}"] = bound
                break
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915 - one linear script
    data = Path(tempfile.mkdtemp(prefix="edgefleet-server-bench-"))
    port = free_port()
    db_args = ["--data-dir", str(data)]
    schema = f"bench_{secrets.token_hex(4)}"
    if args.db:
        db_args += ["--db", args.db, "--db-schema", schema]
    subprocess.run([sys.executable, "-m", "edgefleet", "server", "migrate", *db_args], check=True)
    log = (data / "server.log").open("w")
    server = subprocess.Popen(
        # plain HTTP as in the recorded results: the numbers measure the control plane, not TLS
        [sys.executable, "-m", "edgefleet", "server", "run", "--port", str(port), "--tls", "off", *db_args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {
        "devices": args.devices,
        "db": "postgresql" if args.db else "sqlite",
        "poll_interval_s": args.poll_interval,
        "duration_s": args.duration,
        "edgefleet": __version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "data_dir": str(data),
        "load_avg_at_start": os.getloadavg(),
    }
    try:
        token = None
        for _ in range(300):
            time.sleep(0.2)
            m = re.search(r"(efk_\S+)", (data / "server.log").read_text())
            if m:
                token = m.group(1)
                try:
                    httpx.get(url + "/healthz", timeout=2)
                    break
                except httpx.HTTPError:
                    continue
        assert token, (data / "server.log").read_text()
        api = httpx.Client(
            base_url=url + "/api/v1/projects/default",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        join = api.post("/join-tokens", json={"name": "bench", "max_uses": None}).json()["token"]
        sim = FleetSimulator(
            SimulatorConfig(
                server=url,
                join_token=join,
                devices=args.devices,
                poll_interval=args.poll_interval,
                jitter=0.5,
                report_every=10**9,
                max_connections=args.connections,
                enroll_concurrency=32,
            )
        )
        for version in ("1.0.0", "2.0.0"):
            api.post("/bundles", files={"file": ("b", make_bundle("det", version))}).raise_for_status()
        # the fleet's current release first: devices get it as they enroll, no rollout needed
        api.post(
            "/deployments",
            json={
                "name": "det",
                "bundle": {"name": "det", "version": "1.0.0"},
                "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
            },
        ).raise_for_status()
        time.sleep(3)  # the empty rollout completes at the driver's next pass
        t0 = time.perf_counter()
        await sim.enroll_all()
        enroll_s = time.perf_counter() - t0
        result["enroll_per_s"] = round(args.devices / enroll_s, 1)
        t0 = time.perf_counter()
        await sim.poll_all()  # everyone takes 1.0.0, reports it, and has an ETag
        result["first_poll_and_report_per_s"] = round(args.devices / (time.perf_counter() - t0), 1)

        # steady state: every device polls once per interval with jitter; nothing changes -> 304s
        sim.stats = type(sim.stats)()
        before = httpx.get(url + "/metrics").text
        t0 = time.perf_counter()
        await sim.run(args.duration)
        elapsed = time.perf_counter() - t0
        st = sim.stats
        result["steady"] = {
            "polls": st.polls,
            "polls_per_s": round(st.polls / elapsed, 1),
            "offered_per_s": round(args.devices / args.poll_interval, 1),
            "etag_hit_ratio": round(st.not_modified / max(1, st.polls), 4),
            "errors": st.errors,
            "last_error": st.last_error,
            "client_p50_ms": round(st.percentile(0.5) * 1000, 1),
            "client_p99_ms": round(st.percentile(0.99) * 1000, 1),
            "server_histogram_cumulative": histogram_quantiles(
                httpx.get(url + "/metrics").text, "/device/v1/desired-state", (0.5, 0.99)
            ),
        }
        del before

        # a 3-wave rollout to every device, devices polling at the rollout interval
        sim.stats = type(sim.stats)()
        t0 = time.perf_counter()
        api.post(
            "/deployments",
            json={
                "name": "det",
                "bundle": {"name": "det", "version": "2.0.0"},
                "strategy": {
                    "waves": [{"percent": 10}, {"percent": 50}, {"percent": 100}],
                    "bake_seconds": args.bake,
                },
            },
        ).raise_for_status()
        sim2 = FleetSimulator(
            SimulatorConfig(
                server=url,
                join_token=join,
                devices=0,
                poll_interval=args.rollout_poll_interval,
                jitter=0.5,
                report_every=10**9,
                max_connections=args.connections,
            )
        )
        sim2.devices = sim.devices
        phase = "rolling"
        task = asyncio.create_task(sim2.run(args.rollout_timeout))
        while phase not in ("completed", "aborted") and time.perf_counter() - t0 < args.rollout_timeout:
            await asyncio.sleep(1)
            ro = api.get("/rollouts", params={"limit": 1}).json()["items"][0]
            phase = ro["phase"]
            result["rollout_last_seen"] = {"wave": ro["wave"], "counts": ro["counts"], "reason": ro["reason"]}
        reached = time.perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        versions = Counter(sim.versions("det").values())
        result["rollout_3_waves"] = {
            "phase": phase,
            "seconds_to_completed": round(reached, 1),
            "bake_s": args.bake,
            "device_poll_interval_s": args.rollout_poll_interval,
            "devices_on_2.0.0": versions.get("2.0.0", 0),
            "poll_errors": sim2.stats.errors,
            "last_error": sim2.stats.last_error,
        }
        await sim.aclose()
        await sim2.aclose()
        api.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
        if args.db:
            import psycopg

            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(data, ignore_errors=True)
    result["load_avg_at_end"] = os.getloadavg()
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--poll-interval", type=float, default=60.0)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--db", default=None, help="postgresql://... (default: SQLite)")
    p.add_argument("--bake", type=float, default=5.0)
    p.add_argument("--rollout-poll-interval", type=float, default=10.0)
    p.add_argument("--rollout-timeout", type=float, default=600.0)
    p.add_argument("--connections", type=int, default=256)
    out = asyncio.run(main(p.parse_args()))
    print(json.dumps(out, indent=2))

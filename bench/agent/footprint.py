"""Agent footprint: idle RSS/PSS and CPU, start to first poll, and during updates (first install,
hot reload of a model-only change, blue/green of a runtime change): time from deploy to serving,
the agent's CPU and its peak RSS/PSS while each update runs.

    sudo .venv/bin/python bench/agent/footprint.py [--idle-seconds 120]

Starts a real `edgefleet server` (SQLite in a temp dir), enrolls an agent, measures it idle with no
workload, then runs three updates of a tiny ONNX bundle. Prints one JSON object. Also measures what
the agent's imports cost on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.agent.conftest import AgentProc, Fleet, make_bundle, serving


def mem(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in {"Rss", "Pss"}:
            out[k.lower() + "_mb"] = round(int(v.split()[0]) / 1024, 1)
    return out


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def import_rss(modules: str) -> float:
    code = f"{modules}; import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    return round(int(subprocess.check_output([sys.executable, "-c", code])) / 1024, 1)


class Sampler:
    """Peak RSS/PSS of ``pid`` while a block runs (every 50 ms), and its CPU share."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = {"rss_mb": 0.0, "pss_mb": 0.0}
        self._halt = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._halt.wait(0.05):
            try:
                m = mem(self.pid)
            except OSError:
                return
            for k, v in m.items():
                self.peak[k] = max(self.peak[k], v)

    def __enter__(self) -> Sampler:
        self.c0, self.t0 = cpu_s(self.pid), time.monotonic()
        self._t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._halt.set()
        self._t.join()
        self.seconds = time.monotonic() - self.t0
        self.cpu = (cpu_s(self.pid) - self.c0) / self.seconds * 100


def update(a: AgentProc, fleet: Fleet, pid: int, version: str, **extra: Any) -> dict[str, float]:
    with Sampler(pid) as s:
        fleet.deploy("det", version, **extra)  # retried while the previous rollout finishes
        accepted = time.monotonic()
        a.wait(lambda st: serving(st, "det", version) and not st["in_progress"], 180, version)
        served = time.monotonic()
    return {
        "deploy_to_serving_s": round(served - accepted, 2),
        "agent_cpu_percent": round(s.cpu, 1),
        "peak_rss_mb": s.peak["rss_mb"],
        "peak_pss_mb": s.peak["pss_mb"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle-seconds", type=float, default=120.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ef-agent-bench-") as d:
        tmp = Path(d)
        fleet = Fleet(tmp)
        a = AgentProc(tmp / "agent", fleet, join=fleet.join_token(), prefix=f"efbench{os.getpid()}")
        try:
            a.start("--poll-wait", "30", "--report-interval", "10", "--backoff-max", "60")
            st = a.wait(lambda s: s["polls"] > 0, 120, "first poll")
            pid = int(st["pid"])
            time.sleep(5)
            c0, t0 = cpu_s(pid), time.monotonic()
            time.sleep(args.idle_seconds)
            idle_cpu = (cpu_s(pid) - c0) / (time.monotonic() - t0) * 100
            idle = mem(pid)
            for i, version in enumerate(("1.0.0", "2.0.0", "3.0.0")):
                fleet.upload(make_bundle(tmp, "det", version, scale=2.0 + i))
            updates = {
                "first install": update(a, fleet, pid, "1.0.0"),
                "hot reload (model only)": update(a, fleet, pid, "2.0.0"),
                "blue/green (resources changed)": update(a, fleet, pid, "3.0.0", resources={"pids": 4096}),
            }
            after = mem(pid)
            a.stop()  # a later start: identity on disk, no probe, the workload adopted
            a.join = None
            a.start("--poll-wait", "30", "--report-interval", "10", "--backoff-max", "60")
            restart = a.wait(lambda s: s["polls"] > 0, 120, "first poll after a restart")
            result = {
                "machine": f"{platform.machine()} {os.cpu_count()} cpus, kernel {platform.release()}, "
                f"python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
                "first_poll_s (enrollment, probe in a child)": round(st["first_poll_s"], 3),
                "restart_first_poll_s": round(restart["first_poll_s"], 3),
                "idle_seconds": args.idle_seconds,
                "idle_rss_mb": idle["rss_mb"],
                "idle_pss_mb": idle["pss_mb"],
                "idle_cpu_percent": round(idle_cpu, 3),
                "updates (health window 2 s)": updates,
                "after_update_rss_mb": after["rss_mb"],
                "after_update_pss_mb": after["pss_mb"],
                "heavy_modules": st["heavy_modules"],
                "edgefleet": subprocess.run(
                    ["git", "describe", "--always", "--dirty"],
                    capture_output=True,
                    text=True,
                    cwd=Path(__file__).parent,
                    check=False,
                ).stdout.strip()
                or "unknown",
                "import_rss_mb": {
                    "python -c pass": import_rss("pass"),
                    "cryptography ed25519": import_rss(
                        "from cryptography.hazmat.primitives.asymmetric import ed25519"
                    ),
                    "stdlib http.client (imports ssl)": import_rss("import http.client"),
                    "agent core": import_rss("import edgefleet.agent.agent"),
                    "+ sandbox supervisor": import_rss(
                        "import edgefleet.agent.agent, edgefleet.sandbox.supervisor"
                    ),
                    "+ bundle store (pydantic)": import_rss(
                        "import edgefleet.agent.agent, edgefleet.sandbox.supervisor, edgefleet.bundle.store"
                    ),
                    "+ tuning": import_rss(
                        "import edgefleet.agent.agent, edgefleet.sandbox.supervisor, edgefleet.bundle.store, "
                        "edgefleet.tuning"
                    ),
                },
            }
            print(json.dumps(result, indent=1))
        finally:
            a.stop()
            from edgefleet.sandbox.supervisor import Supervisor

            sup = Supervisor(a.state / "supervisor", parent=a.prefix)
            for w in sup.statuses():
                sup.remove(w.name, grace_s=2.0)
            sup.close()
            fleet.server.stop()


if __name__ == "__main__":
    main()

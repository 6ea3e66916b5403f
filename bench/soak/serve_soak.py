"""Soak `edgefleet serve` under sustained closed-loop load; report memory growth and error rate.

    .venv/bin/python bench/soak/serve_soak.py --duration 600 --out bench/soak/results/serve-soak.json

Starts `edgefleet serve` on a small MLP (3 x MatMul 256x256 + Relu, made here with onnx), drives it
with `edgefleet bench` (REST, binary tensors, closed loop, ``--concurrency`` clients) for
``--duration`` seconds, and samples the server's RSS (``/proc/<pid>/status`` VmRSS) every
``--sample`` seconds. Memory growth is the least-squares slope of RSS after the first minute
(warm-up: arenas and caches fill), in MiB per hour, and the last sample minus the one at one
minute. A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(path: Path, width: int = 256) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(3):
        w = numpy_helper.from_array(rng.standard_normal((width, width)).astype("float32") * 0.05, f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        out = "y" if i == 2 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mx) * (v - my) for t, v in points) / den * 3600


def main() -> int:  # noqa: PLR0915 - one linear script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "serve-soak.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ef-soak-"))
    model = work / "mlp.onnx"
    make_model(model)
    http, grpc = free_port(), free_port()
    log = (work / "serve.log").open("wb")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "serve",
            str(model),
            "--model-name",
            "mlp",
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"edgefleet serve did not start: {(work / 'serve.log').read_text()}")
            time.sleep(0.5)
        t0 = time.monotonic()

        def sampler() -> None:
            while not stop.is_set():
                kib = rss_kib(serve.pid)
                if kib is not None:
                    samples.append((round(time.monotonic() - t0, 1), kib))
                stop.wait(args.sample)

        threading.Thread(target=sampler, daemon=True).start()
        report = work / "bench.json"
        bench = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "bench",
                "mlp",
                "--protocol",
                "rest-binary",
                "--url",
                f"127.0.0.1:{http}",
                "--concurrency",
                str(args.concurrency),
                "--duration",
                str(args.duration),
                "--warmup",
                "5",
                "--json-out",
                str(report),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        stop.set()
        if bench.returncode != 0:
            served = (work / "serve.log").read_text()
            raise SystemExit(f"edgefleet bench failed: {bench.stderr[-3000:]}\n{served}")
        data = json.loads(report.read_text())
        alive = serve.poll() is None
    finally:
        stop.set()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    row = data["results"][0]
    after = [(t, kib / 1024) for t, kib in samples if t >= 60]
    at_1min = after[0][1] if after else None
    out: dict[str, Any] = {
        "schema": "edgefleet.soak.serve/1",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/soak/serve_soak.py " + " ".join(sys.argv[1:]),
        "load": {
            "protocol": "rest-binary",
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "model": "MLP 3 x (MatMul 256x256 + Relu), batch 1",
        },
        "requests": row["requests"],
        "errors_total": row["errors_total"],
        "errors": row["errors"],
        "error_rate": row["errors_total"] / max(1, row["requests"] + row["errors_total"]),
        "throughput_rps": row["throughput_rps"],
        "latency_ms": row["latency_ms"],
        "server_alive_at_end": alive,
        "rss_mib": {
            "start": round(samples[0][1] / 1024, 1) if samples else None,
            "at_1min": round(at_1min, 1) if at_1min is not None else None,
            "end": round(samples[-1][1] / 1024, 1) if samples else None,
            "max": round(max(k for _, k in samples) / 1024, 1) if samples else None,
            "growth_after_1min": round(after[-1][1] - after[0][1], 2) if after else None,
            "slope_after_1min_mib_per_hour": round(slope_per_hour(after), 2),
        },
        "rss_samples": [[t, round(k / 1024, 2)] for t, k in samples],
        "machine": data["machine"],
        "versions": data["versions"],
        "load_average_at_end": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(
        json.dumps(
            {
                k: out[k]
                for k in ("requests", "errors_total", "error_rate", "throughput_rps", "latency_ms", "rss_mib")
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Overhead of `edgefleet serve` over raw ONNX Runtime at batch 1 (a measurement, `pytest -m bench`).

Raw ORT in process, REST-binary and gRPC against a real `edgefleet serve` process, interleaved in
rounds on the same machine; prints the median of each round's p50/p90, the overhead, idle RSS and
time to ready. Run: `.venv/bin/python -m pytest -m bench tests/integration/serve -s -p no:cacheprovider`
(``EDGEFLEET_BENCH_SPINNING=0`` measures both sides with spinning off).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from edgefleet.probe.cpu_budget import read_cpu_budget
from edgefleet.serving.proto import grpc_service_pb2 as pb
from edgefleet.serving.proto import grpc_service_pb2_grpc as pb_grpc
from tests.integration.serve.serve_process import serve_process
from tests.unit.serve.serve_models import wheel_model

ROUNDS = int(os.environ.get("EDGEFLEET_BENCH_ROUNDS", "5"))
PER_ROUND = int(os.environ.get("EDGEFLEET_BENCH_REQUESTS", "200"))
SPINNING = os.environ.get("EDGEFLEET_BENCH_SPINNING", "1") != "0"
SERVE_ARGS = os.environ.get("EDGEFLEET_BENCH_SERVE_ARGS", "").split()


def _percentiles(call: Callable[[], object]) -> tuple[float, float]:
    for _ in range(20):
        call()
    times = []
    for _ in range(PER_ROUND):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    p50, p90 = np.percentile(times, [50, 90]) * 1000.0
    return float(p50), float(p90)


@pytest.mark.bench
def test_overhead_over_raw_onnxruntime(tmp_path: Path) -> None:
    model = wheel_model()
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    threads = read_cpu_budget().threads
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPINNING else "0")
    raw = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    spinning = "--spinning" if SPINNING else "--no-spinning"
    with serve_process(model, "--no-cache", "--model-name", "m", spinning, *SERVE_ARGS) as srv:
        ready_s = time.perf_counter() - started
        rss_mb = int(Path(f"/proc/{srv.process.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [1, 3, 224, 224],
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        body = header + x.tobytes()
        host, port = srv.http.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port))
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def rest() -> None:
            conn.request(
                "POST",
                "/v2/models/m/infer",
                body=body,
                headers={"Inference-Header-Content-Length": str(len(header))},
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200

        channel = grpc.insecure_channel(srv.grpc)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="m")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 3, 224, 224])
        request.raw_input_contents.append(x.tobytes())
        paths: dict[str, Callable[[], object]] = {
            "raw": lambda: raw.run(None, {"x": x}),
            "rest-binary": rest,
            "grpc": lambda: stub.ModelInfer(request),
        }
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
        for _ in range(ROUNDS):
            for name, call in paths.items():
                results[name].append(_percentiles(call))
        conn.close()
        channel.close()
    summary = {
        k: (statistics.median(p[0] for p in v), statistics.median(p[1] for p in v))
        for k, v in results.items()
    }
    lines = [
        (
            f"machine: {platform.machine()}, cpus {os.cpu_count()}, budget threads {threads}, "
            f"onnxruntime {ort.__version__}, spinning {SPINNING}, serve args {SERVE_ARGS}, "
            f"load avg {os.getloadavg()[0]:.1f}"
        ),
        f"ready in {ready_s:.2f} s (process start to ready); RSS with model {rss_mb:.0f} MB",
        f"{'path':<12} {'p50 ms':>8} {'p90 ms':>8} {'p50 over raw':>13}",
    ]
    lines += [
        f"{name:<12} {p50:8.3f} {p90:8.3f} {p50 - summary['raw'][0]:+13.3f}"
        for name, (p50, p90) in summary.items()
    ]
    print("\n" + "\n".join(lines))  # noqa: T201 - a benchmark reports on stdout
    assert all(p50 > 0 for p50, _ in summary.values())

"""`edgefleet bench` against a real KServe v2 server over REST-binary, REST-JSON and gRPC."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.runtime.loadgen.bench import BenchPlan, run_bench
from edgefleet.runtime.loadgen.errors import BenchTargetError
from tests.integration.tools.kserve_fixture import KServeFixture

PROTOCOLS = ("rest-binary", "rest-json", "grpc")


@pytest.fixture
def server(tiny_model: Path) -> Iterator[KServeFixture]:
    with KServeFixture(tiny_model, "tiny") as s:
        yield s


def _url(s: KServeFixture, protocol: str) -> str:
    return s.grpc_url if protocol == "grpc" else s.http_url


@pytest.mark.integration
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bench_measures_each_protocol(server: KServeFixture, protocol: str) -> None:
    """Requests flow with no errors; inputs come from the server's metadata, batch fills the dynamic dim."""
    plan = BenchPlan(
        model="tiny",
        protocol=protocol,  # type: ignore[arg-type]
        url=_url(server, protocol),
        concurrency=(1, 3),
        duration_s=0.6,
        warmup_s=0.1,
        batch=2,
    )
    report, results = run_bench(plan)
    assert [r.concurrency for r in results] == [1, 3]
    for r in results:
        assert r.requests > 5
        assert r.errors == {}
        assert r.latency_ms is not None
        assert 0 < r.latency_ms.p50 <= r.latency_ms.p99 <= r.latency_ms.max
        assert r.items_per_s == pytest.approx(2 * r.throughput_rps)
        assert r.process_cpu is not None
    assert report["inputs"]["tensors"] == [{"name": "x", "datatype": "FP32", "shape": [2, 16]}]
    assert report["target"]["protocol"] == protocol


@pytest.mark.integration
@pytest.mark.parametrize(("protocol", "kind"), [("rest-binary", "http:503"), ("grpc", "grpc:UNAVAILABLE")])
def test_failed_requests_are_counted_by_kind(tiny_model: Path, protocol: str, kind: str) -> None:
    """Every 4th request fails on the server: counted under its kind, kept out of the latencies."""
    with KServeFixture(tiny_model, "tiny", fail_every=4) as s:
        _, results = run_bench(
            BenchPlan(model="tiny", protocol=protocol, url=_url(s, protocol), duration_s=0.6, warmup_s=0.0)  # type: ignore[arg-type]
        )
    (r,) = results
    assert set(r.errors) == {kind}
    assert "overloaded" in r.error_examples[kind]
    total = r.requests + r.errors[kind]
    assert r.errors[kind] == pytest.approx(total / 4, abs=2)


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["rest-binary", "grpc"])
def test_unknown_model_and_closed_port_are_clear_errors(server: KServeFixture, protocol: str) -> None:
    """An unknown model or an endpoint nobody listens on stops before any load, with its own code."""
    with pytest.raises(BenchTargetError) as info:
        run_bench(BenchPlan(model="nope", protocol=protocol, url=_url(server, protocol)))  # type: ignore[arg-type]
    assert info.value.code == "bench.model_unavailable"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(BenchTargetError) as info:
        run_bench(BenchPlan(model="tiny", protocol=protocol, url=closed, timeout_s=2))  # type: ignore[arg-type]
    assert info.value.code == "bench.target_unreachable"


@pytest.mark.integration
def test_cli_grpc_writes_json_report(server: KServeFixture, tmp_path: Path) -> None:
    """The CLI prints the table and writes the JSON with machine and versions."""
    out = tmp_path / "report.json"
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "bench", "tiny", "--protocol", "grpc", "--url", server.grpc_url,
         "-c", "1,2", "-d", "0.5", "--warmup", "0.1", "--json-out", str(out)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "p50" in r.stdout
    report = json.loads(out.read_text())
    assert report["schema"] == "edgefleet.bench/1"
    assert [row["concurrency"] for row in report["results"]] == [1, 2]
    assert report["versions"]["tritonclient"]
    assert report["machine"]["kernel"]

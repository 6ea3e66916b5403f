"""`edgefleet bench` with raw ONNX Runtime in process, on a wheel model and a tiny graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefleet.runtime.loadgen.bench import BenchPlan, run_bench
from edgefleet.runtime.loadgen.runner import run_closed_loop
from edgefleet.runtime.loadgen.targets import OrtTarget


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "bench", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    r.stderr = " ".join(r.stderr.split())  # the console wraps long lines
    return r


@pytest.mark.integration
def test_cli_ort_on_pp_lcnet(lcnet_model: Path, tmp_path: Path) -> None:
    """PP-LCNet at batch 2, two concurrencies: table on stdout, JSON with machine, versions, shapes."""
    out = tmp_path / "r.json"
    r = _cli(str(lcnet_model), "-c", "1,2", "-d", "1", "--warmup", "0.2", "-b", "2", "--threads", "1",
             "--json-out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["target"]["protocol"] == "ort"
    assert report["target"]["intra_op_threads"] == 1
    assert report["inputs"]["tensors"] == [{"name": "x", "datatype": "FP32", "shape": [2, 3, 224, 224]}]
    assert report["inputs"]["request_bytes"] == 2 * 3 * 224 * 224 * 4
    for row in report["results"]:
        assert row["requests"] > 0
        assert row["errors_total"] == 0
        assert row["items_per_s"] == pytest.approx(2 * row["throughput_rps"], rel=1e-3)
        assert 0 < row["achieved_concurrency"] <= row["concurrency"] + 0.05
        assert row["process_cpu"] > 0  # ORT runs in this process: its compute is counted
        assert set(row["latency_ms"]) == {"count", "min", "mean", "p50", "p90", "p99", "max"}
    assert report["machine"]["cpu_budget"] > 0
    assert {"onnxruntime", "numpy", "edgefleet"} <= set(report["versions"])


@pytest.mark.integration
def test_cli_input_file_and_errors(tiny_model: Path, tmp_path: Path) -> None:
    """An .npy input is used as given; bad options exit 2 with the field named, no traceback."""
    np.save(tmp_path / "x.npy", np.ones((3, 16), np.float32))
    out = tmp_path / "r.json"
    r = _cli(str(tiny_model), "--input-file", str(tmp_path / "x.npy"), "-d", "0.3", "--warmup", "0",
             "--json-out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["inputs"]["tensors"][0]["shape"] == [3, 16]

    cases = [
        (["--protocol", "http"], "--protocol"),
        (["--protocol", "grpc"], "--url"),
        (["-c", "0"], "concurrency"),
        (["-c", "a,b"], "--concurrency"),
        (["--shape", "x=1x17"], "fixes it at 16"),
        (["--shape", "q=1x16"], "unknown input"),
    ]
    for extra, needle in cases:
        r = _cli(str(tiny_model), "-d", "0.2", *extra)
        assert r.returncode == 2, (extra, r.stderr)
        assert needle in r.stderr, (extra, r.stderr)
        assert "Traceback" not in r.stderr
    r = _cli(str(tmp_path / "missing.onnx"))
    assert r.returncode == 2
    assert "does not exist [bench.model_missing]" in r.stderr


@pytest.mark.integration
def test_runtime_failures_are_counted_not_timed(tiny_model: Path) -> None:
    """Requests ORT rejects (wrong dtype) are errors of kind ort:*, with no latency recorded."""
    target = OrtTarget(tiny_model, threads=1)
    result = run_closed_loop(
        target, {"x": np.ones((1, 16), np.float64)}, concurrency=2, duration_s=0.3, warmup_s=0
    )
    assert result.requests == 0
    assert result.latency_ms is None
    assert list(result.errors) == ["ort:InvalidArgument"]
    assert result.errors["ort:InvalidArgument"] > 0


@pytest.mark.integration
def test_closed_loop_keeps_the_workers_busy(tiny_model: Path) -> None:
    """With N workers on a fast model, achieved concurrency is close to N and nothing fails."""
    report, (result,) = run_bench(
        BenchPlan(model=str(tiny_model), concurrency=(4,), duration_s=0.5, warmup_s=0.1, threads=1)
    )
    assert result.errors == {}
    assert result.requests > 100
    assert result.achieved_concurrency > 2.0
    assert report["load"]["mode"] == "closed-loop"

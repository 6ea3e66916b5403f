"""`edgefleet bench --backends` measures backends side by side in one run and writes one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefleet.cli.app import app
from tests.unit.runtimes.runtimes_models import TFLITE, lcnet


@pytest.mark.integration
def test_bench_compares_onnxruntime_and_openvino(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = ["bench", str(lcnet()), "--backends", "onnxruntime:cpu,openvino", "-d", "0.5", "--warmup", "0.1"]
    result = CliRunner().invoke(app, [*args, "--json-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "side by side" in result.output
    report = json.loads(out.read_text())["backends"]
    assert report["onnxruntime:cpu"]["target"]["providers"] == ["CPUExecutionProvider"]
    assert report["openvino"]["target"]["backend"] == "openvino"
    assert all(r["results"][0]["requests"] > 0 for r in report.values())


@pytest.mark.integration
def test_bench_runs_litert_on_the_tflite_model() -> None:
    args = ["bench", str(TFLITE), "--backends", "litert", "-d", "0.3", "--warmup", "0.1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "litert:xnnpack" in result.output

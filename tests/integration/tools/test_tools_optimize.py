"""`edgefleet optimize` on real models: sizes, accuracy delta, latency, and what it refuses to do."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgefleet.errors import NotFoundError, UnsupportedError
from edgefleet.runtime.optimize import OptimizeError, OptimizePlan, convert_fp16, optimize_model


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "optimize", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    r.stderr = " ".join(r.stderr.split())  # the console wraps long lines
    return r


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.integration
def test_dynamic_int8_shrinks_pp_lcnet_and_reports_agreement(lcnet_model: Path, tmp_path: Path) -> None:
    """Dynamic INT8 on the wheel's PP-LCNet: the file shrinks, top-1 agreement and diffs are reported."""
    out = tmp_path / "lcnet.int8.onnx"
    report_path = tmp_path / "report.json"
    before = _sha(lcnet_model)
    r = _cli(
        str(lcnet_model),
        "-o",
        str(out),
        "--int8",
        "dynamic",
        "--sample-count",
        "4",
        "--latency-runs",
        "10",
        "--json-out",
        str(report_path),
    )
    assert r.returncode == 0, r.stderr
    assert "top-1 agreement" in r.stdout
    report = json.loads(report_path.read_text())
    assert out.stat().st_size < 0.5 * lcnet_model.stat().st_size
    assert report["size_ratio"] < 0.5
    (name,) = report["accuracy"]["outputs"]
    assert 0.0 <= report["accuracy"]["top1_agreement"][name] <= 1.0
    assert report["accuracy"]["outputs"][name]["max_abs_diff"] > 0  # INT8 is not bit-exact
    assert report["latency_ms"]["original_p50"] > 0
    assert report["latency_ms"]["optimized_p50"] > 0
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert _sha(lcnet_model) == before


@pytest.mark.integration
def test_refuses_to_overwrite_input_and_existing_output(lcnet_model: Path, tmp_path: Path) -> None:
    """The input is never the output (even with --force); an existing output needs --force."""
    before = _sha(lcnet_model)
    for extra in ([], ["--force"]):
        r = _cli(str(lcnet_model), "-o", str(lcnet_model), "--int8", "dynamic", *extra)
        assert r.returncode == 4, r.stderr
        assert "[optimize.output_is_input]" in r.stderr
    link = tmp_path / "same.onnx"
    link.symlink_to(lcnet_model)
    r = _cli(str(lcnet_model), "-o", str(link), "--force")
    assert r.returncode == 4
    assert _sha(lcnet_model) == before

    existing = tmp_path / "taken.onnx"
    existing.write_bytes(b"keep me")
    r = _cli(str(lcnet_model), "-o", str(existing))
    assert r.returncode == 4
    assert "[optimize.output_exists]" in r.stderr
    assert existing.read_bytes() == b"keep me"


@pytest.mark.integration
def test_graph_optimization_is_exact_and_force_replaces(tiny_model: Path, tmp_path: Path) -> None:
    """ORT graph optimization keeps outputs identical; --force replaces an existing output atomically."""
    out = tmp_path / "opt.onnx"
    out.write_bytes(b"old")
    report = optimize_model(
        OptimizePlan(model=tiny_model, output=out, force=True, sample_count=3, latency_runs=5)
    )
    assert report["mode"] == "graph"
    assert report["accuracy"]["outputs"]["y"]["max_abs_diff"] < 1e-5
    assert report["accuracy"]["top1_agreement"]["y"] == 1.0
    onnx.checker.check_model(str(out))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".edgefleet-optimize-")] == []


@pytest.mark.integration
def test_static_int8_with_npy_calibration_folder(tiny_model: Path, tmp_path: Path) -> None:
    """Static INT8 (QDQ) calibrates on a folder of .npy samples and checks accuracy on them."""
    cal = tmp_path / "cal"
    cal.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        np.save(cal / f"{i}.npy", rng.standard_normal(16).astype(np.float32))  # no batch dim: one is added
    out = tmp_path / "static.onnx"
    report = optimize_model(
        OptimizePlan(model=tiny_model, output=out, mode="int8-static", calibration=cal, latency_runs=5)
    )
    assert report["accuracy"]["samples"] == 6
    assert report["accuracy"]["source"] == str(cal)
    assert report["accuracy"]["top1_agreement"]["y"] >= 0.5
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.integration
def test_static_int8_with_image_calibration(lcnet_model: Path, tmp_path: Path) -> None:
    """Images are resized to the input's H x W and scaled; the quantized model agrees on them."""
    from PIL import Image

    cal = tmp_path / "images"
    cal.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)).save(cal / f"{i}.png")
    out = tmp_path / "lcnet.qdq.onnx"
    r = _cli(str(lcnet_model), "-o", str(out), "--calibration", str(cal), "--image-mean", "0.5,0.5,0.5",
             "--image-std", "0.5,0.5,0.5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size < 0.5 * lcnet_model.stat().st_size


@pytest.mark.integration
def test_fp16_refused_on_cpu_and_converter_keeps_io(tiny_model: Path, tmp_path: Path) -> None:
    """FP16 is refused for the CPU provider; the converter itself halves weights and keeps FP32 I/O."""
    with pytest.raises(UnsupportedError) as info:
        optimize_model(OptimizePlan(model=tiny_model, output=tmp_path / "h.onnx", mode="fp16"))
    assert info.value.code == "optimize.fp16_unsupported"
    assert not (tmp_path / "h.onnx").exists()

    half = convert_fp16(onnx.load(str(tiny_model)))
    assert {t.data_type for t in half.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(session.run(None, {"x": x})[0] - ref).max() < 1e-2


@pytest.mark.integration
def test_bad_inputs_are_clear_errors(tiny_model: Path, tmp_path: Path) -> None:
    """Missing or corrupt model, missing calibration, bad options: one clear error each, nothing written."""
    out = tmp_path / "o.onnx"
    with pytest.raises(NotFoundError):
        optimize_model(OptimizePlan(model=tmp_path / "nope.onnx", output=out))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(OptimizeError) as info:
        optimize_model(OptimizePlan(model=corrupt, output=out))
    assert info.value.code == "optimize.model_invalid"
    with pytest.raises(OptimizeError) as info:
        optimize_model(OptimizePlan(model=tiny_model, output=out, mode="int8-static"))
    assert info.value.code == "optimize.calibration_missing"
    with pytest.raises(OptimizeError) as info:
        optimize_model(OptimizePlan(model=tiny_model, output=tmp_path / "no" / "dir.onnx"))
    assert info.value.code == "optimize.output_dir"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OptimizeError) as info:
        optimize_model(OptimizePlan(model=tiny_model, output=out, mode="int8-static", calibration=empty))
    assert info.value.code == "optimize.samples"
    assert not out.exists()

    for extra, needle in [
        (["--int8", "weird"], "--int8"),
        (["--int8", "dynamic", "--fp16"], "one of"),
        (["--level", "max"], "--level"),
        (["--image-mean", "1,2"], "--image-mean"),
    ]:
        r = _cli(str(tiny_model), "-o", str(out), *extra)
        assert r.returncode == 2, (extra, r.stderr)
        assert needle in r.stderr
        assert "Traceback" not in r.stderr
    assert not out.exists()

"""Backends behind one interface: choice by file type, OpenVINO = ONNX Runtime, LiteRT and delegates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edgefleet.errors import EdgefleetError
from edgefleet.probe.cpu_budget import CpuBudget
from edgefleet.runtime import ModelManager, ModelRepository
from edgefleet.runtime.backend import choose_backend, load_model
from edgefleet.runtime.errors import BackendError, DelegateError, InferInputError
from edgefleet.runtime.session import SessionConfig
from edgefleet.serving.metrics import ServeMetrics
from tests.unit.runtimes.runtimes_models import TFLITE, lcnet, ocr_det

pytestmark = pytest.mark.unit


def _budget() -> CpuBudget:
    return CpuBudget(cpus=(0, 1), quota=None, source="affinity")


def test_auto_choice_follows_the_file_type(tmp_path: Path) -> None:
    assert choose_backend(Path("m.tflite"), SessionConfig()).name == "litert"
    assert choose_backend(Path("m.onnx"), SessionConfig()).name == "onnxruntime"
    assert choose_backend(Path("m.onnx"), SessionConfig(backend="openvino")).name == "openvino"
    with pytest.raises(BackendError) as mismatch:
        choose_backend(Path("m.tflite"), SessionConfig(backend="openvino"))
    assert mismatch.value.code == "runtime.backend_mismatch"
    with pytest.raises(BackendError) as unknown:
        choose_backend(Path("m.pt"), SessionConfig())
    assert unknown.value.code == "runtime.unsupported_model_type"
    with pytest.raises(BackendError) as missing:
        choose_backend(Path("m.tflite"), SessionConfig(), is_installed=lambda _: False)
    assert missing.value.code == "runtime.backend_unavailable"
    assert "ai-edge-litert" in missing.value.message


@pytest.mark.parametrize("model", [lcnet, ocr_det], ids=["pp-lcnet", "pp-ocrv4-det"])
def test_openvino_matches_the_onnxruntime_cpu_provider(model: object) -> None:
    path = model()  # type: ignore[operator]
    cpu = load_model(path, config=SessionConfig(providers=("cpu",), warmup=False), budget_reader=_budget)
    ov = load_model(path, config=SessionConfig(backend="openvino", warmup=False), budget_reader=_budget)
    assert cpu.backend == "onnxruntime"
    assert cpu.providers == ("CPUExecutionProvider",)
    assert ov.backend == "openvino"
    assert ov.providers == ("openvino:CPU",)
    assert [s.name for s in ov.inputs] == [s.name for s in cpu.inputs]
    assert [(s.name, s.datatype) for s in ov.outputs] == [(s.name, s.datatype) for s in cpu.outputs]
    side = 224 if path.name.startswith("rapid") else 320
    image = np.random.default_rng(3).random((1, 3, side, side), dtype=np.float32)
    name = cpu.inputs[0].name
    expected, got = cpu.run({name: image}), ov.run({name: image})
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-3, atol=1e-4)


def test_litert_session_matches_the_interpreter() -> None:
    session = load_model(TFLITE, budget_reader=_budget)
    assert session.backend == "litert"
    assert session.providers == ("litert:xnnpack",)
    assert "XNNPACK" in session.choice.reason
    assert [(s.name, s.datatype, s.shape) for s in session.inputs] == [("input", "FP32", (1, 128, 128, 3))]
    image = np.random.default_rng(5).random((1, 128, 128, 3), dtype=np.float32)
    direct = Interpreter(model_path=str(TFLITE), num_threads=1)
    direct.allocate_tensors()
    direct.set_tensor(direct.get_input_details()[0]["index"], image)
    direct.invoke()
    out = session.run({"input": image})
    for detail in direct.get_output_details():
        np.testing.assert_allclose(
            out[detail["name"]], direct.get_tensor(detail["index"]), rtol=1e-5, atol=1e-5
        )
    with pytest.raises(InferInputError):
        session.validate({"input": image[:, :64]})


@pytest.mark.parametrize(
    ("delegate", "why"),
    [("/nonexistent/libedgefleet_delegate.so", "cannot open"), ("libc.so.6", "not a LiteRT delegate")],
)
def test_delegate_failure_is_an_error_unless_cpu_fallback_is_allowed(delegate: str, why: str) -> None:
    with pytest.raises(DelegateError) as err:
        load_model(TFLITE, config=SessionConfig(delegates=(delegate,)), budget_reader=_budget)
    assert err.value.code == "runtime.delegate_load_failed"
    assert why in err.value.message
    assert "--allow-cpu-fallback" in err.value.message
    session = load_model(
        TFLITE, config=SessionConfig(delegates=(delegate,), allow_cpu_fallback=True), budget_reader=_budget
    )
    assert session.providers == ("litert:xnnpack",)
    assert "CPU fallback allowed" in session.choice.reason


def test_model_config_allows_fallback_and_metrics_name_the_backend(tmp_path: Path) -> None:
    (tmp_path / "faces" / "1").mkdir(parents=True)
    shutil.copy(TFLITE, tmp_path / "faces" / "1" / "model.tflite")
    (tmp_path / "faces" / "config.toml").write_text('[runtime]\ndelegates = ["edgetpu-missing.so"]\n')
    metrics = ServeMetrics()
    manager = ModelManager(ModelRepository(tmp_path), SessionConfig(warmup=False), observer=metrics)
    with pytest.raises(EdgefleetError) as err:
        manager.load("faces")
    assert err.value.code == "runtime.delegate_load_failed"
    (tmp_path / "faces" / "config.toml").write_text(
        '[runtime]\ndelegates = ["edgetpu-missing.so"]\nallow_cpu_fallback = true\n'
    )
    (loaded,) = manager.load("faces")
    assert loaded.session.backend == "litert"
    value = metrics.registry.get_sample_value(
        "edgefleet_serve_model_info",
        {"model": "faces", "version": "1", "backend": "litert", "provider": "litert:xnnpack"},
    )
    assert value == 1.0
    manager.close()


def test_pick_fastest_times_the_backends_and_caches_the_winner(tmp_path: Path) -> None:
    config = SessionConfig(pick_fastest=True, cache_dir=tmp_path, warmup=False)
    first = load_model(lcnet(), config=config, budget_reader=_budget)
    assert first.backend in {"onnxruntime", "openvino"}
    assert "fastest of onnxruntime/openvino measured" in first.choice.reason
    assert (tmp_path / "backends.json").is_file()
    again = load_model(lcnet(), config=config, budget_reader=_budget)
    assert again.backend == first.backend
    assert "cached" in again.choice.reason


def test_auto_uses_the_probe_accelerators_for_openvino(tmp_path: Path) -> None:
    from edgefleet.probe.accelerators import collect_accelerators
    from edgefleet.testing import fake_devices

    laptop = collect_accelerators(fake_devices.x86_intel_npu_uvc(tmp_path).probe_paths())
    found = frozenset(f"{d.kind}:{r}" for d in laptop.devices or () for r in d.runtimes)
    choice = choose_backend(Path("m.onnx"), SessionConfig(), accelerators=lambda: found)
    assert (choice.name, choice.device) == ("openvino", "NPU")
    assert "Intel NPU" in choice.reason
    named = choose_backend(Path("m.onnx"), SessionConfig(providers=("cpu",)), accelerators=lambda: found)
    assert named.name == "onnxruntime"
    assert choose_backend(Path("m.onnx"), SessionConfig(), accelerators=frozenset).name == "onnxruntime"

"""`edgefleet serve` runs a .tflite model through the same KServe v2 API as .onnx models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from ai_edge_litert.interpreter import Interpreter

from tests.integration.serve.serve_process import serve_process
from tests.unit.runtimes.runtimes_models import TFLITE, lcnet


def _direct(image: np.ndarray) -> dict[str, np.ndarray]:
    it = Interpreter(model_path=str(TFLITE), num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], image)
    it.invoke()
    return {str(d["name"]): it.get_tensor(d["index"]).copy() for d in it.get_output_details()}


@pytest.mark.integration
def test_tflite_and_onnx_models_served_side_by_side_over_http_and_grpc(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "faces" / "1").mkdir(parents=True)
    shutil.copy(TFLITE, repo / "faces" / "1" / "model.tflite")
    (repo / "orient" / "1").mkdir(parents=True)
    shutil.copy(lcnet(), repo / "orient" / "1" / "model.onnx")
    image = np.random.default_rng(11).random((1, 128, 128, 3), dtype=np.float32)
    expected = _direct(image)

    with serve_process(repo, "--cache-dir", str(tmp_path / "cache"), "--threads", "1") as srv:
        summary = "".join(srv.output)
        assert "backend litert; providers litert:xnnpack" in summary
        assert "backend onnxruntime; providers CPUExecutionProvider" in summary
        http = th.InferenceServerClient(srv.http)
        assert http.is_model_ready("faces")
        assert http.is_model_ready("orient")
        meta = http.get_model_metadata("faces")
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [1, 128, 128, 3]}]
        a = th.InferInput("input", list(image.shape), "FP32")
        a.set_data_from_numpy(image)
        result = http.infer("faces", [a])
        for name, value in expected.items():
            np.testing.assert_allclose(result.as_numpy(name), value, rtol=1e-5, atol=1e-5)
        http.close()

        grpc = tg.InferenceServerClient(srv.grpc)
        g = tg.InferInput("input", list(image.shape), "FP32")
        g.set_data_from_numpy(image)
        out = grpc.infer("faces", [g], outputs=[tg.InferRequestedOutput("classificators")])
        np.testing.assert_allclose(
            out.as_numpy("classificators"), expected["classificators"], rtol=1e-5, atol=1e-5
        )
        grpc.close()

        import urllib.request

        metrics = urllib.request.urlopen(f"http://{srv.http}/metrics", timeout=10).read().decode()
        assert (
            'edgefleet_serve_model_info{backend="litert",model="faces",'
            'provider="litert:xnnpack",version="1"} 1.0' in metrics
        )

"""The remote inference seam: a pipeline whose model sits behind a KServe v2 gRPC endpoint.

The endpoint is a real gRPC server speaking the Open Inference Protocol (tritonclient's own
service definition) with ONNX Runtime behind it; the pipeline reaches it through tritonclient.
"""

from __future__ import annotations

import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from edgefleet.pipeline.kserve_model import KServeModel
from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import parse_spec

from .media import write_video

pytestmark = pytest.mark.integration


class OrtKServe(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.calls = 0

    def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        del request, context
        return service_pb2.ServerLiveResponse(live=True)

    def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        del request, context

        def tensor(t: Any) -> Any:
            shape = [d if isinstance(d, int) else -1 for d in t.shape]
            return service_pb2.ModelMetadataResponse.TensorMetadata(name=t.name, datatype="FP32", shape=shape)

        return service_pb2.ModelMetadataResponse(
            name=self.name,
            platform="onnxruntime_onnx",
            inputs=[tensor(t) for t in self.session.get_inputs()],
            outputs=[tensor(t) for t in self.session.get_outputs()],
        )

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        del context
        self.calls += 1
        feeds = {
            t.name: np.frombuffer(raw, np.float32).reshape(list(t.shape))
            for t, raw in zip(request.inputs, request.raw_input_contents, strict=True)
        }
        names = [o.name for o in self.session.get_outputs()]
        results = self.session.run(names, feeds)
        response = service_pb2.ModelInferResponse(model_name=self.name, id=request.id)
        for name, value in zip(names, results, strict=True):
            out = response.outputs.add()
            out.name, out.datatype = name, "FP32"
            out.shape.extend(value.shape)
            response.raw_output_contents.append(np.ascontiguousarray(value, np.float32).tobytes())
        return response


def test_pipeline_runs_its_model_on_a_kserve_v2_grpc_endpoint(
    tmp_path: Path, orientation_model: Path
) -> None:
    """Same spec as in-process, with ``url`` instead of ``path``; results match in-process ones."""
    service = OrtKServe("orientation", orientation_model)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        write_video(tmp_path / "clip.mkv", 8)
        common = """
[pipeline]
policy = "every"
[[sources]]
kind = "video"
name = "cam"
url = "clip.mkv"
[[models]]
name = "orientation"
{where}
[models.preprocess]
resize = {{ width = 224, height = 224 }}
[models.postprocess]
kind = "classify"
labels = ["0", "90", "180", "270"]
top_k = 1
[[sinks]]
kind = "jsonl"
path = "{out}"
"""
        remote = parse_spec(common.format(where=f'url = "grpc://127.0.0.1:{port}"', out="remote.jsonl"))
        local = parse_spec(common.format(where=f'path = "{orientation_model}"', out="local.jsonl"))
        assert Pipeline(remote, base_dir=tmp_path).run().frames_out == 8
        assert Pipeline(local, base_dir=tmp_path).run().frames_out == 8
    finally:
        server.stop(None)
    assert service.calls == 8
    remote_lines = [json.loads(x)["results"] for x in (tmp_path / "remote.jsonl").read_text().splitlines()]
    local_lines = [json.loads(x)["results"] for x in (tmp_path / "local.jsonl").read_text().splitlines()]
    for remote_result, local_result in zip(remote_lines, local_lines, strict=True):
        (got,) = remote_result["orientation"]["top"]
        (want,) = local_result["orientation"]["top"]
        assert got["label"] == want["label"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)


def _rest_server(model: Path) -> ThreadingHTTPServer:
    """KServe v2 REST with the binary tensor extension, ONNX Runtime behind it."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def tensor(t: Any) -> dict[str, Any]:
        return {
            "name": t.name,
            "datatype": "FP32",
            "shape": [d if isinstance(d, int) else -1 for d in t.shape],
        }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _send(self, body: bytes, header_length: int | None = None) -> None:
            self.send_response(200)
            self.send_header(
                "Content-Type", "application/octet-stream" if header_length else "application/json"
            )
            if header_length is not None:
                self.send_header("Inference-Header-Content-Length", str(header_length))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            meta = {
                "name": "orientation",
                "platform": "onnxruntime_onnx",
                "inputs": [tensor(t) for t in session.get_inputs()],
                "outputs": [tensor(t) for t in session.get_outputs()],
            }
            self._send(json.dumps(meta).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            header_length = int(self.headers.get("Inference-Header-Content-Length", len(body)))
            request = json.loads(body[:header_length])
            offset = header_length
            feeds = {}
            for t in request["inputs"]:
                size = t["parameters"]["binary_data_size"]
                feeds[t["name"]] = np.frombuffer(body[offset : offset + size], np.float32).reshape(t["shape"])
                offset += size
            names = [o.name for o in session.get_outputs()]
            outputs, blobs = [], []
            for name, value in zip(names, session.run(names, feeds), strict=True):
                raw = np.ascontiguousarray(value, np.float32).tobytes()
                outputs.append(
                    {
                        "name": name,
                        "datatype": "FP32",
                        "shape": list(value.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                )
                blobs.append(raw)
            head = json.dumps({"model_name": "orientation", "outputs": outputs}).encode()
            self._send(head + b"".join(blobs), len(head))

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def test_pipeline_runs_its_model_on_a_kserve_v2_rest_endpoint(
    tmp_path: Path, orientation_model: Path
) -> None:
    """``url = "http://..."``: binary tensors over KServe v2 REST through tritonclient.http."""
    server = _rest_server(orientation_model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_video(tmp_path / "clip.mkv", 5)
        spec = parse_spec(
            f"""
[pipeline]
policy = "every"
[[sources]]
kind = "video"
name = "cam"
url = "clip.mkv"
[[models]]
name = "orientation"
url = "http://127.0.0.1:{server.server_address[1]}"
[models.preprocess]
resize = {{ width = 224, height = 224 }}
[models.postprocess]
kind = "classify"
top_k = 4
[[sinks]]
kind = "jsonl"
path = "rest.jsonl"
"""
        )
        assert Pipeline(spec, base_dir=tmp_path).run().frames_out == 5
    finally:
        server.shutdown()
        server.server_close()
    for line in (tmp_path / "rest.jsonl").read_text().splitlines():
        top = json.loads(line)["results"]["orientation"]["top"]
        assert sorted(t["label"] for t in top) == ["0", "1", "2", "3"]
        assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-3)


def test_kserve_rest_model_made_in_one_thread_infers_from_others(orientation_model: Path) -> None:
    """tritonclient.http connections belong to their thread: a pipeline stage thread must not reuse the
    constructor's (it failed with "Cannot switch to a different thread" on the first frame)."""
    server = _rest_server(orientation_model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    model = KServeModel(f"http://127.0.0.1:{server.server_address[1]}", "orientation")
    try:
        batch = {model.inputs[0].name: np.zeros((1, 3, 224, 224), np.float32)}
        expected = model.infer(batch)[model.outputs[0].name]
        pool = futures.ThreadPoolExecutor(3)
        try:  # the old failure was a hang: bound it
            name = model.outputs[0].name
            results = list(pool.map(lambda _: model.infer(batch)[name], range(6), timeout=60))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for got in results:
            np.testing.assert_allclose(got, expected, rtol=1e-5)
    finally:
        model.close()
        server.shutdown()
        server.server_close()

"""A minimal real KServe v2 server (REST with the binary extension, and gRPC) over ONNX Runtime.

It exists to test the bench's client side over real sockets: the REST half is the stdlib HTTP
server speaking the v2 JSON/binary formats of :mod:`v2codec`, the gRPC half is grpcio serving
``inference.GRPCInferenceService`` from tritonclient's own generated stubs. ``fail_every=N`` makes
every N-th inference fail (503 / UNAVAILABLE), so error counting can be checked.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.integration.tools.v2codec import NUMPY_TO_V2, V2_DTYPES, decode, encode

_ORT_TO_V2 = {"tensor(float)": "FP32", "tensor(int64)": "INT64", "tensor(float16)": "FP16"}
_PATH = re.compile(r"^/v2/models/(?P<m>[^/]+)(?:/versions/(?P<v>[^/]+))?(?P<rest>/ready|/infer)?$")


class OrtModel:
    def __init__(self, path: Path, name: str, fail_every: int = 0) -> None:
        self.name = name
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self.fail_every = fail_every

    def _tensors(self, items: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "datatype": _ORT_TO_V2[t.type],
                "shape": [d if isinstance(d, int) else -1 for d in t.shape],
            }
            for t in items
        ]

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": self._tensors(self.session.get_inputs()),
            "outputs": self._tensors(self.session.get_outputs()),
        }

    def should_fail(self) -> bool:
        with self._lock:
            n = next(self._count)
        return bool(self.fail_every) and n % self.fail_every == 0

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, feeds), strict=True))


class _Rest(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: OrtModel

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - stdlib signature
        return None

    def _send(self, status: int, body: bytes, header_length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if header_length else "application/json")
        self.send_header("Content-Length", str(len(body)))
        if header_length is not None:
            self.send_header("Inference-Header-Content-Length", str(header_length))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode())

    def _route(self) -> re.Match[str] | None:
        match = _PATH.match(self.path.split("?")[0])
        if match is None or match["m"] != self.model.name:
            self._error(404, f"unknown model path {self.path}")
            return None
        return match

    def do_GET(self) -> None:
        if self.path in ("/v2/health/live", "/v2/health/ready"):
            self._send(200, b"")
            return
        match = self._route()
        if match is None:
            return
        if match["rest"] == "/ready":
            self._send(200, b"")
        else:
            self._send(200, json.dumps(self.model.metadata()).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        match = self._route()
        if match is None or match["rest"] != "/infer":
            return
        if self.model.should_fail():
            self._error(503, "overloaded")
            return
        header_length = self.headers.get("Inference-Header-Content-Length")
        header, feeds = decode(body, int(header_length) if header_length else None, "inputs")
        outputs = self.model.run(feeds)
        wanted = header.get("outputs") or [{"name": n} for n in outputs]
        binary = any((o.get("parameters") or {}).get("binary_data") for o in wanted)
        picked = {o["name"]: outputs[o["name"]] for o in wanted}
        out, length = encode(
            "outputs", picked, binary=binary, extra={"model_name": self.model.name, "model_version": "1"}
        )
        self._send(200, out, length)


class _Grpc(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, model: OrtModel) -> None:
        self.model = model

    # gRPC fixes the method names and signatures, used or not.
    def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802, ARG002
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802, ARG002
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802, ARG002
        return service_pb2.ModelReadyResponse(ready=request.name == self.model.name)

    def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.name != self.model.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name}")
        meta = self.model.metadata()
        return service_pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[service_pb2.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[service_pb2.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.model_name != self.model.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.model_name}")
        if self.model.should_fail():
            context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded")
        feeds = {
            t.name: np.frombuffer(raw, dtype=V2_DTYPES[t.datatype]).reshape(list(t.shape))
            for t, raw in zip(request.inputs, request.raw_input_contents, strict=True)
        }
        outputs = self.model.run(feeds)
        return service_pb2.ModelInferResponse(
            model_name=self.model.name,
            model_version="1",
            outputs=[
                service_pb2.ModelInferResponse.InferOutputTensor(
                    name=n, datatype=NUMPY_TO_V2[a.dtype], shape=a.shape
                )
                for n, a in outputs.items()
            ],
            raw_output_contents=[np.ascontiguousarray(a).tobytes() for a in outputs.values()],
        )


class KServeFixture:
    """Both halves on free loopback ports; ``http_url`` and ``grpc_url`` are ``host:port``."""

    def __init__(self, model: Path, name: str, *, fail_every: int = 0) -> None:
        self.model = OrtModel(model, name, fail_every)
        handler = type("Handler", (_Rest,), {"model": self.model})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Grpc(self.model), self._grpc)
        grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self.http_url = f"127.0.0.1:{self._http.server_address[1]}"
        self.grpc_url = f"127.0.0.1:{grpc_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> KServeFixture:
        self._grpc.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None).wait()

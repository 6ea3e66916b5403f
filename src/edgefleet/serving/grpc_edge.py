"""The KServe v2 gRPC edge: the standard ``inference.GRPCInferenceService`` over the data plane.

A synchronous ``grpc.server`` with a thread pool: each call runs on a pool thread that decodes,
calls the :class:`DataPlane` and encodes, so a request crosses no extra thread hop. Errors become
gRPC status codes (never a traceback); the stable error code is in the ``edgefleet-error-code``
trailing metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, NoReturn, TypeVar

import grpc
import numpy as np

from edgefleet.errors import (
    ConflictError,
    EdgefleetError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    UnsupportedError,
)
from edgefleet.serving.codec import check_shape, dtype_of, from_raw, from_values, to_raw
from edgefleet.serving.dataplane import DataPlane
from edgefleet.serving.errors import RequestError
from edgefleet.serving.proto import grpc_service_pb2 as pb
from edgefleet.serving.proto import grpc_service_pb2_grpc as pb_grpc
from edgefleet.serving.types import InferInput, InferRequest, RequestedOutput

__all__ = ["build_grpc_server", "grpc_status"]

log = logging.getLogger(__name__)

_CONTENTS_FIELD: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

T = TypeVar("T")


_STATUS: Final[tuple[tuple[type[EdgefleetError], grpc.StatusCode], ...]] = (
    (PayloadTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnsupportedError, grpc.StatusCode.UNIMPLEMENTED),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def grpc_status(exc: EdgefleetError) -> grpc.StatusCode:
    """The gRPC status of an error branch (the same meaning as its HTTP status); most specific first."""
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), grpc.StatusCode.INTERNAL)


def _abort(context: grpc.ServicerContext, exc: EdgefleetError) -> NoReturn:
    context.set_trailing_metadata((("edgefleet-error-code", exc.code),))
    context.abort(grpc_status(exc), exc.message)
    raise AssertionError("grpc abort returned")  # pragma: no cover - abort always raises


def _guard(context: grpc.ServicerContext, call: Callable[[], T]) -> T:
    try:
        return call()
    except EdgefleetError as exc:
        _abort(context, exc)
    except Exception as exc:
        log.exception("unexpected error in a gRPC call", exc_info=exc)
        _abort(context, EdgefleetError("internal server error; see the server log"))


def _param(value: Any) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind else None


def decode_infer(request: Any) -> InferRequest:
    """A ``ModelInferRequest`` message as an :class:`InferRequest`."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; they must match",
            field="raw_input_contents",
        )
    inputs = []
    for i, tensor in enumerate(request.inputs):
        shape = check_shape(tensor.name, list(tensor.shape))
        if raw:
            data = from_raw(tensor.name, tensor.datatype, shape, raw[i])
        else:
            dtype_of(tensor.name, tensor.datatype)
            field = _CONTENTS_FIELD.get(tensor.datatype)
            if field is None:
                raise RequestError(
                    f"input {tensor.name!r}: {tensor.datatype} needs raw_input_contents",
                    code="infer.bad_datatype",
                    tensor=tensor.name,
                )
            values = list(getattr(tensor.contents, field))
            data = from_values(tensor.name, tensor.datatype, shape, values)
        inputs.append(InferInput(tensor.name, tensor.datatype, shape, data))
    outputs = [RequestedOutput(o.name) for o in request.outputs] or None
    parameters = {k: _param(v) for k, v in request.parameters.items()}
    return InferRequest(request.model_name, request.model_version, inputs, outputs, request.id, parameters)


class _Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane

    def ServerLive(self, _request: Any, _context: grpc.ServicerContext) -> Any:  # noqa: N802 - proto names
        return pb.ServerLiveResponse(live=self.dp.live())

    def ServerReady(self, _request: Any, _context: grpc.ServicerContext) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=self.dp.ready())

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        ready = _guard(context, lambda: self.dp.model_ready(request.name, request.version))
        return pb.ModelReadyResponse(ready=ready)

    def ServerMetadata(self, _request: Any, _context: grpc.ServicerContext) -> Any:  # noqa: N802
        return pb.ServerMetadataResponse(**self.dp.server_metadata())

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        meta = _guard(context, lambda: self.dp.model_metadata(request.name, request.version))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
        )

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def run() -> Any:
            try:
                decoded = decode_infer(request)
            except EdgefleetError as exc:
                self.dp.count_failure(request.model_name, request.model_version, exc.code)
                raise
            result = self.dp.infer(decoded)
            response = pb.ModelInferResponse(
                model_name=result.model, model_version=result.version, id=result.id
            )
            for out in result.outputs:
                response.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
                response.raw_output_contents.append(to_raw(np.asarray(out.data), out.datatype))
            return response

        return _guard(context, run)

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        rows = _guard(context, self.dp.repository_index)
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[
                index(name=r.name, version=r.version, state=r.state, reason=r.reason)
                for r in rows
                if not request.ready or r.state == "READY"
            ]
        )

    def RepositoryModelLoad(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        _guard(context, lambda: self.dp.load(request.model_name))
        return pb.RepositoryModelLoadResponse()

    def RepositoryModelUnload(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        _guard(context, lambda: self.dp.unload(request.model_name))
        return pb.RepositoryModelUnloadResponse()


def build_grpc_server(
    dataplane: DataPlane, *, address: str, max_body_bytes: int, workers: int = 8
) -> tuple[grpc.Server, int]:
    """A started-ready (not started) gRPC server bound to ``address``; returns it and its port."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
            # Let a client send a whole image without waiting for flow-control window updates.
            ("grpc.http2.lookahead_bytes", 4 * 1024 * 1024),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(dataplane), server)  # type: ignore[no-untyped-call]
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise UnavailableError(
            f"cannot bind the gRPC port at {address}", code="serve.bind_failed", address=address
        )
    return server, port

"""The KServe v2 REST edge (Starlette): parse, call the :class:`DataPlane`, map errors.

The binary tensor extension is supported both ways: a request whose JSON header is followed by
raw tensor bytes (``Inference-Header-Content-Length``), and outputs sent as raw bytes when the
request asks for ``binary_data`` (per output) or ``binary_data_output`` (for all).
Errors are ``{"error": "<message>", "code": "<stable code>", "fields": {...}}`` with the status of
the error's branch: KServe clients read ``error``; programs read ``code``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import asdict
from typing import Any, Final, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from edgefleet.errors import EdgefleetError
from edgefleet.serving.codec import check_shape, from_raw, from_values, to_raw, to_values
from edgefleet.serving.dataplane import DataPlane
from edgefleet.serving.errors import BodyTooLargeError, RequestError
from edgefleet.serving.types import InferInput, InferRequest, InferResponse, RequestedOutput

__all__ = ["HEADER_LENGTH", "RestApp", "build_rest_app", "decode_request", "encode_response", "read_body"]

log = logging.getLogger(__name__)

T = TypeVar("T")

HEADER_LENGTH: Final = "inference-header-content-length"


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error_response(exc: EdgefleetError) -> Response:
    body: dict[str, Any] = {"error": exc.message, "code": exc.code}
    if exc.fields:
        body["fields"] = exc.to_dict()["fields"]
    return Response(_json_bytes(body), status_code=exc.http_status, media_type="application/json")


async def _send_error(send: Send, exc: EdgefleetError) -> None:
    response = _error_response(exc)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(response.body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def _bad(message: str, **fields: Any) -> RequestError:
    return RequestError(message, **fields)


def _decode_input(i: int, item: Any, binary: memoryview, offset: int) -> tuple[InferInput, int]:
    """One entry of ``inputs``; returns it and the offset of the next binary tensor."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise _bad(f"inputs[{i}] must be an object with a 'name'", field=f"inputs[{i}]")
    name: str = item["name"]
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise _bad(f"input {name!r}: 'datatype' is required", field="datatype", tensor=name)
    shape = check_shape(name, item.get("shape"))  # type: ignore[arg-type]
    params = item.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise _bad(
                f"input {name!r}: binary_data_size {size} runs past the body",
                code="infer.size_mismatch",
                tensor=name,
            )
        return InferInput(
            name, datatype, shape, from_raw(name, datatype, shape, binary[offset : offset + size])
        ), (offset + size)
    if "data" not in item:
        raise _bad(f"input {name!r}: needs 'data' or parameters.binary_data_size", field="data", tensor=name)
    return InferInput(name, datatype, shape, from_values(name, datatype, shape, item["data"])), offset


def _decode_outputs(doc: dict[str, Any]) -> list[RequestedOutput] | None:
    if not isinstance(doc.get("outputs"), list):
        return None
    outputs = []
    for item in doc["outputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad("each of 'outputs' must be an object with a 'name'", field="outputs")
        params = item.get("parameters") or {}
        flag = params.get("binary_data") if isinstance(params, dict) else None
        outputs.append(RequestedOutput(item["name"], bool(flag) if flag is not None else None))
    return outputs


def decode_request(model: str, version: str, body: bytes, header_length: int | None) -> InferRequest:
    """Parse a v2 infer body (JSON, or JSON header + binary tensors) into an :class:`InferRequest`."""
    if header_length is not None and not 0 <= header_length <= len(body):
        raise _bad(
            f"{HEADER_LENGTH} {header_length} is outside the body of {len(body)} bytes", field=HEADER_LENGTH
        )
    end = len(body) if header_length is None else header_length
    try:
        doc = json.loads(body[:end]) if end else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"request body is not JSON: {exc}", field="body") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise _bad("request must be a JSON object with an 'inputs' list", field="inputs")
    binary = memoryview(body)[end:]
    offset = 0
    inputs: list[InferInput] = []
    for i, item in enumerate(doc["inputs"]):
        tensor, offset = _decode_input(i, item, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise _bad(f"{len(binary) - offset} bytes of binary data belong to no input", field="body")
    parameters = doc.get("parameters")
    request_id = doc.get("id")
    return InferRequest(
        model,
        version,
        inputs,
        _decode_outputs(doc),
        request_id if isinstance(request_id, str) else "",
        parameters if isinstance(parameters, dict) else {},
    )


def encode_response(request: InferRequest, response: InferResponse) -> tuple[bytes, int | None]:
    """The response body and, when outputs are binary, the JSON header's length."""
    default_binary = bool(request.parameters.get("binary_data_output", False))
    wanted = {o.name: o.binary for o in request.outputs or ()}
    chunks: list[bytes] = []
    outputs = []
    for out in response.outputs:
        flag = wanted.get(out.name)
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(out.shape)}
        if flag if flag is not None else default_binary:
            raw = to_raw(out.data, out.datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = to_values(out.data, out.datatype)
        outputs.append(entry)
    header: dict[str, Any] = {
        "model_name": response.model,
        "model_version": response.version,
        "outputs": outputs,
    }
    if response.id:
        header["id"] = response.id
    head = _json_bytes(header)
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``gzip`` or ``deflate`` request compression, never inflating past ``limit`` bytes."""
    if encoding not in ("gzip", "deflate"):
        raise _bad(
            f"content-encoding {encoding!r} is not supported; use gzip, deflate or none",
            field="content-encoding",
        )
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _bad(f"request body is not valid {encoding} data: {exc}", field="content-encoding") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise BodyTooLargeError(f"decompressed request body is over the limit of {limit} bytes", limit=limit)
    return data


class ClientDisconnectedError(Exception):
    """The client went away before its body arrived: there is nobody to answer."""


async def read_body(receive: Receive, declared: str | None, encoding: str | None, limit: int) -> bytes:
    """Read a request body from ASGI ``receive``, refusing more than ``limit`` bytes (413)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"request body of {declared} bytes is over the limit of {limit}", limit=limit)
    parts: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        if chunk:
            total += len(chunk)
            if total > limit:
                raise BodyTooLargeError(f"request body is over the limit of {limit} bytes", limit=limit)
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    encoding = (encoding or "identity").strip().lower()
    return body if encoding == "identity" else _decompress(body, encoding, limit)


class _Api:
    """The REST handlers; each parses, calls the data plane and returns (errors go to ``on_error``)."""

    def __init__(
        self, dataplane: DataPlane, executor: Executor, max_body_bytes: int, inline_below_ms: float = 0.0
    ) -> None:
        self.dp = dataplane
        self.executor = executor
        self.max_body_bytes = max_body_bytes
        self.inline_below_s = inline_below_ms / 1000.0
        self.active = 0
        """Infer requests being handled now (read, run or answered)."""
        self.inline_runs = 0
        self._cost: dict[str, float] = {}
        """Recent decode+run+encode seconds per model (moving average), for the inline decision."""

    def _inline(self, model: str) -> bool:
        """Run on the event loop when nothing else is in flight (REST or gRPC) and the model is fast.

        That saves two thread switches (a few hundred microseconds on a small CPU) at batch 1.
        Under concurrency, for slow or unknown models and for batching models (whose batch window
        would block the loop) the request goes to a worker thread.
        """
        if self.active != 1 or self.dp.in_flight or not self.inline_below_s:
            return False
        cost = self._cost.get(model)
        if cost is None or cost >= self.inline_below_s:
            return False
        try:
            return not self.dp.manager.get(model).batching
        except EdgefleetError:
            return False

    async def _body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLargeError(
                f"request body of {declared} bytes is over the limit of {limit}", limit=limit
            )
        parts = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise BodyTooLargeError(f"request body is over the limit of {limit} bytes", limit=limit)
            parts.append(chunk)
        body = b"".join(parts)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        return body if encoding == "identity" else _decompress(body, encoding, limit)

    async def _offload(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _run_infer(
        self, model: str, version: str, body: bytes, header_length: int | None
    ) -> tuple[bytes, int | None]:
        started = time.perf_counter()
        try:
            request = decode_request(model, version, body, header_length)
        except EdgefleetError as exc:
            self.dp.count_failure(model, version, exc.code)
            raise
        out = encode_response(request, self.dp.infer(request))
        seconds = time.perf_counter() - started
        previous = self._cost.get(model)
        self._cost[model] = seconds if previous is None else 0.8 * previous + 0.2 * seconds
        return out

    async def infer(self, scope: Scope, receive: Receive, send: Send, model: str, version: str) -> None:
        """POST .../infer as plain ASGI: the hot path skips routing and request/response objects."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.active += 1
        try:
            try:
                body = await read_body(
                    receive,
                    headers.get("content-length"),
                    headers.get("content-encoding"),
                    self.max_body_bytes,
                )
                raw_length = headers.get(HEADER_LENGTH)
                if raw_length is not None and not raw_length.strip().isdigit():
                    raise _bad(f"{HEADER_LENGTH} must be a number of bytes", field=HEADER_LENGTH)
            except EdgefleetError as exc:
                self.dp.count_failure(model, version, exc.code)
                raise
            header_length = None if raw_length is None else int(raw_length)
            if self._inline(model):
                self.inline_runs += 1
                content, length = self._run_infer(model, version, body, header_length)
            else:
                content, length = await self._offload(self._run_infer, model, version, body, header_length)
        except ClientDisconnectedError:
            return
        except EdgefleetError as exc:
            await _send_error(send, exc)
            return
        except Exception as exc:
            log.exception("unexpected error in a request", exc_info=exc)
            await _send_error(send, EdgefleetError("internal server error; see the server log"))
            return
        finally:
            self.active -= 1
        out_headers = [(b"content-length", str(len(content)).encode())]
        if length is None:
            out_headers.append((b"content-type", b"application/json"))
        else:
            out_headers.append((b"content-type", b"application/octet-stream"))
            out_headers.append((b"inference-header-content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})

    async def live(self, _: Request) -> Response:
        return JSONResponse({"live": self.dp.live()})

    async def ready(self, _: Request) -> Response:
        ok = self.dp.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def server_metadata(self, _: Request) -> Response:
        return JSONResponse(self.dp.server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        meta = self.dp.model_metadata(request.path_params["model"], request.path_params.get("version", ""))
        return JSONResponse(asdict(meta))

    async def model_ready(self, request: Request) -> Response:
        model = request.path_params["model"]
        ok = self.dp.model_ready(model, request.path_params.get("version", ""))
        return JSONResponse({"name": model, "ready": ok}, status_code=200 if ok else 503)

    async def repository_index(self, request: Request) -> Response:
        body = await self._body(request)
        only_ready = False
        if body.strip():
            try:
                doc = json.loads(body)
            except ValueError as exc:
                raise _bad(f"request body is not JSON: {exc}", field="body") from exc
            only_ready = bool(doc.get("ready")) if isinstance(doc, dict) else False
        rows = [asdict(r) for r in self.dp.repository_index() if not only_ready or r.state == "READY"]
        return JSONResponse(rows)

    async def repository_load(self, request: Request) -> Response:
        await self._body(request)
        await self._offload(self.dp.load, request.path_params["model"])
        return Response(b"", status_code=200)

    async def repository_unload(self, request: Request) -> Response:
        await self._body(request)
        await self._offload(self.dp.unload, request.path_params["model"])
        return Response(b"", status_code=200)

    async def metrics(self, _: Request) -> Response:
        return Response(generate_latest(self.dp.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def on_error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, EdgefleetError):
            return _error_response(exc)
        if isinstance(exc, HTTPException):
            body = {"error": f"{exc.detail}: {request.method} {request.url.path}", "code": "serve.no_route"}
            return Response(_json_bytes(body), status_code=exc.status_code, media_type="application/json")
        log.error("unexpected error in a request", exc_info=exc)
        return _error_response(EdgefleetError("internal server error; see the server log"))


_INFER_PATH: Final = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


class _InferEndpoint:
    """``POST .../infer`` as a Starlette route too, so other methods on the path get a 405."""

    def __init__(self, api: _Api) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope.get("path_params", {})
        await self.api.infer(scope, receive, send, params["model"], params.get("version", ""))


class RestApp:
    """The ASGI app: ``POST .../infer`` goes straight to its handler, the rest through Starlette."""

    def __init__(self, api: _Api, routes: Starlette) -> None:
        self.api = api
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INFER_PATH.match(scope["path"])
            if match:
                await self.api.infer(scope, receive, send, match[1], match[2] or "")
                return
        await self.routes(scope, receive, send)


def build_rest_app(
    dataplane: DataPlane, executor: Executor, *, max_body_bytes: int, inline_below_ms: float = 0.0
) -> RestApp:
    """The ASGI app serving the v2 REST API and ``/metrics``.

    ``inline_below_ms``: a request that is alone in flight, for a model whose requests recently
    took less than this, runs on the event loop instead of a worker thread (0 turns this off).
    """
    api = _Api(dataplane, executor, max_body_bytes, inline_below_ms)
    routes: list[tuple[str, Callable[[Request], Awaitable[Response]], str]] = [
        ("/v2/health/live", api.live, "GET"),
        ("/v2/health/ready", api.ready, "GET"),
        ("/v2", api.server_metadata, "GET"),
        ("/v2/models/{model}", api.model_metadata, "GET"),
        ("/v2/models/{model}/versions/{version}", api.model_metadata, "GET"),
        ("/v2/models/{model}/ready", api.model_ready, "GET"),
        ("/v2/models/{model}/versions/{version}/ready", api.model_ready, "GET"),
        ("/v2/repository/index", api.repository_index, "POST"),
        ("/v2/repository/models/{model}/load", api.repository_load, "POST"),
        ("/v2/repository/models/{model}/unload", api.repository_unload, "POST"),
        ("/metrics", api.metrics, "GET"),
    ]
    endpoint = _InferEndpoint(api)
    infer_routes = [
        Route("/v2/models/{model}/infer", endpoint, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", endpoint, methods=["POST"]),
    ]
    app = Starlette(
        routes=[Route(path, handler, methods=[method]) for path, handler, method in routes] + infer_routes,
        exception_handlers={
            Exception: api.on_error,
            EdgefleetError: api.on_error,
            HTTPException: api.on_error,
        },
    )
    return RestApp(api, app)

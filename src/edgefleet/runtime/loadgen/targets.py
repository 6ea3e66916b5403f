"""What the load goes to: raw ONNX Runtime in this process, or a KServe v2 endpoint.

A :class:`Target` knows its inputs (from the model's metadata) and opens one :class:`Worker` per
closed-loop client; a worker holds its own connection and pre-built request objects, so a
measured request is exactly one call. Remote targets use ``tritonclient``, the reference
implementation of the protocol (REST with or without the binary tensor extension, and gRPC
``inference.GRPCInferenceService``), so a result here is what a Triton client would see.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from edgefleet.runtime.loadgen.errors import BenchInputError, BenchTargetError
from edgefleet.runtime.loadgen.inputs import TensorSpec, v2_datatype

__all__ = [
    "PROTOCOLS",
    "GrpcTarget",
    "HttpTarget",
    "OrtTarget",
    "Target",
    "WireProtocol",
    "Worker",
    "classify_error",
    "make_target",
]

WireProtocol = Literal["ort", "rest-binary", "rest-json", "grpc"]
PROTOCOLS: tuple[WireProtocol, ...] = ("ort", "rest-binary", "rest-json", "grpc")

Array = np.ndarray[Any, Any]


class Worker(Protocol):
    """One closed-loop client: a connection and the request it repeats."""

    def send(self) -> None:
        """Send one request and wait for the whole response; raise on any failure."""

    def close(self) -> None:
        """Release the connection."""


class Target(Protocol):
    """An endpoint (or in-process session) that serves one model."""

    protocol: WireProtocol

    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs as its metadata declares them."""

    def describe(self) -> dict[str, Any]:
        """What is measured, for the report: protocol, address or path, model, version."""

    def new_worker(self, inputs: Mapping[str, Array]) -> Worker:
        """A worker that sends ``inputs`` on its own connection."""

    def close(self) -> None:
        """Release what the target holds."""


def classify_error(exc: BaseException) -> str:  # noqa: PLR0911 - one return per error kind
    """A short, stable kind for a failed request: ``http:503``, ``grpc:UNAVAILABLE``, ``timeout``..."""
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "")
        if status.startswith("StatusCode."):
            return "grpc:" + status.removeprefix("StatusCode.")
        if status.isdigit():
            return "http:" + status
        text = str(exc.message() or "").lower()
        if "timed out" in text or "timeout" in text:
            return "timeout"
        return "server:" + (status or "error")
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection:" + type(exc).__name__
    if isinstance(exc, OSError):
        return "os:" + (os.strerror(exc.errno) if exc.errno else type(exc).__name__)
    module = type(exc).__module__ or ""
    if module.startswith("onnxruntime"):
        return "ort:" + type(exc).__name__
    if type(exc).__name__ == "Timeout":  # gevent.Timeout raised inside geventhttpclient
        return "timeout"
    return "error:" + type(exc).__name__


# --- raw ONNX Runtime in this process ------------------------------------------------------------


class _OrtWorker:
    def __init__(self, session: Any, feeds: Mapping[str, Array]) -> None:
        self._session = session
        self._feeds = dict(feeds)

    def send(self) -> None:
        self._session.run(None, self._feeds)

    def close(self) -> None:
        return None


class OrtTarget:
    """Raw ONNX Runtime in this process: the floor every server is compared against.

    ``threads`` is the intra-op pool size (the CPU budget by default); ``spinning`` keeps ORT's
    worker threads spinning between runs (ORT's default, lowest latency, burns idle CPU).
    """

    protocol: WireProtocol = "ort"

    def __init__(
        self,
        model: Path,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        import onnxruntime as ort

        if not model.is_file():
            raise BenchInputError(
                f"model {model} does not exist", code="bench.model_missing", path=str(model)
            )
        if threads is None:
            from edgefleet.probe.cpu_budget import read_cpu_budget

            threads = read_cpu_budget().threads
        available = ort.get_available_providers()
        unknown = [p for p in providers if p not in available]
        if unknown:
            raise BenchInputError(
                f"execution provider(s) {unknown} are not in this ONNX Runtime build",
                code="bench.provider",
                allowed=available,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's graph-cleanup warnings are noise here
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self._session = ort.InferenceSession(str(model), options, providers=list(providers))
        except Exception as exc:  # ORT raises its own pybind types for every load failure
            raise BenchInputError(
                f"ONNX Runtime cannot load {model}: {exc}", code="bench.model_invalid", path=str(model)
            ) from exc
        self._model = model
        self._threads = threads
        self._spinning = spinning
        self._providers = list(self._session.get_providers())

    def input_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(i.name, v2_datatype(i.type, name=i.name), _dims(i.shape))
            for i in self._session.get_inputs()
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "model": str(self._model),
            "providers": self._providers,
            "intra_op_threads": self._threads,
            "spinning": self._spinning,
        }

    def new_worker(self, inputs: Mapping[str, Array]) -> Worker:
        return _OrtWorker(self._session, inputs)

    def close(self) -> None:
        return None


def _dims(shape: Sequence[Any]) -> tuple[int, ...]:
    """Metadata dims as ints: symbolic names, ``None`` and ``-1`` all become -1."""
    out: list[int] = []
    for d in shape:
        try:
            out.append(int(d))
        except (TypeError, ValueError):
            out.append(-1)
    return tuple(out)


# --- KServe v2 over REST -------------------------------------------------------------------------


def _host_port(url: str) -> str:
    """tritonclient wants ``host:port``; accept ``http://host:port[/]`` too."""
    for scheme in ("http://", "https://", "grpc://"):
        url = url.removeprefix(scheme)
    return url.rstrip("/")


class _HttpWorker:
    def __init__(self, target: HttpTarget, inputs: Mapping[str, Array]) -> None:
        import tritonclient.http as httpclient

        self._client = httpclient.InferenceServerClient(
            target.url, concurrency=1, connection_timeout=target.timeout_s, network_timeout=target.timeout_s
        )
        binary = target.binary
        self._inputs = []
        for spec in target.input_specs():
            item = httpclient.InferInput(spec.name, list(inputs[spec.name].shape), spec.datatype)
            item.set_data_from_numpy(inputs[spec.name], binary_data=binary)
            self._inputs.append(item)
        self._outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in target.output_names]
        self._model = target.model
        self._version = target.version

    def send(self) -> None:
        self._client.infer(self._model, self._inputs, model_version=self._version, outputs=self._outputs)

    def close(self) -> None:
        self._client.close()


class HttpTarget:
    """A KServe v2 REST endpoint; ``binary`` selects the binary tensor extension over plain JSON."""

    def __init__(
        self, url: str, model: str, *, version: str = "", binary: bool = True, timeout_s: float = 30.0
    ) -> None:
        import tritonclient.http as httpclient

        self.url = _host_port(url)
        self.model = model
        self.version = version
        self.binary = binary
        self.timeout_s = timeout_s
        self.protocol: WireProtocol = "rest-binary" if binary else "rest-json"
        client = httpclient.InferenceServerClient(
            self.url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        try:
            metadata = _fetch_metadata(lambda: client.get_model_metadata(model, model_version=version))
        finally:
            client.close()
        self._metadata = metadata
        self.output_names = [o["name"] for o in metadata.get("outputs", [])]

    def input_specs(self) -> list[TensorSpec]:
        return _specs_from_v2(self._metadata)

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "url": self.url, "model": self.model, "version": self.version}

    def new_worker(self, inputs: Mapping[str, Array]) -> Worker:
        return _HttpWorker(self, inputs)

    def close(self) -> None:
        return None


# --- KServe v2 over gRPC -------------------------------------------------------------------------


class _GrpcWorker:
    def __init__(self, target: GrpcTarget, inputs: Mapping[str, Array]) -> None:
        import tritonclient.grpc as grpcclient

        self._client = grpcclient.InferenceServerClient(target.url)
        self._inputs = []
        for spec in target.input_specs():
            item = grpcclient.InferInput(spec.name, list(inputs[spec.name].shape), spec.datatype)
            item.set_data_from_numpy(inputs[spec.name])
            self._inputs.append(item)
        self._outputs = [grpcclient.InferRequestedOutput(n) for n in target.output_names]
        self._model = target.model
        self._version = target.version
        self._timeout = target.timeout_s

    def send(self) -> None:
        self._client.infer(
            self._model,
            self._inputs,
            model_version=self._version,
            outputs=self._outputs,
            client_timeout=self._timeout,
        )

    def close(self) -> None:
        self._client.close()


class GrpcTarget:
    """A KServe v2 gRPC endpoint (``inference.GRPCInferenceService``)."""

    protocol: WireProtocol = "grpc"

    def __init__(self, url: str, model: str, *, version: str = "", timeout_s: float = 30.0) -> None:
        import tritonclient.grpc as grpcclient

        self.url = _host_port(url)
        self.model = model
        self.version = version
        self.timeout_s = timeout_s
        client = grpcclient.InferenceServerClient(self.url)
        try:
            metadata = _fetch_metadata(
                lambda: client.get_model_metadata(
                    model, model_version=version, as_json=True, client_timeout=timeout_s
                )
            )
        finally:
            client.close()
        self._metadata = metadata
        self.output_names = [o["name"] for o in metadata.get("outputs", [])]

    def input_specs(self) -> list[TensorSpec]:
        return _specs_from_v2(self._metadata)

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "url": self.url, "model": self.model, "version": self.version}

    def new_worker(self, inputs: Mapping[str, Array]) -> Worker:
        return _GrpcWorker(self, inputs)

    def close(self) -> None:
        return None


def _fetch_metadata(call: Any) -> dict[str, Any]:
    """Model metadata, translating "unreachable" and "no such model" into :class:`BenchTargetError`."""
    from tritonclient.utils import InferenceServerException

    try:
        metadata = call()
    except InferenceServerException as exc:
        if str(exc.status()) == "StatusCode.UNAVAILABLE":
            raise BenchTargetError(
                f"cannot reach the endpoint: {exc.message()}", code="bench.target_unreachable"
            ) from exc
        raise BenchTargetError(
            f"the endpoint did not return the model's metadata: {exc.message()} ({exc.status()})",
            code="bench.model_unavailable",
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise BenchTargetError(f"cannot reach the endpoint: {exc}", code="bench.target_unreachable") from exc
    if not isinstance(metadata, dict) or not metadata.get("inputs"):
        raise BenchTargetError(
            "the endpoint's model metadata lists no inputs", code="bench.model_unavailable"
        )
    return metadata


def _specs_from_v2(metadata: Mapping[str, Any]) -> list[TensorSpec]:
    specs = []
    for item in metadata["inputs"]:
        datatype = str(item["datatype"]).upper()
        if datatype.startswith("TYPE_"):
            datatype = datatype.removeprefix("TYPE_")
        specs.append(TensorSpec(str(item["name"]), datatype, _dims(item.get("shape", []))))
    return specs


def make_target(
    protocol: WireProtocol,
    *,
    model: str,
    url: str | None = None,
    version: str = "",
    timeout_s: float = 30.0,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threads: int | None = None,
    spinning: bool = True,
) -> Target:
    """The target for ``protocol``: ``model`` is an .onnx path for ``ort``, a model name otherwise."""
    if protocol == "ort":
        if url:
            raise BenchInputError(
                "--url is for remote protocols; --protocol ort runs the model file in process",
                code="bench.invalid_option",
            )
        return OrtTarget(Path(model), providers=providers, threads=threads, spinning=spinning)
    if not url:
        raise BenchInputError(
            f"--protocol {protocol} needs --url HOST:PORT of the endpoint", code="bench.invalid_option"
        )
    if protocol in ("rest-binary", "rest-json"):
        return HttpTarget(url, model, version=version, binary=protocol == "rest-binary", timeout_s=timeout_s)
    if protocol == "grpc":
        return GrpcTarget(url, model, version=version, timeout_s=timeout_s)
    raise BenchInputError(
        f"unknown protocol {protocol!r}", code="bench.invalid_option", allowed=list(PROTOCOLS)
    )

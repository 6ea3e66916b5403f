"""A model behind any KServe v2 / Open Inference Protocol endpoint, through ``tritonclient``."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edgefleet.pipeline.errors import PipelineFailedError, SourceUnavailableError
from edgefleet.pipeline.inference import TensorInfo, Tensors
from edgefleet.runtime.datatypes import to_numpy

__all__ = ["KServeModel"]


class KServeModel:
    """Calls ``model_name`` at ``url`` (``http://host:port`` binary tensors, or ``grpc://host:port``).

    ``tritonclient.http`` runs on gevent, whose connections belong to the thread that made them, so
    each calling thread gets its own client (made on first use); ``close`` closes them all.
    """

    def __init__(self, url: str, model_name: str, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "grpc") or not parts.netloc:
            raise PipelineFailedError(
                f"KServe url {url!r} is not allowed; allowed: http://host:port, grpc://host:port",
                code="pipeline.kserve_url",
                url=url,
            )
        self._grpc = parts.scheme == "grpc"
        self._name = model_name
        self._timeout = timeout_s
        self._netloc = parts.netloc
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        try:
            if self._grpc:
                import tritonclient.grpc as client
            else:
                import tritonclient.http as client
            self._module: Any = client
            if self._grpc:
                meta = self._client().get_model_metadata(model_name, as_json=True)
            else:
                meta = self._client().get_model_metadata(model_name)
        except Exception as exc:  # tritonclient raises InferenceServerException and transport errors
            raise SourceUnavailableError(
                f"KServe model {model_name!r} at {url} is not reachable: {exc}",
                code="pipeline.kserve_unavailable",
            ) from exc
        self._inputs = [_info(t) for t in meta.get("inputs", [])]
        self._outputs = [_info(t) for t in meta.get("outputs", [])]

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self._grpc:
                client = self._module.InferenceServerClient(self._netloc)
            else:
                client = self._module.InferenceServerClient(self._netloc, network_timeout=self._timeout)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    @property
    def inputs(self) -> list[TensorInfo]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self._outputs

    @property
    def metadata(self) -> Mapping[str, str]:
        return {}

    def infer(self, batch: Tensors) -> Tensors:
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, array in batch.items():
            arr = np.ascontiguousarray(array)
            tensor = self._module.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
            if self._grpc:
                tensor.set_data_from_numpy(arr)
            else:
                tensor.set_data_from_numpy(arr, binary_data=True)
            inputs.append(tensor)
        if self._grpc:
            outputs = [self._module.InferRequestedOutput(o.name) for o in self._outputs]
        else:
            outputs = [self._module.InferRequestedOutput(o.name, binary_data=True) for o in self._outputs]
        try:
            result = self._client().infer(self._name, inputs, outputs=outputs)
        except Exception as exc:  # translate transport and server errors at the boundary
            raise PipelineFailedError(
                f"KServe inference on {self._name!r} failed: {exc}", code="pipeline.kserve_failed"
            ) from exc
        return {o.name: np.asarray(result.as_numpy(o.name)) for o in self._outputs}

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def _info(meta: Mapping[str, Any]) -> TensorInfo:
    shape = tuple(int(d) if int(d) >= 0 else None for d in meta.get("shape", []))
    return TensorInfo(
        str(meta["name"]), shape, (to_numpy(str(meta.get("datatype", "FP32"))) or np.dtype(np.float32)).name
    )

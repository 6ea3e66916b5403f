"""The one core behind both edges: health, metadata, inference and the repository extension.

REST and gRPC only parse, call these methods and map :class:`~edgefleet.errors.EdgefleetError`
to their status codes. Every method is synchronous and thread-safe; the REST edge calls them from
a worker thread, the gRPC edge from its own thread pool.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from edgefleet import __version__
from edgefleet.errors import EdgefleetError
from edgefleet.runtime.errors import ModelNotReadyError
from edgefleet.runtime.manager import ModelManager, ModelState
from edgefleet.serving.errors import RequestError
from edgefleet.serving.metrics import ServeMetrics
from edgefleet.serving.types import InferOutput, InferRequest, InferResponse

__all__ = ["EXTENSIONS", "DataPlane", "TensorMetadata"]

log = logging.getLogger(__name__)

EXTENSIONS: Final = ("binary_tensor_data", "model_repository", "metrics")
PLATFORM: Final = "onnxruntime_onnx"


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: list[int]


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class DataPlane:
    """KServe v2 operations over a :class:`ModelManager`, with metrics."""

    def __init__(self, manager: ModelManager, metrics: ServeMetrics, *, name: str = "edgefleet") -> None:
        self.manager = manager
        self.metrics = metrics
        self.name = name
        self.version = __version__
        self._ready = threading.Event()
        self.in_flight = 0
        """Requests inside :meth:`infer` now, over every edge (an int: cheap to read anywhere)."""
        self._count_lock = threading.Lock()

    # -- health and metadata -------------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """True once the startup load has finished (models that failed are reported per model)."""
        return self._ready.is_set()

    def mark_ready(self) -> None:
        self._ready.set()

    def server_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "extensions": list(EXTENSIONS)}

    def model_ready(self, model: str, version: str = "") -> bool:
        """Ready or not; raises 404 for a model (or loaded version) that does not exist."""
        try:
            self.manager.get(model, version or None)
        except ModelNotReadyError:
            return False
        return True

    def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        loaded = self.manager.get(model, version or None)
        versions = sorted(self.manager.loaded(model))
        session = loaded.session
        return ModelMetadata(
            name=model,
            versions=[str(v) for v in versions],
            platform=PLATFORM,
            inputs=[TensorMetadata(s.name, s.datatype, list(s.shape)) for s in session.inputs],
            outputs=[TensorMetadata(s.name, s.datatype, list(s.shape)) for s in session.outputs],
        )

    # -- inference -----------------------------------------------------------------------------

    def infer(self, request: InferRequest) -> InferResponse:
        """Run one request. Errors are counted by their code and raised for the edge to map."""
        started = time.perf_counter()
        metrics = self.metrics
        metrics.in_flight.inc()
        with self._count_lock:
            self.in_flight += 1
        labels: tuple[str, str] = (request.model, request.version or "")
        try:
            with self.manager.lease(request.model, request.version or None) as model:
                labels = (model.name, str(model.version))
                children = metrics.for_model(*labels)
                children.requests.inc()
                feeds = _feeds(request)
                names = [o.name for o in request.outputs] if request.outputs else None
                result = model.infer(feeds, names)
                specs = {s.name: s for s in model.session.outputs}
                outputs = [
                    InferOutput(n, specs[n].datatype, tuple(a.shape), a) for n, a in result.outputs.items()
                ]
            children.queue_duration.observe(result.queue_seconds)
            children.compute_duration.observe(result.compute_seconds)
            children.request_duration.observe(time.perf_counter() - started)
            return InferResponse(model.name, str(model.version), outputs, request.id)
        except EdgefleetError as exc:
            self.count_failure(labels[0], labels[1], exc.code)
            raise
        except Exception:
            self.count_failure(labels[0], labels[1], "internal")
            raise
        finally:
            with self._count_lock:
                self.in_flight -= 1
            metrics.in_flight.dec()

    def count_failure(self, model: str, version: str, reason: str) -> None:
        """Count a failed request; the edges call it for errors raised before :meth:`infer`.

        Names that the repository does not hold, and versions that are not loaded, are counted
        under empty labels so that clients cannot grow the label set.
        """
        if model not in self.manager.repository.names():
            model, version = "", ""
        elif not version.isdigit() or int(version) not in self.manager.loaded(model):
            version = ""
        self.metrics.failures.labels(model, version, reason).inc()

    # -- repository extension --------------------------------------------------------------------

    def repository_index(self) -> list[ModelState]:
        return self.manager.index()

    def load(self, model: str) -> None:
        """Load or reload ``model`` from the repository (new versions replace old ones in place)."""
        self.manager.load(model)

    def unload(self, model: str) -> None:
        self.manager.unload(model)


def _feeds(request: InferRequest) -> dict[str, np.ndarray]:
    feeds = {i.name: i.data for i in request.inputs}
    if len(feeds) != len(request.inputs):
        raise RequestError("an input name appears twice", field="inputs")
    return feeds

"""Prometheus metrics of the inference server, in a registry of its own (never the global one).

Per model and version: requests, failures by reason (the stable error code), request, queue and
compute durations, executed batch sizes, requests in flight, model load time.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgefleet.telemetry.metrics import metric_name, new_registry

__all__ = ["ModelMetrics", "ServeMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LABELS = ("model", "version")


@dataclass(frozen=True)
class ModelMetrics:
    requests: Counter
    queue_duration: Histogram
    compute_duration: Histogram
    request_duration: Histogram


class ServeMetrics:
    """The server's metric families; also the runtime's observer (loads and batches)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        r = self.registry
        self.requests = Counter(
            metric_name("serve", "requests"), "Inference requests received.", _LABELS, registry=r
        )
        self.failures = Counter(
            metric_name("serve", "request_failures"),
            "Inference requests that failed, by reason (the error code).",
            (*_LABELS, "reason"),
            registry=r,
        )
        self.request_duration = Histogram(
            metric_name("serve", "request_duration", "seconds"),
            "Time from a decoded request to its encoded response.",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            metric_name("serve", "queue_duration", "seconds"),
            "Time a request waited for a model instance or a batch.",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_duration = Histogram(
            metric_name("serve", "compute_duration", "seconds"),
            "Time ONNX Runtime spent on the run that served a request.",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            metric_name("serve", "batch_size"),
            "Rows per executed run (several requests when dynamic batching joins them).",
            _LABELS,
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            metric_name("serve", "inflight_requests"), "Inference requests being served now.", registry=r
        )
        self._children: dict[tuple[str, str], ModelMetrics] = {}
        self.load_duration = Gauge(
            metric_name("serve", "model_load_duration", "seconds"),
            "How long the last load of a model version took.",
            _LABELS,
            registry=r,
        )

        self.model_info = Gauge(
            metric_name("serve", "model_info"),
            "1 for each loaded model version, labelled with the backend and provider that run it.",
            (*_LABELS, "backend", "provider"),
            registry=r,
        )
        self._info: dict[tuple[str, str], tuple[str, str]] = {}

    def model_selected(self, name: str, version: str, backend: str, provider: str) -> None:
        """Record which backend and provider run a model version (replacing the previous labels)."""
        old = self._info.get((name, version))
        if old is not None and old != (backend, provider):
            self.model_info.remove(name, version, *old)
        self._info[(name, version)] = (backend, provider)
        self.model_info.labels(name, version, backend, provider).set(1)

    def for_model(self, name: str, version: str) -> ModelMetrics:
        """The per-version children, looked up once per version instead of once per request."""
        key = (name, version)
        children = self._children.get(key)
        if children is None:
            children = ModelMetrics(
                self.requests.labels(name, version),
                self.queue_duration.labels(name, version),
                self.compute_duration.labels(name, version),
                self.request_duration.labels(name, version),
            )
            self._children[key] = children
        return children

    def model_loaded(self, name: str, version: str, seconds: float) -> None:
        self.load_duration.labels(name, version).set(seconds)

    def batch_executed(self, name: str, version: str, size: int) -> None:
        self.batch_size.labels(name, version).observe(size)

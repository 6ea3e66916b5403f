"""Prometheus metrics of one pipeline, in its own registry (names ``edgefleet_pipeline_*``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgefleet.telemetry.metrics import metric_name, new_registry

__all__ = ["DROP_REASONS", "PipelineMetrics"]

DROP_REASONS = ("stale", "max_fps", "decode_error", "bad_input", "inference_error")
"""Why a frame was dropped: ``stale`` (a newer one replaced it under ``latest``), ``max_fps``
(over the rate cap), ``decode_error``, ``bad_input`` (an undecodable pushed/folder image),
``inference_error`` (a model call, or the pre/post-processing around it, failed). Failed sink
writes are counted apart, per sink."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PipelineMetrics:
    """Frames in/out/dropped by reason, reconnects, per-stage and glass-to-result latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.frames_in = Counter(
            metric_name("pipeline", "frames_in", counter=True).removesuffix("_total"),
            "Frames decoded from a source.",
            ["source"],
            registry=r,
        )
        self.frames_out = Counter(
            metric_name("pipeline", "frames_out", counter=True).removesuffix("_total"),
            "Frames whose results reached the sinks.",
            ["source"],
            registry=r,
        )
        self.frames_dropped = Counter(
            metric_name("pipeline", "frames_dropped", counter=True).removesuffix("_total"),
            "Frames dropped, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.reconnects = Counter(
            metric_name("pipeline", "source_reconnects", counter=True).removesuffix("_total"),
            "Times a source was reopened after an error or end of stream.",
            ["source"],
            registry=r,
        )
        self.sink_errors = Counter(
            metric_name("pipeline", "sink_errors", counter=True).removesuffix("_total"),
            "Failed writes to a sink.",
            ["sink"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            metric_name("pipeline", "stage_duration", "seconds"),
            "Time spent in each stage per batch.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_seconds = Histogram(
            metric_name("pipeline", "glass_to_result", "seconds"),
            "From frame capture to its results written to the sinks.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.source_up = Gauge(
            metric_name("pipeline", "source_up"),
            "1 while a source is open and delivering.",
            ["source"],
            registry=r,
        )

    def dropped(self, source: str, reason: str, n: int = 1) -> None:
        self.frames_dropped.labels(source=source, reason=reason).inc(n)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (``0.0`` when it was never set); for tests and the CLI summary."""
        v = self.registry.get_sample_value(name, labels)
        return float(v) if v is not None else 0.0

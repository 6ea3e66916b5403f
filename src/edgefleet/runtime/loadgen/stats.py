"""Latency statistics: nearest-rank percentiles over integer nanoseconds, summaries in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["LatencySummary", "percentile", "summarize"]

_NS_PER_MS = 1_000_000.0


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of already sorted values.

    Nearest rank returns a latency that was really observed (no interpolation between two
    requests), the convention of perf_analyzer and wrk. An empty sequence has no percentile.
    """
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Latency of the requests measured, in milliseconds."""

    count: int
    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(latencies_ns: Sequence[int]) -> LatencySummary | None:
    """Summary of request latencies given in nanoseconds; ``None`` when nothing was measured."""
    if not latencies_ns:
        return None
    values = sorted(latencies_ns)

    def ms(ns: float) -> float:
        return round(ns / _NS_PER_MS, 4)

    return LatencySummary(
        count=len(values),
        min=ms(values[0]),
        mean=ms(sum(values) / len(values)),
        p50=ms(percentile(values, 50)),
        p90=ms(percentile(values, 90)),
        p99=ms(percentile(values, 99)),
        max=ms(values[-1]),
    )

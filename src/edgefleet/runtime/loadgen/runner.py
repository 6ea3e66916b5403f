"""The closed-loop runner: N workers, each sending its next request as soon as the last returns.

Each worker opens its own connection inside its own thread (``tritonclient.http`` is gevent based,
and a gevent hub belongs to one thread). After a warm-up the measurement window opens; a request
counts when it completes inside the window (as wrk and perf_analyzer count), timed with
``time.perf_counter_ns`` around the single call, so slow requests that straddle the window's start
are not lost to a short window. Failed requests are counted by kind and never enter the latency
figures. Achieved concurrency is the workers' busy time inside the window divided by the window
(Little's law): when it falls short of the workers asked for, the client, not the server, was the
limit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefleet.runtime.loadgen.errors import BenchInputError
from edgefleet.runtime.loadgen.stats import LatencySummary, summarize
from edgefleet.runtime.loadgen.targets import Target, Worker, classify_error

__all__ = ["RunResult", "run_closed_loop"]

_ERROR_BACKOFF_S = 0.001
"""Pause after a failed request, so a refused connection does not become a busy loop."""


@dataclass
class RunResult:
    """One measurement at one concurrency."""

    concurrency: int
    batch: int
    window_s: float
    requests: int
    throughput_rps: float
    items_per_s: float
    achieved_concurrency: float
    latency_ms: LatencySummary | None
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    warmup_requests: int = 0
    process_cpu: float | None = None
    """CPUs' worth of time this process used during the window: for remote targets the client's
    own cost (encode, send, decode), for ``ort`` the inference itself. Near the CPU budget, the
    client is competing with the server it measures."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "batch": self.batch,
            "window_s": round(self.window_s, 4),
            "requests": self.requests,
            "errors_total": self.error_count,
            "errors": dict(sorted(self.errors.items())),
            "error_examples": dict(sorted(self.error_examples.items())),
            "throughput_rps": round(self.throughput_rps, 3),
            "items_per_s": round(self.items_per_s, 3),
            "achieved_concurrency": round(self.achieved_concurrency, 3),
            "latency_ms": self.latency_ms.to_dict() if self.latency_ms else None,
            "warmup_requests": self.warmup_requests,
            "process_cpu": round(self.process_cpu, 3) if self.process_cpu is not None else None,
        }


@dataclass
class _Tally:
    latencies: list[int] = field(default_factory=list)
    busy_ns: int = 0
    warmup: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        kind = classify_error(exc)
        self.errors[kind] += 1
        self.examples.setdefault(kind, str(exc)[:300])


def run_closed_loop(  # noqa: PLR0915 - one loop with its setup and tally, clearer whole
    target: Target,
    inputs: Mapping[str, np.ndarray[Any, Any]],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    clock: Callable[[], int] = time.perf_counter_ns,
    sleep: Callable[[float], None] = time.sleep,
    cpu_clock: Callable[[], float] = time.process_time,
) -> RunResult:
    """Drive ``target`` with ``concurrency`` closed-loop workers for ``warmup_s + duration_s``."""
    if concurrency < 1:
        raise BenchInputError(
            f"concurrency must be >= 1, got {concurrency}", code="bench.invalid_concurrency"
        )
    if duration_s <= 0 or warmup_s < 0:
        raise BenchInputError(
            f"duration must be > 0 and warm-up >= 0 seconds (got {duration_s}, {warmup_s})",
            code="bench.invalid_duration",
        )
    batch = _batch_of(inputs)
    tallies = [_Tally() for _ in range(concurrency)]
    ready = threading.Barrier(concurrency + 1)
    go = threading.Event()
    window: list[int] = []  # [start_ns, end_ns], published by the main thread before ``go``

    def work(tally: _Tally) -> None:
        worker: Worker | None = None
        try:
            worker = target.new_worker(inputs)
        except Exception as exc:  # noqa: BLE001 - a worker that cannot connect is an error of its own kind
            tally.error(exc)
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        if worker is None:
            return
        start_ns, end_ns = window
        try:
            while True:
                t0 = clock()
                if t0 >= end_ns:
                    break
                try:
                    worker.send()
                except Exception as exc:  # noqa: BLE001 - every failure is counted by kind, the loop goes on
                    if start_ns <= clock() <= end_ns:
                        tally.error(exc)
                    sleep(_ERROR_BACKOFF_S)
                    continue
                t1 = clock()
                tally.busy_ns += max(0, min(t1, end_ns) - max(t0, start_ns))
                if t1 < start_ns:
                    tally.warmup += 1
                elif t1 <= end_ns:
                    tally.latencies.append(t1 - t0)
        finally:
            worker.close()

    threads = [
        threading.Thread(target=work, args=(t,), name=f"bench-worker-{i}", daemon=True)
        for i, t in enumerate(tallies)
    ]
    for t in threads:
        t.start()
    ready.wait()  # every worker has opened its connection: the clock starts now
    begin = clock()
    window.extend((begin + int(warmup_s * 1e9), begin + int((warmup_s + duration_s) * 1e9)))
    go.set()
    start_ns, end_ns = window
    sleep(max(0.0, (start_ns - clock()) / 1e9))
    cpu0, t0 = cpu_clock(), clock()
    sleep(max(0.0, (end_ns - clock()) / 1e9))
    cpu1, t1 = cpu_clock(), clock()
    for t in threads:
        t.join()

    latencies = [lat for t in tallies for lat in t.latencies]
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for tally in tallies:
        errors.update(tally.errors)
        for k, v in tally.examples.items():
            examples.setdefault(k, v)
    window_s = duration_s
    rps = len(latencies) / window_s
    return RunResult(
        concurrency=concurrency,
        batch=batch,
        window_s=window_s,
        requests=len(latencies),
        throughput_rps=rps,
        items_per_s=rps * batch,
        achieved_concurrency=sum(t.busy_ns for t in tallies) / (window_s * 1e9),
        latency_ms=summarize(latencies),
        errors=dict(errors),
        error_examples=examples,
        warmup_requests=sum(t.warmup for t in tallies),
        process_cpu=(cpu1 - cpu0) / ((t1 - t0) / 1e9) if t1 > t0 else None,
    )


def _batch_of(inputs: Mapping[str, np.ndarray[Any, Any]]) -> int:
    """The batch size the report states: the first dimension of the first input (1 for scalars)."""
    for array in inputs.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1

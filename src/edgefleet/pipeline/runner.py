"""Runs a pipeline: one thread per source, then preprocess → infer → post-process → sinks, each a
thread joined to the next by a bounded queue, so decoding, pre/post-processing and inference
overlap (ONNX Runtime releases the GIL while it computes).

Policy ``latest`` keeps one pending frame per source and replaces it when a newer one arrives
(``stale`` drops), so the pipeline never falls behind real time; ``every`` blocks the source
instead. ``max_fps`` drops frames over the rate at the source (``max_fps`` drops). Every frame
carries its capture time, and the time from capture to its message leaving the sinks is the
glass-to-result latency.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgefleet.errors import EdgefleetError
from edgefleet.pipeline.buffers import EveryBuffer, FrameBuffer, LatestBuffer, LatestSlot
from edgefleet.pipeline.build import ModelStage, build_all
from edgefleet.pipeline.crops import crop_region
from edgefleet.pipeline.frame import Frame, Item
from edgefleet.pipeline.metrics import PipelineMetrics
from edgefleet.pipeline.sinks.base import Message, Sink
from edgefleet.pipeline.sources.base import Source, SourceContext
from edgefleet.pipeline.spec import PipelineSpec
from edgefleet.pipeline.transforms import Geometry

__all__ = ["Pipeline", "RunSummary"]

log = logging.getLogger(__name__)

_END = object()
_REGION_BATCH = 8


@dataclass(frozen=True)
class RunSummary:
    frames_in: int
    frames_out: int
    dropped: dict[str, int]
    seconds: float
    latency_p50_s: float | None
    latency_p99_s: float | None
    steady_fps: float | None
    """Results per second from the first result to the last (start-up and warm-up excluded)."""


@dataclass
class _Batch:
    items: list[Item]
    tensor: npt.NDArray[np.generic]
    geoms: list[Geometry]
    outputs: dict[str, npt.NDArray[np.generic]] | None = None


class Pipeline:
    """A pipeline built from a spec (or from parts, for embedding and tests)."""

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        base_dir: Path,
        metrics: PipelineMetrics | None = None,
        parts: tuple[Sequence[Source], Sequence[ModelStage], Sequence[Sink]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.settings = spec.pipeline
        self.metrics = metrics or PipelineMetrics()
        sources, stages, sinks = parts if parts is not None else build_all(spec, base_dir)
        self.sources = list(sources)
        self.stages = list(stages)
        self.sinks = list(sinks)
        self._monotonic = monotonic
        self._wall = wall
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._source_threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._last_taken: dict[str, float] = {}
        self._out = 0
        self._first_out: float | None = None
        self._last_out: float | None = None
        self._done = threading.Event()
        self._stopped = False
        self.latencies: deque[float] = deque(maxlen=100_000)
        self._buffer: FrameBuffer
        size = self.settings.queue_size
        if self.settings.policy == "latest":
            self._buffer = LatestBuffer(lambda f: self.metrics.dropped(f.source, "stale"))
        else:
            self._buffer = EveryBuffer(size * max(1, len(self.sources)))
        latest = self.settings.policy == "latest"
        # under `latest` the batch waiting for inference is replaced by a fresher one (its frames
        # count as stale) and the later queues hold one item: nothing queues up behind a slow stage
        self._slot: LatestSlot | None = LatestSlot() if latest else None
        self._q_infer: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_post: queue.Queue[Any] = queue.Queue(maxsize=1 if latest else size)
        self._q_sink: queue.Queue[Any] = queue.Queue(maxsize=1 if latest else size)
        self._metrics_server: Any = None
        self._started = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open every source and sink (raising a clear error if one cannot start), then run."""
        opened: list[Source | Sink] = []
        parts: list[Source | Sink] = [*self.sources, *self.sinks]
        try:
            for part in parts:
                part.open()
                opened.append(part)
        except BaseException:
            for part in opened:
                part.close()
            raise
        if self.settings.metrics_port is not None:
            from prometheus_client import start_http_server

            self._metrics_server = start_http_server(
                self.settings.metrics_port, addr=self.settings.metrics_host, registry=self.metrics.registry
            )
        self._started = self._monotonic()
        for source in self.sources:
            t = threading.Thread(
                target=self._run_source, args=(source,), name=f"pipeline-src-{source.name}", daemon=True
            )
            self._source_threads.append(t)
        self._threads = [
            threading.Thread(target=self._preprocess_loop, name="pipeline-pre", daemon=True),
            threading.Thread(target=self._infer_loop, name="pipeline-infer", daemon=True),
            threading.Thread(target=self._post_loop, name="pipeline-post", daemon=True),
            threading.Thread(target=self._sink_loop, name="pipeline-sink", daemon=True),
        ]
        for t in [*self._source_threads, *self._threads]:
            t.start()
        threading.Thread(target=self._watch_sources, name="pipeline-watch", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pipeline finished (sources ended, ``max_frames`` or ``duration_s``)."""
        limit = self.settings.duration_s
        if timeout is not None:
            limit = timeout if limit is None else min(limit, timeout)
        return self._done.wait(limit)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread, then close sources, sinks and models. Safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop.set()
        self._buffer.close()
        for t in [*self._source_threads, *self._threads]:
            t.join(timeout)
        parts: list[Source | Sink] = [*self.sources, *self.sinks]
        for part in parts:
            try:
                part.close()
            except (OSError, EdgefleetError) as exc:
                log.warning("closing %s failed: %s", getattr(part, "name", part), exc)
        for stage in self.stages:
            stage.model.close()
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            server.server_close()
            thread.join(timeout)
            self._metrics_server = None
        self._done.set()

    def run(self) -> RunSummary:
        """Start, wait until done, stop; re-raise the first source error if nothing came out."""
        self.start()
        try:
            self.wait()
        finally:
            self.stop()
        if self._errors and self._out == 0:
            raise self._errors[0]
        return self.summary()

    @property
    def metrics_port(self) -> int | None:
        """The port Prometheus metrics are served on (``metrics_port = 0`` picks a free one)."""
        return int(self._metrics_server[0].server_port) if self._metrics_server is not None else None

    @property
    def errors(self) -> list[BaseException]:
        return list(self._errors)

    def summary(self) -> RunSummary:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None

        dropped: dict[str, int] = {}
        for metric in self.metrics.frames_dropped.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    reason = sample.labels["reason"]
                    dropped[reason] = dropped.get(reason, 0) + int(sample.value)
        frames_in = sum(self._index.values())
        steady = None
        if self._first_out is not None and self._last_out is not None and self._last_out > self._first_out:
            steady = (self._out - 1) / (self._last_out - self._first_out)
        return RunSummary(
            frames_in, self._out, dropped, self._monotonic() - self._started, q(0.5), q(0.99), steady
        )

    # -- sources ---------------------------------------------------------------------------

    def _run_source(self, source: Source) -> None:
        name = source.name
        self._index.setdefault(name, 0)
        ctx = SourceContext(
            emit=lambda image, pts: self._ingest(name, image, pts),
            drop=lambda reason: self.metrics.dropped(name, reason),
            reconnected=lambda: self.metrics.reconnects.labels(source=name).inc(),
            up=lambda up: self.metrics.source_up.labels(source=name).set(1 if up else 0),
            stop=self._stop,
        )
        try:
            source.run(ctx)
        except EdgefleetError as exc:
            log.error("source %s stopped: %s", name, exc)  # noqa: TRY400 - an expected, explained stop
            self._errors.append(exc)
        except Exception as exc:  # a source must never take the pipeline down silently
            log.exception("source %s failed", name)
            self._errors.append(exc)

    def _watch_sources(self) -> None:
        for t in self._source_threads:
            t.join()
        self._buffer.close()

    def _ingest(self, source: str, image: npt.NDArray[np.uint8], pts: float | None) -> None:
        now = self._monotonic()
        with self._lock:
            index = self._index.get(source, 0)
            self._index[source] = index + 1
        self.metrics.frames_in.labels(source=source).inc()
        max_fps = self.settings.max_fps
        if max_fps is not None:
            last = self._last_taken.get(source)
            if last is not None and now - last < 1.0 / max_fps:
                self.metrics.dropped(source, "max_fps")
                return
            self._last_taken[source] = now
        frame = Frame(source=source, index=index, image=image, captured=now, wall=self._wall(), pts=pts)
        self._buffer.put(frame, self._stop)

    # -- stages ----------------------------------------------------------------------------

    def _put(self, q: queue.Queue[Any], value: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(value, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def _observe(self, stage: str, started: float) -> None:
        self.metrics.stage_seconds.labels(stage=stage).observe(self._monotonic() - started)

    def _preprocess_loop(self) -> None:
        first = self.stages[0]
        while not self._stop.is_set():
            frames = self._buffer.take(self.settings.batch_size, timeout=0.1)
            if not frames:
                if self._buffer.drained:
                    break
                continue
            t0 = self._monotonic()
            try:
                tensor, geoms = first.preprocess([f.image for f in frames])
            except Exception as exc:  # noqa: BLE001 - cv2/numpy errors on a malformed frame: drop it, go on
                self._drop_items([Item(f) for f in frames], "bad_input", exc)
                continue
            self._observe("preprocess", t0)
            if not self._put_infer(_Batch([Item(f) for f in frames], tensor, geoms)):
                return
        self._put_infer(_END)

    def _put_infer(self, batch: Any) -> bool:
        if self._slot is None:
            return self._put(self._q_infer, batch)
        if batch is _END:  # the end waits for the last batch to be taken, never replaces it
            while not self._stop.is_set() and self._slot.full:
                self._stop.wait(0.01)
        replaced = self._slot.put(batch)
        if isinstance(replaced, _Batch):
            for item in replaced.items:
                self.metrics.dropped(item.frame.source, "stale")
        return True

    def _get_infer(self) -> Any:
        if self._slot is None:
            return self._get(self._q_infer)
        while not self._stop.is_set():
            ok, value = self._slot.get(timeout=0.1)
            if ok:
                return value
        return _END

    def _infer_loop(self) -> None:
        stage = self.stages[0]
        while True:
            batch = self._get_infer()
            if batch is _END:
                break
            t0 = self._monotonic()
            try:
                batch.outputs = stage.model.infer({stage.input_name: batch.tensor})
            except Exception as exc:  # noqa: BLE001 - a failed call drops its frames; the pipeline goes on
                self._drop_items(batch.items, "inference_error", exc)
                continue
            self._observe(f"infer_{stage.spec.name}", t0)
            if not self._put(self._q_post, batch):
                return
        self._put(self._q_post, _END)

    def _post_loop(self) -> None:
        first = self.stages[0]
        while True:
            batch = self._get(self._q_post)
            if batch is _END:
                break
            t0 = self._monotonic()
            try:
                results = first.postprocess(batch.outputs, batch.geoms)
                for item, result in zip(batch.items, results, strict=True):
                    item.results[first.spec.name] = result
                self._observe(f"post_{first.spec.name}", t0)
                for stage in self.stages[1:]:
                    self._run_on_regions(stage, batch.items)
            except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the stream
                self._drop_items(batch.items, "inference_error", exc)
                continue
            for item in batch.items:
                if not self._put(self._q_sink, item):
                    return
        self._put(self._q_sink, _END)

    def _run_on_regions(self, stage: ModelStage, items: list[Item]) -> None:
        """Run ``stage`` on every region its ``on`` model found, storing results inside the regions."""
        targets: list[dict[str, Any]] = []
        crops: list[npt.NDArray[np.uint8]] = []
        for item in items:
            for region in item.results.get(stage.spec.on, {}).get("regions", []):
                crop = crop_region(item.frame.image, region)
                if crop is not None:
                    targets.append(region)
                    crops.append(crop)
        for start in range(0, len(crops), _REGION_BATCH):
            chunk = crops[start : start + _REGION_BATCH]
            t0 = self._monotonic()
            tensor, geoms = stage.preprocess(chunk)
            outputs = stage.model.infer({stage.input_name: tensor})
            self._observe(f"infer_{stage.spec.name}", t0)
            for region, result in zip(
                targets[start : start + _REGION_BATCH], stage.postprocess(outputs, geoms), strict=True
            ):
                region[stage.spec.name] = result

    def _sink_loop(self) -> None:
        limit = self.settings.max_frames
        while True:
            item = self._get(self._q_sink)
            if item is _END:
                break
            t0 = self._monotonic()
            message = self.message(item)
            for sink in self.sinks:
                try:
                    sink.write(message, item)
                except (OSError, EdgefleetError, ValueError, RuntimeError) as exc:
                    self.metrics.sink_errors.labels(sink=sink.name).inc()
                    log.warning("sink %s: write failed: %s", sink.name, exc)
            done = self._monotonic()
            self._observe("sink", t0)
            latency = done - item.frame.captured
            self.latencies.append(latency)
            self.metrics.latency_seconds.labels(source=item.frame.source).observe(latency)
            self.metrics.frames_out.labels(source=item.frame.source).inc()
            self._out += 1
            if self._first_out is None:
                self._first_out = done
            self._last_out = done
            if limit is not None and self._out >= limit:
                self._stop.set()
                break
        self._done.set()

    def _drop_items(self, items: list[Item], reason: str, exc: BaseException) -> None:
        log.warning("dropped %d frame(s) (%s): %s", len(items), reason, exc)
        for item in items:
            self.metrics.dropped(item.frame.source, reason)

    def message(self, item: Item) -> Message:
        """The JSON-ready message for one frame's results."""
        f = item.frame
        return {
            "pipeline": self.settings.name,
            "source": f.source,
            "frame": f.index,
            "captured_at": round(f.wall, 6),
            "pts": f.pts,
            "latency_s": round(self._monotonic() - f.captured, 6),
            "results": _public(item.results),
        }


def _public(value: Any) -> Any:
    """Drop ``_``-prefixed keys (arrays kept for annotation) recursively."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value

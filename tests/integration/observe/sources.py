"""Where the metric names the dashboards and alert rules may use come from: live /metrics texts.

Each source yields the exposition text of one real component (server, serve, pipeline, device agent).
To add one, write a context manager that yields its /metrics text and list it in ``SOURCES``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from prometheus_client import generate_latest

from tests.integration.observe.conftest import LiveFleet
from tests.integration.serve.serve_process import ServeProcess, serve_process
from tests.unit.serve.serve_models import affine_model


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - a local test URL
        return str(r.read().decode())


@contextmanager
def running_serve(tmp: Path) -> Iterator[ServeProcess]:
    """`edgefleet serve` as a process over a tiny model, with one good and one failed request served."""
    model = affine_model(tmp / "affine.onnx", 2.0)
    with serve_process(model) as proc:
        base = f"http://{proc.http}"
        body = {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                {"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]},
            ]
        }
        for payload in (body, {"inputs": []}):
            req = urllib.request.Request(  # noqa: S310 - a local test URL
                f"{base}/v2/models/affine/infer",
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            with suppress(urllib.error.HTTPError):  # the failed request is counted, which is the point
                urllib.request.urlopen(req, timeout=30).read()  # noqa: S310 - a local test URL
        yield proc


def pipeline_text() -> str:
    """A pipeline registry with a sample in every series (what `metrics_port` serves)."""
    from edgefleet.pipeline.metrics import PipelineMetrics

    m = PipelineMetrics()
    m.frames_in.labels(source="cam").inc(3)
    m.frames_out.labels(source="cam").inc(2)
    m.dropped("cam", "stale")
    m.reconnects.labels(source="cam").inc()
    m.sink_errors.labels(sink="mqtt").inc()
    m.stage_seconds.labels(stage="infer_det").observe(0.01)
    m.latency_seconds.labels(source="cam").observe(0.05)
    m.source_up.labels(source="cam").set(1)
    return generate_latest(m.registry).decode()


@contextmanager
def server_source(fleet: LiveFleet, _tmp: Path) -> Iterator[str]:
    yield http_text(fleet.url + "/metrics")


@contextmanager
def serve_source(_fleet: LiveFleet, tmp: Path) -> Iterator[str]:
    with running_serve(tmp) as proc:
        yield http_text(f"http://{proc.http}/metrics")


@contextmanager
def pipeline_source(_fleet: LiveFleet, _tmp: Path) -> Iterator[str]:
    yield pipeline_text()


@contextmanager
def agent_source(fleet: LiveFleet, tmp: Path) -> Iterator[str]:
    """A real agent running a workload, its device metrics read from a board's /sys (a fixture tree
    with a GPU, an NPU and power sensors, so every device metric has a sample)."""
    from edgefleet.testing.fake_devices import x86_intel_npu_uvc
    from tests.integration.observe.agent_proc import running_agent

    tree = x86_intel_npu_uvc(tmp / "board")
    tree.write("sys/class/drm/card1/device/gpu_busy_percent", "37\n")
    tree.write("sys/class/drm/card1/device/hwmon/hwmon3/power1_average", "15250000\n")
    tree.write("sys/class/accel/accel0/device/npu_busy_time_us", "2500000\n")
    tree.write("sys/class/hwmon/hwmon0/name", "rapl\n")
    tree.write("sys/class/hwmon/hwmon0/power1_input", "8000000\n")
    with running_agent(fleet, tmp / "agent", "--sys-root", str(tree.path("sys"))) as agent:
        yield http_text(f"http://{agent.metrics}/metrics")


Source = Callable[[LiveFleet, Path], AbstractContextManager[str]]
SOURCES: dict[str, Source] = {
    "server": server_source,
    "serve": serve_source,
    "pipeline": pipeline_source,
    "agent": agent_source,
}


def metric_names(text: str) -> set[str]:
    """Series names in an exposition text (``_bucket``/``_sum``/``_count``/``_total`` included)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names

"""What `up` promises when it is done: where to look, how to call the model, how to stop.

The same :class:`Summary` is printed for people (the CLI renders it) and as one JSON object
(``--json``) for scripts and the end-to-end test, which checks every promise in it.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgefleet.up.layout import UpLayout, UpState

__all__ = ["Summary", "build_summary", "metric_sum"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Summary:
    data_dir: str
    already_running: bool
    server: str
    dashboard: str
    token: str
    device: dict[str, Any]
    rollout: dict[str, Any]
    endpoint: dict[str, Any]
    request_file: str
    curl: str
    tritonclient: str
    pipeline: dict[str, Any]
    metrics: dict[str, str]
    pids: dict[str, int]
    logs: str
    stop: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def metric_sum(url: str, name: str, timeout: float = 5.0, **labels: str) -> float:
    """The sum of the samples called ``name`` (with ``labels``, when given) at a Prometheus endpoint."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from edgefleet.errors import UnavailableError

    try:
        text = httpx.get(url, timeout=timeout).text
    except httpx.HTTPError as exc:
        raise UnavailableError(f"{url}: {exc}", code="up.metrics_unreachable") from exc
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += float(sample.value)
    return total


def _waves(plan: list[int], devices: list[dict[str, Any]], local_id: str | None) -> list[dict[str, Any]]:
    """Who was in each wave: device ids sort by enrollment, the engine fills waves in that order."""
    ordered = sorted(d["id"] for d in devices)
    out: list[dict[str, Any]] = []
    prev = 0
    for upto in plan:
        members = ordered[prev:upto]
        simulated = sum(1 for d in members if d != local_id)
        out.append(
            {
                "devices": members,
                "this_machine": local_id in members,
                "simulated": simulated,
            }
        )
        prev = upto
    return out


def _note(waves: list[dict[str, Any]]) -> str:
    simulated = (
        "simulated devices (edgefleet simulate: virtual devices that enroll, poll, verify the signed "
        "desired state and report health, but run no model)"
    )
    if len(waves) == 2 and waves[0]["this_machine"] and len(waves[0]["devices"]) == 1:
        return (
            "wave 1 was this machine alone (the canary: it runs the model and had to pass readiness "
            f"and a health window); wave 2 added {waves[1]['simulated']} {simulated}"
        )
    return f"waves in enrollment order over this machine and the {simulated}"


def build_summary(
    *,
    layout: UpLayout,
    state: UpState,
    server_url: str,
    deployment: dict[str, Any],
    devices: list[dict[str, Any]],
    endpoint: dict[str, Any],
    pids: dict[str, int],
    model: str,
    version: str,
    already_running: bool,
    max_fps: float,
    stop: str,
) -> Summary:
    root = layout.root
    http_port, grpc_port = endpoint.get("http_port"), endpoint.get("grpc_port")
    http = f"http://{HOST}:{http_port}"
    infer = f"{http}/v2/models/{model}/infer"
    request = layout.pipeline_dir / "request.json"
    curl = f"curl -s {infer} -H 'Content-Type: application/json' -d @{shlex.quote(str(request))}"
    output = "fetch_name_0"
    model_meta = endpoint.get("model") or {}
    if model_meta.get("outputs"):
        output = model_meta["outputs"][0]["name"]
    triton = "\n".join(
        [
            "import json, numpy as np, tritonclient.grpc as grpcclient",
            f"req = json.load(open({str(request)!r}))['inputs'][0]",
            f"client = grpcclient.InferenceServerClient('{HOST}:{grpc_port}')",
            "x = grpcclient.InferInput(req['name'], req['shape'], req['datatype'])",
            "x.set_data_from_numpy(np.asarray(req['data'], np.float32).reshape(req['shape']))",
            f"print(client.infer({model!r}, [x]).as_numpy({output!r}))",
        ]
    )
    local = next((d for d in devices if d["id"] == state.device_id), None)
    waves = _waves(list((deployment.get("rollout") or {}).get("plan") or []), devices, state.device_id)
    ro = deployment.get("rollout") or {}
    return Summary(
        data_dir=str(root),
        already_running=already_running,
        server=server_url,
        dashboard=f"{server_url}/ui",
        token=str(state.token),
        device={
            "id": state.device_id,
            "name": local["name"] if local else None,
            "status": local["status"] if local else None,
        },
        rollout={
            "deployment": deployment.get("name"),
            "id": ro.get("id"),
            "phase": ro.get("phase"),
            "bundle": f"{model} {version}",
            "waves": waves,
            "note": _note(waves),
        },
        endpoint={
            "model": model,
            "version": version,
            "http": http,
            "infer": infer,
            "grpc": f"{HOST}:{grpc_port}",
            "protocol": "KServe v2 / Open Inference Protocol (REST and gRPC)",
        },
        request_file=str(request),
        curl=curl,
        tritonclient=triton,
        pipeline={
            "source": "a generated clip: a page of text in 4 orientations, looping",
            "max_fps": max_fps,
            "results": str(layout.pipeline_dir / "results.jsonl"),
            "preview": f"http://{HOST}:{state.preview_port}/",
            "spec": str(layout.pipeline_dir / "pipeline.toml"),
        },
        metrics={
            "server": f"{server_url}/metrics",
            "agent": f"http://{HOST}:{state.agent_metrics_port}/metrics",
            "serve": f"{http}/metrics",
            "pipeline": f"http://{HOST}:{state.pipeline_metrics_port}/metrics",
        },
        pids=pids,
        logs=str(layout.log_dir),
        stop=stop,
    )

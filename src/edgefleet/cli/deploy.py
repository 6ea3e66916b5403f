"""`edgefleet deploy`: create a deployment or give it a new release; a rollout starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefleet.cli.context import cli_context
from edgefleet.cli.server import DEFAULT_SERVER, CaCertOpt, ProjectOpt, ServerOpt, TokenOpt

__all__ = ["deploy"]


def _json_file(path: Path | None, field: str) -> dict[str, Any]:
    from edgefleet.errors import InvalidInputError

    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{field}: cannot read JSON from {path}: {exc}", field=field) from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{field}: {path} must hold a JSON object", field=field)
    return data


def _waves(text: str) -> list[dict[str, float]]:
    from edgefleet.errors import InvalidInputError

    out: list[dict[str, float]] = []
    for raw in text.split(","):
        part = raw.strip()
        try:
            out.append({"percent": float(part[:-1])} if part.endswith("%") else {"count": int(part)})
        except ValueError as exc:
            raise InvalidInputError(f"--waves: {part!r} is neither N% nor a count", field="waves") from exc
    return out


def deploy(
    ctx: typer.Context,
    *,
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    bundle: Annotated[str, typer.Argument(help="Bundle as NAME or NAME@VERSION (newest when no version).")],
    selector: Annotated[str, typer.Option("--selector", "-l", help="Label selector of target devices.")] = "",
    waves: Annotated[
        str, typer.Option(help="Comma-separated waves: 10%,50%,100% or counts.")
    ] = "10%,50%,100%",
    bake: Annotated[float, typer.Option(help="Seconds a wave must stay healthy.", min=0)] = 60,
    deadline: Annotated[float, typer.Option(help="Seconds for a wave to become ready.", min=1)] = 900,
    max_failure_ratio: Annotated[float, typer.Option(help="Share of updated devices allowed to fail.")] = 0.0,
    max_error_rate: Annotated[float | None, typer.Option(help="Gate on the inference error ratio.")] = None,
    max_p95_ms: Annotated[float | None, typer.Option(help="Gate on p95 inference latency (ms).")] = None,
    on_failure: Annotated[str, typer.Option(help="rollback or pause.")] = "rollback",
    manual: Annotated[
        bool, typer.Option("--manual", help="Wait for 'rollout approve' between waves.")
    ] = False,
    resources: Annotated[Path | None, typer.Option(help="JSON file: cpus, cpuset, memory, pids...")] = None,
    serving: Annotated[Path | None, typer.Option(help="JSON file with the serving config.")] = None,
    pipeline: Annotated[Path | None, typer.Option(help="JSON file with the pipeline config.")] = None,
    tuning_profile: Annotated[str | None, typer.Option(help="Tuning profile name.")] = None,
    window: Annotated[
        list[str] | None,
        typer.Option(
            "--window",
            help="Maintenance window 'Mon-Fri 02:00-04:00' (repeat): devices apply updates only then.",
            show_default=False,
        ),
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone of --window.")] = "UTC",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """Deploy a bundle to the devices matching a selector, wave by wave, gated on their health."""
    from edgefleet.server.client import ManagementClient

    bname, _, version = bundle.partition("@")
    gates: dict[str, Any] = {"max_failure_ratio": max_failure_ratio}
    if max_error_rate is not None:
        gates["max_error_rate"] = max_error_rate
    if max_p95_ms is not None:
        gates["max_p95_latency_ms"] = max_p95_ms
    body = {
        "name": name,
        "bundle": {"name": bname, "version": version or None},
        "selector": selector,
        "resources": _json_file(resources, "resources"),
        "serving": _json_file(serving, "serving"),
        "pipeline": _json_file(pipeline, "pipeline"),
        "tuning_profile": tuning_profile,
        "maintenance": {"windows": window, "timezone": timezone} if window else None,
        "strategy": {
            "waves": _waves(waves),
            "bake_seconds": bake,
            "progress_deadline_seconds": deadline,
            "gates": gates,
            "on_failure": on_failure,
            "auto_advance": not manual,
        },
    }
    with ManagementClient(server, token, project, ca_cert=ca_cert) as api:
        out = api.post(api.p("/deployments"), body)
    ro = out["rollout"]
    cli_context(ctx).out.print(
        f"deployment {out['name']}: rollout {ro['id']} {ro['phase']} (wave {ro['wave']}/{ro['waves']}, "
        f"plan {ro['plan']}): {ro['reason']}",
        highlight=False,
    )

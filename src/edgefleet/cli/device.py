"""`edgefleet device ls|show|label|decommission`: the fleet as the control plane sees it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from edgefleet.cli.context import cli_context
from edgefleet.cli.server import DEFAULT_SERVER, CaCertOpt, ProjectOpt, ServerOpt, TokenOpt

if TYPE_CHECKING:
    from pathlib import Path

    from edgefleet.server.client import ManagementClient

__all__ = ["device_app"]

device_app = typer.Typer(help="List and manage enrolled devices.", no_args_is_help=True)


def _client(server: str, token: str | None, project: str, ca_cert: Path | None) -> ManagementClient:
    from edgefleet.server.client import ManagementClient

    return ManagementClient(server, token, project, ca_cert=ca_cert)


@device_app.command("ls")
def ls(
    ctx: typer.Context,
    *,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Label selector.")] = None,
    status: Annotated[str | None, typer.Option(help="new, online, offline or decommissioned.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many devices.", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """Devices of the project, filtered by labels and status."""
    c = cli_context(ctx)
    with _client(server, token, project, ca_cert) as api:
        items = api.paged(api.p("/devices"), limit=limit, selector=selector, status=status)
    if as_json:
        for d in items:  # one object per line, as --help says (print_json would indent it)
            c.out.print(json.dumps(d), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"devices in {project} ({len(items)})")
    for col in ("id", "name", "status", "labels", "last seen", "desired", "reported"):
        table.add_column(col)
    for d in items:
        labels = ",".join(f"{k}={v}" for k, v in sorted(d["labels"].items()))
        table.add_row(
            d["id"],
            d["name"],
            d["status"],
            labels,
            str(d["last_seen_at"] or "-"),
            str(d["desired_revision"]),
            str(d["reported_revision"] if d["reported_revision"] is not None else "-"),
        )
    c.out.print(table)


@device_app.command("show")
def show(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    *,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """One device with inventory, reported state and health (JSON)."""
    with _client(server, token, project, ca_cert) as api:
        cli_context(ctx).out.print_json(json.dumps(api.get(api.p(f"/devices/{device_id}"))))


@device_app.command("label")
def label(
    ctx: typer.Context,
    *,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    labels: Annotated[list[str], typer.Argument(help="key=value pairs; they replace the current labels.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """Replace a device's labels."""
    from edgefleet.errors import InvalidInputError

    parsed: dict[str, str] = {}
    for item in labels:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidInputError(f"label {item!r}: expected key=value", field="labels")
        parsed[key] = value
    with _client(server, token, project, ca_cert) as api:
        d = api.put(api.p(f"/devices/{device_id}/labels"), {"labels": parsed})
    cli_context(ctx).out.print(f"{d['id']}: {d['labels']}")


@device_app.command("decommission")
def decommission(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    *,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """Revoke a device at once; its next request is refused."""
    with _client(server, token, project, ca_cert) as api:
        d = api.post(api.p(f"/devices/{device_id}/decommission"))
    cli_context(ctx).out.print(f"{d['id']}: {d['status']}")

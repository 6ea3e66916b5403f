"""`edgefleet device ls|show|logs|label|decommission`: the fleet as the control plane sees it."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

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


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90s``, ``10m``, ``2h``, ``1d``, ``1h30m``) or ISO 8601."""
    from edgefleet.errors import InvalidInputError

    now = now or datetime.now(UTC)
    m = _DURATION.match(text.strip())
    if m and any(m.groups()):
        d, h, mins, s = (int(g or 0) for g in m.groups())
        return now - timedelta(days=d, hours=h, minutes=mins, seconds=s)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"--since: {text!r} is neither a duration (90s, 10m, 2h, 1d, 1h30m) "
            "nor an ISO 8601 time (2026-11-28T10:00:00Z)",
            field="since",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _log_line(item: dict[str, Any]) -> Text:
    ts = str(item["ts"]).replace("T", " ")[:23]
    who = item["workload"] if item["source"] == "workload" else "agent"
    level = item.get("level") or ""
    style = {"error": "red", "critical": "red", "warning": "yellow"}.get(level, "")
    line = Text(f"{ts} ", style="dim")
    line.append(f"{who:<12} ", style="cyan")
    if level:
        line.append(f"{level:<7} ", style=style)
    line.append(item["message"])
    return line


@device_app.command("logs")
def logs(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    *,
    workload: Annotated[
        str | None, typer.Option("--workload", "-w", help="Only this workload's (deployment's) lines.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only lines since: 90s, 10m, 2h, 1d, or an ISO 8601 time.")
    ] = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", help="Show the last N lines.", min=1, max=5000)
    ] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow.", min=0.2)] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """Logs a device shipped: its agent's and its workloads' output (newest last; -f follows)."""
    from edgefleet.errors import UnavailableError

    c = cli_context(ctx)
    since_iso = parse_since(since).isoformat() if since else None
    path = f"/devices/{device_id}/logs"

    def show(items: list[dict[str, Any]]) -> None:
        for item in items:
            if as_json:
                c.out.print_json(json.dumps(item))
            else:
                c.out.print(_log_line(item), highlight=False, soft_wrap=True)

    with _client(server, token, project, ca_cert) as api:
        page = api.get(api.p(path), workload=workload, since=since_iso, limit=lines)
        show(page["items"])
        cursor = page.get("cursor")
        away = False
        while follow:
            time.sleep(interval)
            try:
                page = api.get(api.p(path), workload=workload, since=since_iso, after=cursor or 0, limit=1000)
            except UnavailableError as exc:  # a server restart does not end a follow
                if not away:
                    c.err.print(f"[yellow]{exc.message}; retrying[/]", highlight=False, soft_wrap=True)
                away = True
                continue
            if away:
                c.err.print("[green]server back[/]", highlight=False)
                away = False
            show(page["items"])
            cursor = page.get("cursor") or cursor

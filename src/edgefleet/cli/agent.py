"""`edgefleet agent`: run the device agent, and ask a running one what it is doing.

``agent run`` replaces itself (exec) with ``python -m edgefleet.agent run``, so the long-running
agent process does not carry the CLI framework; its options are documented in docs/agent.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["agent_app"]

agent_app = typer.Typer(
    name="agent",
    help="The device agent: enroll, follow the desired state, run workloads.",
    no_args_is_help=True,
)

_PASS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@agent_app.command("run", context_settings=_PASS, add_help_option=False)
def run(ctx: typer.Context) -> None:
    """Run the agent: --state-dir D [--server URL --join-token T] [--metrics-port P] ... (see --help)."""
    argv = [sys.executable, "-m", "edgefleet.agent", "run", *ctx.args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module


@agent_app.command("status")
def status(
    state_dir: Annotated[Path, typer.Option("--state-dir", help="The agent's state directory.")] = Path(
        "/var/lib/edgefleet/agent"
    ),
    socket_path: Annotated[
        Path | None, typer.Option("--status-socket", help="Default <state-dir>/agent.sock.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole status as JSON.")] = False,
) -> None:
    """What the running agent says: identity, server reachability, revisions, workloads."""
    from edgefleet.agent.local import query_status

    st = query_status(socket_path or state_dir / "agent.sock")
    if as_json:
        typer.echo(json.dumps(st, indent=1))
        return
    reach = {True: "reachable", False: "UNREACHABLE", None: "not contacted yet"}[st["server_reachable"]]
    typer.echo(f"device   {st['device_id']}  (project {st['project']})")
    typer.echo(
        f"server   {st['server']}  {reach}"
        + (f"  last error: {st['last_error']}" if st["last_error"] else "")
    )
    typer.echo(f"revision desired {st['desired_revision']}, reached {st['reached_revision']}")
    typer.echo(f"outbox   {st['outbox']['queued']} queued, {st['outbox']['dropped']} dropped")
    if logs := st.get("logs"):
        typer.echo(
            f"logs     {logs['lines']} lines queued ({logs['bytes']} bytes), {logs['shipped']} shipped, "
            f"{logs['dropped']} dropped" + (f"  last error: {logs['error']}" if logs.get("error") else "")
        )
    for w in st["workloads"]:
        typer.echo(
            f"workload {w['deployment']} {w['version']} ({w['release']}): {w.get('state', '?')}, "
            f"ready={w.get('ready')}, restarts={w.get('restarts', 0)}, "
            f"endpoint :{w.get('endpoint')}, http :{w['http_port']}, grpc :{w['grpc_port']}"
        )
    for dep, f in st["failed"].items():
        typer.echo(f"failed   {dep} {f['release']}: {f['kind']}: {f['reason']}")
    for dep, phase in st["in_progress"].items():
        typer.echo(f"updating {dep}: {phase}")
    for dep, d in st.get("deferred", {}).items():
        typer.echo(f"deferred {dep} {d.get('version')}: {d['reason']}")
    held = (st.get("update_lock") or {}).get("operator")
    if held:
        typer.echo(f"lock     held by {held['holder']}: {held['reason']}")


_StateDir = Annotated[Path, typer.Option("--state-dir", help="The agent's state directory.")]
_Socket = Annotated[Path | None, typer.Option("--status-socket", help="Default <state-dir>/agent.sock.")]


@agent_app.command("lock")
def lock(
    reason: Annotated[str, typer.Option("--reason", help="Why updates must wait (shown at the server).")],
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="Release it by itself after 90s, 30m, 2h, 1d.", show_default=False),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who holds it [default: $USER].", show_default=False)
    ] = None,
    state_dir: _StateDir = Path("/var/lib/edgefleet/agent"),
    socket_path: _Socket = None,
) -> None:
    """Hold the update lock: the agent defers updates (reported as deferred) until `agent unlock`."""
    from edgefleet.agent.local import request

    who = by or os.environ.get("USER") or "operator"
    out = request(
        socket_path or state_dir / "agent.sock", {"op": "lock", "reason": reason, "ttl": ttl, "by": who}
    )
    held = out["update_lock"]
    typer.echo(
        f"update lock held by {held['holder']}: {held['reason']}"
        + (f" (until {held['expires_at']})" if held.get("expires_at") else "")
    )


@agent_app.command("unlock")
def unlock(state_dir: _StateDir = Path("/var/lib/edgefleet/agent"), socket_path: _Socket = None) -> None:
    """Release the update lock taken with `agent lock`."""
    from edgefleet.agent.local import request

    request(socket_path or state_dir / "agent.sock", {"op": "unlock"})
    typer.echo("update lock released")

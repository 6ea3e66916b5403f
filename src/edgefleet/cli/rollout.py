"""`edgefleet rollout status|pause|resume|abort|approve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgefleet.cli.context import CliContext, cli_context
from edgefleet.cli.server import DEFAULT_SERVER, CaCertOpt, ProjectOpt, ServerOpt, TokenOpt

__all__ = ["rollout_app"]

rollout_app = typer.Typer(help="Watch and steer rollouts.", no_args_is_help=True)
Target = Annotated[str, typer.Argument(help="Rollout id, or a deployment name (its latest rollout).")]
Reason = Annotated[str | None, typer.Option(help="Why; stored with the transition.")]


def _resolve(api: Any, target: str) -> str:
    if target.startswith("ro_"):
        return target
    page = api.get(api.p("/rollouts"), deployment=target, limit=1)
    if not page["items"]:
        from edgefleet.errors import NotFoundError

        raise NotFoundError(f"deployment {target!r} has no rollout", field="target")
    return str(page["items"][0]["id"])


def _render(c: CliContext, ro: dict[str, Any]) -> None:
    counts = ro["counts"]
    c.out.print(
        f"rollout {ro['id']}: [bold]{ro['phase']}[/] wave {ro['wave']}/{ro['waves']} plan {ro['plan']} — "
        f"{counts['updated']}/{counts['devices']} updated, {counts['ready']} ready, "
        f"{counts['failed']} failed",
        highlight=False,
    )
    c.out.print(f"reason: {ro['reason']}", highlight=False)
    if ro.get("transitions"):
        t = Table(title="transitions")
        for col in ("at", "from", "to", "wave", "reason"):
            t.add_column(col)
        for tr in ro["transitions"]:
            t.add_row(str(tr["at"]), tr["from"], tr["to"], str(tr["wave"]), tr["reason"])
        c.out.print(t)


@rollout_app.command("status")
def status(
    ctx: typer.Context,
    target: Target,
    *,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    project: ProjectOpt = "default",
    ca_cert: CaCertOpt = None,
) -> None:
    """Phase, wave, device counts, and every transition with its reason."""
    from edgefleet.server.client import ManagementClient

    with ManagementClient(server, token, project, ca_cert=ca_cert) as api:
        _render(cli_context(ctx), api.get(api.p(f"/rollouts/{_resolve(api, target)}")))


def _action(
    ctx: typer.Context,
    *,
    action: str,
    target: str,
    reason: str | None,
    server: str,
    token: str | None,
    project: str,
    ca_cert: Path | None,
) -> None:
    from edgefleet.server.client import ManagementClient

    with ManagementClient(server, token, project, ca_cert=ca_cert) as api:
        ro = api.post(api.p(f"/rollouts/{_resolve(api, target)}/{action}"), {"reason": reason})
    _render(cli_context(ctx), ro)


def _register_action(action: str, doc: str) -> None:
    """One command per rollout action: the same options, one verb each."""

    def command(
        ctx: typer.Context,
        *,
        target: Target,
        reason: Reason = None,
        server: ServerOpt = DEFAULT_SERVER,
        token: TokenOpt = None,
        project: ProjectOpt = "default",
        ca_cert: CaCertOpt = None,
    ) -> None:
        _action(
            ctx,
            action=action,
            target=target,
            reason=reason,
            server=server,
            token=token,
            project=project,
            ca_cert=ca_cert,
        )

    command.__doc__ = doc
    command.__name__ = action
    rollout_app.command(action)(command)


for _verb, _doc in (
    ("pause", "Stop starting new waves (devices keep what they have)."),
    ("resume", "Continue a paused rollout from its current wave."),
    ("approve", "Start the next wave of a rollout waiting for approval."),
    ("abort", "Abort and roll every updated device back to the previous release."),
):
    _register_action(_verb, _doc)

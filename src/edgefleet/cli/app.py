"""Root of the `edgefleet` CLI and the one place where errors become exit codes.

Each command group lives in its own module under ``edgefleet.cli`` and is registered below; the
modules import their services inside the command functions, so ``edgefleet --help`` and the
agent stay light.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgefleet import __version__
from edgefleet.cli import agent as agent_cli
from edgefleet.cli import bench as bench_cli
from edgefleet.cli import bundle as bundle_cli
from edgefleet.cli import deploy as deploy_cli
from edgefleet.cli import device as device_cli
from edgefleet.cli import image as image_cli
from edgefleet.cli import keys as keys_cli
from edgefleet.cli import optimize as optimize_cli
from edgefleet.cli import pipeline as pipeline_cli
from edgefleet.cli import probe as probe_cli
from edgefleet.cli import rollout as rollout_cli
from edgefleet.cli import run as run_cli
from edgefleet.cli import serve as serve_cli
from edgefleet.cli import server as server_cli
from edgefleet.cli import simulate as simulate_cli
from edgefleet.cli import tune as tune_cli
from edgefleet.cli import up as up_cli
from edgefleet.cli.context import CliContext, cli_context
from edgefleet.config import Settings, load_settings
from edgefleet.errors import EdgefleetError
from edgefleet.telemetry.logs import configure_logging

__all__ = ["app", "main"]

EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="edgefleet",
    help="Take an AI model to a fleet of Linux edge devices and keep it running there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgefleet {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Load the settings once (environment prefix EDGEFLEET_) and set up logging."""
    del version
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = CliContext(settings=settings, out=Console(), err=Console(stderr=True))


@app.command("config")
def show_config(ctx: typer.Context) -> None:
    """Show every setting, its current value and the environment variable that sets it."""
    c = cli_context(ctx)
    table = Table(title="edgefleet settings", show_lines=False)
    table.add_column("variable", style="bold")
    table.add_column("value")
    table.add_column("meaning")
    for name, field in Settings.model_fields.items():
        table.add_row(f"EDGEFLEET_{name.upper()}", str(getattr(c.settings, name)), field.description or "")
    c.out.print(table)


# Command groups: one module each, registered here in the order `edgefleet --help` lists them.
app.command("up")(up_cli.up)
app.command("down")(up_cli.down)
app.command("probe")(probe_cli.probe)
app.command("run", context_settings={"allow_interspersed_args": False})(run_cli.run)
app.add_typer(tune_cli.tune_app)
app.add_typer(bundle_cli.app, name="bundle")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(pipeline_cli.pipeline_app, name="pipeline")
app.command("bench")(bench_cli.bench)
app.command("optimize")(optimize_cli.optimize)
app.command("serve")(serve_cli.serve)
app.add_typer(image_cli.app, name="image")
app.add_typer(server_cli.server_app, name="server")
app.add_typer(device_cli.device_app, name="device")
app.add_typer(rollout_cli.rollout_app, name="rollout")
app.command("deploy")(deploy_cli.deploy)
app.command("simulate")(simulate_cli.simulate)

app.add_typer(agent_cli.agent_app, name="agent")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `edgefleet` executable."""
    err = Console(stderr=True)
    try:
        app(args=list(argv) if argv is not None else None, prog_name="edgefleet")
    except EdgefleetError as exc:
        err.print(
            f"[bold red]error[/]: {escape(exc.message)} [dim]\\[{escape(exc.code)}][/]",
            highlight=False,
            soft_wrap=True,  # one line, whatever the terminal's width: logs and grep see it whole
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)

"""`edgefleet server run|migrate`, and the connection options every operator command shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgefleet.cli.context import cli_context

if TYPE_CHECKING:
    from edgefleet.server.context import ServerSettings

__all__ = ["ProjectOpt", "ServerOpt", "TokenOpt", "server_app"]

server_app = typer.Typer(help="Run the control plane, or migrate its database.", no_args_is_help=True)

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="EDGEFLEET_SERVER", help="URL of the control plane.")
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EDGEFLEET_TOKEN", help="API token (Bearer).", show_default=False),
]
ProjectOpt = Annotated[str, typer.Option("--project", envvar="EDGEFLEET_PROJECT", help="Project to act in.")]
DEFAULT_SERVER = "http://127.0.0.1:8470"

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Database, blobs and keys [default: <EDGEFLEET_DATA_DIR>/server]."),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="postgresql://user@host/db (default: SQLite in the data directory)."),
]
SchemaOpt = Annotated[str | None, typer.Option("--db-schema", help="PostgreSQL schema to use.")]


def _settings(
    ctx: typer.Context,
    data_dir: Path | None,
    db: str | None,
    schema: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8470,
    replica_id: str = "",
) -> ServerSettings:
    from edgefleet.server.context import ServerSettings

    c = cli_context(ctx)
    return ServerSettings(
        data_dir=data_dir or c.settings.data_dir / "server",
        db_url=db,
        db_schema=schema,
        host=host,
        port=port,
        replica_id=replica_id,
    )


@server_app.command("migrate")
def migrate_cmd(
    ctx: typer.Context, data_dir: DataDirOpt = None, db: DbOpt = None, db_schema: SchemaOpt = None
) -> None:
    """Create or upgrade the database schema to this version of edgefleet."""
    from edgefleet.server.service import migrate

    rev = migrate(_settings(ctx, data_dir, db, db_schema))
    cli_context(ctx).out.print(f"database at schema revision {rev}")


@server_app.command("run")
def run_cmd(
    ctx: typer.Context,
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).", min=0, max=65535)] = 8470,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    db_schema: SchemaOpt = None,
    replica_id: Annotated[str, typer.Option(help="Name of this replica in rollout leases.")] = "",
) -> None:
    """Serve the management API (/api/v1), the device API (/device/v1) and /metrics."""
    import uvicorn

    from edgefleet.server.api import create_app
    from edgefleet.server.service import open_server

    c = cli_context(ctx)
    settings = _settings(ctx, data_dir, db, db_schema, host=host, port=port, replica_id=replica_id)
    server_ctx, token = open_server(settings)
    if token is not None:
        c.err.print("[bold]first start[/]: administrator token (shown once, stored hashed):")
        c.err.print(token, highlight=False, soft_wrap=True)
    c.err.print(f"edgefleet server on http://{host}:{port} (data in {settings.data_dir})", highlight=False)
    app = create_app(server_ctx)
    try:
        # Devices poll about once a minute: keep their connections open across polls.
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=75)
    finally:
        server_ctx.db.dispose()

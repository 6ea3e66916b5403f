"""`edgefleet server run|migrate`, and the connection options every operator command shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgefleet.cli.context import cli_context

if TYPE_CHECKING:
    from rich.console import Console

    from edgefleet.server.context import ServerSettings
    from edgefleet.server.tls import ServerTls

__all__ = ["CaCertOpt", "ProjectOpt", "ServerOpt", "TokenOpt", "server_app"]

server_app = typer.Typer(help="Run the control plane, or migrate its database.", no_args_is_help=True)

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="EDGEFLEET_SERVER", help="URL of the control plane.")
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EDGEFLEET_TOKEN", help="API token (Bearer).", show_default=False),
]
ProjectOpt = Annotated[str, typer.Option("--project", envvar="EDGEFLEET_PROJECT", help="Project to act in.")]
DEFAULT_SERVER = "https://127.0.0.1:8470"
CaCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert",
        envvar="EDGEFLEET_CA_CERT",
        help="CA certificate (PEM) to verify an https server with (its ca.pem).",
        show_default=False,
    ),
]

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
    log_retention_days: float = 7.0,
    max_log_lines_per_device: int = 100_000,
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
        log_retention_days=log_retention_days,
        max_log_lines_per_device=max_log_lines_per_device,
    )


@server_app.command("migrate")
def migrate_cmd(
    ctx: typer.Context, data_dir: DataDirOpt = None, db: DbOpt = None, db_schema: SchemaOpt = None
) -> None:
    """Create or upgrade the database schema to this version of edgefleet."""
    from edgefleet.server.service import migrate

    rev = migrate(_settings(ctx, data_dir, db, db_schema))
    cli_context(ctx).out.print(f"database at schema revision {rev}")


def announce(
    console: Console, *, token: str | None, url: str, data_dir: Path, server_tls: ServerTls | None
) -> None:
    """What `server run` tells the operator at start. Values are printed literally: no rich markup
    or emoji codes (a fingerprint holding ``:AB:`` once came out as an emoji)."""

    def say(text: str) -> None:
        console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)

    if token is not None:
        console.print("[bold]first start[/]: administrator token (shown once, stored hashed):")
        say(token)
    say(f"edgefleet server on {url} (data in {data_dir})")
    if server_tls is None:
        console.print(
            "[bold yellow]warning[/]: --tls off: join tokens, API tokens and bundles cross the network "
            "unencrypted (plain HTTP); use it only behind a TLS-terminating proxy or on a trusted network",
            highlight=False,
            soft_wrap=True,
        )
    else:
        say(f"TLS CA certificate: {server_tls.ca or server_tls.cert}")
        say(f"TLS CA SHA-256 fingerprint: {server_tls.fingerprint}")


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
    log_retention_days: Annotated[
        float, typer.Option(help="Device log lines older than this are deleted.", min=0.001)
    ] = 7.0,
    max_log_lines: Annotated[
        int, typer.Option(help="Newest device log lines kept per device.", min=10)
    ] = 100_000,
    tls: Annotated[
        str | None,
        typer.Option(
            "--tls",
            help="auto (the default): HTTPS with a CA and certificate made in the data directory; "
            "off: plain HTTP, for a trusted network or a TLS-terminating proxy only.",
            show_default=False,
        ),
    ] = None,
    tls_san: Annotated[
        list[str] | None, typer.Option("--tls-san", help="Extra DNS name or IP of the server certificate.")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Operator's certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Operator's private key (PEM).")] = None,
    tls_ca: Annotated[Path | None, typer.Option("--tls-ca", help="Operator's CA devices should pin.")] = None,
    tuf_keys: Annotated[
        Path | None,
        typer.Option(
            "--tuf-keys",
            help="Keys directory (edgefleet keys init): host a TUF repository of the bundles; devices "
            "verify every bundle with it.",
            show_default=False,
        ),
    ] = None,
    tuf_passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--tuf-passphrase-env",
            help="Environment variable with the passphrase of an encrypted targets key in --tuf-keys.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the management API (/api/v1), the device API (/device/v1) and /metrics."""
    import uvicorn

    from edgefleet.server.api import create_app
    from edgefleet.server.service import open_server
    from edgefleet.server.tls import resolve_server_tls

    c = cli_context(ctx)
    settings = _settings(
        ctx,
        data_dir,
        db,
        db_schema,
        host=host,
        port=port,
        replica_id=replica_id,
        log_retention_days=log_retention_days,
        max_log_lines_per_device=max_log_lines,
    )
    if tuf_keys is not None:
        settings = settings.model_copy(
            update={"tuf_keys_dir": tuf_keys.absolute(), "tuf_passphrase_env": tuf_passphrase_env}
        )
    server_tls = resolve_server_tls(
        settings.data_dir, tls, cert=tls_cert, key=tls_key, ca=tls_ca, sans=tls_san or ()
    )
    if server_tls is not None and server_tls.ca is not None:
        settings = settings.model_copy(update={"tls_ca_file": server_tls.ca})
    server_ctx, token = open_server(settings)
    announce(c.err, token=token, url=f"{'https' if server_tls else 'http'}://{host}:{port}",
             data_dir=settings.data_dir, server_tls=server_tls)  # fmt: skip
    app = create_app(server_ctx)
    try:
        # Devices poll about once a minute: keep their connections open across polls.
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=75,
            ssl_certfile=str(server_tls.cert) if server_tls else None,
            ssl_keyfile=str(server_tls.key) if server_tls else None,
        )
    finally:
        server_ctx.db.dispose()

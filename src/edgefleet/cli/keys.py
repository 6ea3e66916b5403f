"""`edgefleet keys`: create, show and rotate the offline TUF keys (root, targets) and the online ones."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgefleet.cli.context import cli_context

__all__ = ["app", "resolve_passphrase"]

app = typer.Typer(
    name="keys",
    help="Manage the TUF signing keys: root and targets offline, snapshot and timestamp for the server.",
    no_args_is_help=True,
)

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file", help="Read the passphrase from this file (first line).", dir_okay=False
    ),
]
PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env", metavar="VAR", help="Read the passphrase from this environment variable."
    ),
]


def resolve_passphrase(
    passphrase_file: Path | None,
    passphrase_env: str | None,
    *,
    confirm: bool,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The passphrase from a file, an environment variable named by the user, or a prompt."""
    from edgefleet.bundle.errors import BundleInputError, BundleNotFoundError

    env = os.environ if environ is None else environ
    if passphrase_file is not None:
        try:
            lines = passphrase_file.read_text().splitlines()
        except FileNotFoundError as exc:
            raise BundleNotFoundError(f"--passphrase-file: {passphrase_file} does not exist") from exc
        text = lines[0] if lines else ""
    elif passphrase_env is not None:
        if passphrase_env not in env:
            raise BundleInputError(
                f"--passphrase-env: the variable {passphrase_env} is not set", field="passphrase"
            )
        text = env[passphrase_env]
    else:
        text = typer.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm)
    if not text:
        raise BundleInputError(
            "the passphrase is empty; use --insecure-plaintext for unencrypted keys",
            code="keys.passphrase_required",
        )
    return text.encode()


@app.command("init")
def init(  # noqa: PLR0917 - a typer command takes its options as parameters
    ctx: typer.Context,
    keys_dir: Annotated[Path, typer.Argument(help="Directory to create the keys in (mode 0700).")],
    root_keys: Annotated[int, typer.Option(help="Number of root keys.")] = 1,
    root_threshold: Annotated[int, typer.Option(help="Root signatures a new root or rotation needs.")] = 1,
    targets_keys: Annotated[int, typer.Option(help="Number of targets keys.")] = 1,
    targets_threshold: Annotated[int, typer.Option(help="Targets signatures a release needs.")] = 1,
    root_expiry_days: Annotated[int, typer.Option(help="Days until root.json expires.", min=1)] = 365,
    passphrase_file: PassphraseFile = None,
    passphrase_env: PassphraseEnv = None,
    insecure_plaintext: Annotated[
        bool, typer.Option("--insecure-plaintext", help="Store offline keys unencrypted (still mode 0600).")
    ] = False,
) -> None:
    """Create ed25519 keys for every TUF role and root.json version 1, signed by the root keys."""
    from datetime import timedelta

    from edgefleet.bundle.keys import KeyPolicy, KeyStore

    c = cli_context(ctx)
    passphrase = (
        None if insecure_plaintext else resolve_passphrase(passphrase_file, passphrase_env, confirm=True)
    )
    policy = KeyPolicy(
        root_keys=root_keys,
        root_threshold=root_threshold,
        targets_keys=targets_keys,
        targets_threshold=targets_threshold,
        root_expiry=timedelta(days=root_expiry_days),
    )
    md = KeyStore(keys_dir).init(policy, passphrase)
    c.out.print(
        f"created keys in {keys_dir}: root v{md.signed.version}, expires {md.signed.expires:%Y-%m-%d}"
    )
    c.out.print(f"online keys for the server (snapshot, timestamp): {keys_dir / 'online'}")


@app.command("show")
def show(
    ctx: typer.Context,
    keys_dir: Annotated[Path, typer.Argument(help="A keys directory made by 'edgefleet keys init'.")],
) -> None:
    """Show each role's key ids, threshold and which private keys are here."""
    from edgefleet.bundle.keys import ROLES, KeyStore

    c = cli_context(ctx)
    store = KeyStore(keys_dir)
    root = store.root().signed
    table = Table(title=f"root v{root.version}, expires {root.expires:%Y-%m-%d %H:%M} UTC")
    table.add_column("role", style="bold")
    table.add_column("threshold")
    table.add_column("key ids")
    table.add_column("private keys here")
    for role in ROLES:
        r = root.roles[role]
        files = [p.name for p in store.key_files(role)]
        table.add_row(role, str(r.threshold), "\n".join(k[:16] for k in r.keyids), "\n".join(files) or "-")
    c.out.print(table)


@app.command("rotate")
def rotate(  # noqa: PLR0917 - a typer command takes its options as parameters
    ctx: typer.Context,
    keys_dir: Annotated[Path, typer.Argument(help="A keys directory made by 'edgefleet keys init'.")],
    role: Annotated[
        str, typer.Option(help="Role whose keys are replaced: root, targets, snapshot, timestamp.")
    ],
    keys: Annotated[int | None, typer.Option(help="Number of new keys (default: as many as now).")] = None,
    threshold: Annotated[int | None, typer.Option(help="New threshold (default: unchanged).")] = None,
    repo: Annotated[
        Path | None,
        typer.Option(
            help="Also publish the new root into this repository and re-sign what the change needs."
        ),
    ] = None,
    passphrase_file: PassphraseFile = None,
    passphrase_env: PassphraseEnv = None,
    insecure_plaintext: Annotated[
        bool, typer.Option("--insecure-plaintext", help="The offline keys are stored unencrypted.")
    ] = False,
) -> None:
    """Replace a role's keys and issue root version N+1, signed by the old and the new root keys."""
    from edgefleet.bundle.errors import BundleNotFoundError
    from edgefleet.bundle.keys import ONLINE_ROLES, KeyStore
    from edgefleet.bundle.repository import Repository

    c = cli_context(ctx)
    if repo is not None and not Repository(repo).exists():
        raise BundleNotFoundError(f"--repo: {repo} is not a repository (no metadata/1.root.json)")
    passphrase = (
        None if insecure_plaintext else resolve_passphrase(passphrase_file, passphrase_env, confirm=False)
    )
    store = KeyStore(keys_dir)
    md = store.rotate(role, passphrase, keys=keys, threshold=threshold)
    new_ids = ", ".join(k[:16] for k in md.signed.roles[role].keyids)
    c.out.print(f"root v{md.signed.version}: new {role} keys {new_ids}")
    if repo is not None:
        repository = Repository(repo)
        repository.sync_roots(store.root_versions())
        if role == "targets":
            repository.sign_targets(store.signers("targets", passphrase))
        if repository.targets() is not None and all(store.key_files(r) for r in ONLINE_ROLES):
            repository.refresh({r: store.signers(r, None) for r in ONLINE_ROLES}, force=role in ONLINE_ROLES)
        c.out.print(f"published root v{md.signed.version} in {repo}")

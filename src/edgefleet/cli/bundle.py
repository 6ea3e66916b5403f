"""`edgefleet bundle`: build, inspect, verify, sign and fetch model bundles."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgefleet.cli.context import cli_context
from edgefleet.cli.keys import PassphraseEnv, PassphraseFile, resolve_passphrase

__all__ = ["app", "parse_size"]

app = typer.Typer(
    name="bundle",
    help=(
        "Model bundles: a reproducible tar with bundle.json, signed with TUF.\n\n"
        "Flow: [bold]edgefleet keys init KEYS[/] → [bold]edgefleet bundle build model.onnx --name N "
        "--version V -o B.tar[/] → [bold]edgefleet bundle sign B.tar --keys KEYS --repo REPO[/] → serve REPO "
        "over HTTP → [bold]edgefleet bundle fetch N V --url URL --root 1.root.json[/] on a device."
    ),
    no_args_is_help=True,
)

_SIZE = re.compile(r"^(\d+)\s*([KMGT]i?)?B?$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 1 << 10,
    "mi": 1 << 20,
    "gi": 1 << 30,
    "ti": 1 << 40,
}


def parse_size(value: str, *, option: str) -> int:
    """Bytes from ``512Mi``, ``1G``, ``1048576``..."""
    from edgefleet.bundle.errors import BundleInputError

    m = _SIZE.match(value.strip())
    if not m:
        raise BundleInputError(f"{option}: {value!r} is not a size (e.g. 268435456, 256Mi, 1G)", field=option)
    return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]


@app.command("build")
def build(  # noqa: PLR0917 - a typer command takes its options as parameters
    ctx: typer.Context,
    source: Annotated[
        Path, typer.Argument(metavar="MODEL_OR_DIR", help="A .onnx/.tflite file or a directory.")
    ],
    name: Annotated[str, typer.Option(help="Bundle name: lower case, digits, '.', '_', '-'.")],
    version: Annotated[str, typer.Option(help="Semantic version, e.g. 1.0.0 or 1.1.0-rc.1.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Tar to write [default: NAME-VERSION.tar].")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model path inside a directory (default: the only .onnx/.tflite).")
    ] = None,
    model_format: Annotated[
        str | None, typer.Option("--format", help="onnx or tflite (default: from the extension).")
    ] = None,
    created: Annotated[
        str | None,
        typer.Option(help="Build time, ISO 8601 or epoch seconds [default: $SOURCE_DATE_EPOCH, else now]."),
    ] = None,
    description: Annotated[str, typer.Option(help="One line about the bundle.")] = "",
    processing: Annotated[
        Path | None,
        typer.Option(help="TOML or JSON file with [[pre]]/[[post]] steps {op, args}.", dir_okay=False),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option(
            help="TOML or JSON file with inputs/outputs {name, dtype, shape}: for tflite, or to override.",
            dir_okay=False,
        ),
    ] = None,
    min_memory: Annotated[str | None, typer.Option(help="Minimum memory, e.g. 256Mi.")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs the model wants (fractions allowed).")] = None,
    provider: Annotated[
        list[str] | None, typer.Option(help="Preferred execution provider, best first (repeat the option).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output if it exists.")] = False,
) -> None:
    """Build a reproducible bundle tar from a model file or a directory."""
    from datetime import UTC, datetime

    from edgefleet.bundle.build import (
        BuildOptions,
        build_bundle,
        created_from,
        load_processing,
        load_signature,
    )
    from edgefleet.bundle.errors import BundleInputError
    from edgefleet.bundle.manifest import ProcessingSpec, ResourceHints

    c = cli_context(ctx)
    if model_format not in {None, "onnx", "tflite"}:
        raise BundleInputError(f"--format: {model_format!r} is not one of onnx, tflite", field="format")
    sig = load_signature(signature) if signature else None
    options = BuildOptions(
        name=name,
        version=version,
        created=created_from(
            created, source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH"), now=lambda: datetime.now(UTC)
        ),
        model=model,
        model_format=model_format,  # type: ignore[arg-type]  # checked above
        description=description,
        processing=load_processing(processing) if processing else ProcessingSpec(),
        resources=ResourceHints(
            min_memory_bytes=parse_size(min_memory, option="--min-memory") if min_memory else None, cpus=cpus
        ),
        execution_providers=provider or [],
        inputs=sig.inputs if sig else None,
        outputs=sig.outputs if sig else None,
    )
    out = output or Path(f"{name}-{version}.tar")
    built = build_bundle(source, out, options, overwrite=force)
    c.out.print(f"built {built.path} ({built.size} bytes)")
    c.out.print(f"sha256 {built.sha256}")


def _manifest_table(manifest: Any, sha256: str, size: int) -> Table:
    table = Table(title=f"{manifest.name} {manifest.version}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("sha256", sha256)
    table.add_row("size", f"{size} bytes")
    table.add_row("created", manifest.created.isoformat())
    table.add_row("model", f"{manifest.model.path} ({manifest.model.format}, opset {manifest.model.opset})")
    for kind, tensors in (("inputs", manifest.model.inputs), ("outputs", manifest.model.outputs)):
        table.add_row(kind, "\n".join(f"{t.name}: {t.dtype} {t.shape}" for t in tensors) or "-")
    table.add_row("files", "\n".join(f"{f.path}  {f.size} B  {f.sha256[:16]}" for f in manifest.files))
    steps = [f"pre {s.op} {json.dumps(s.args)}" for s in manifest.processing.pre]
    steps += [f"post {s.op} {json.dumps(s.args)}" for s in manifest.processing.post]
    table.add_row("processing", "\n".join(steps) or "-")
    table.add_row("resources", manifest.resources.model_dump_json(exclude_none=True))
    table.add_row("providers", ", ".join(manifest.execution_providers) or "-")
    return table


@app.command("inspect")
def inspect(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle tar.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print bundle.json as it is stored.")] = False,
) -> None:
    """Show a bundle's manifest (every entry is verified on the way)."""
    from edgefleet.bundle.unpack import read_bundle

    c = cli_context(ctx)
    verified = read_bundle(bundle)
    if as_json:
        typer.echo(verified.manifest_bytes.decode(), nl=False)
        return
    c.out.print(_manifest_table(verified.manifest, verified.sha256, verified.size))


@app.command("verify")
def verify(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle tar.")],
    sha256: Annotated[str | None, typer.Option(help="Also require this sha256 of the whole tar.")] = None,
) -> None:
    """Check a bundle offline: safe entries, exactly the listed files, every size and sha256."""
    from edgefleet.bundle.unpack import read_bundle

    c = cli_context(ctx)
    verified = read_bundle(bundle, expected_sha256=sha256)
    c.out.print(f"ok {verified.manifest.name} {verified.manifest.version} sha256 {verified.sha256}")


@app.command("sign")
def sign(  # noqa: PLR0917 - a typer command takes its options as parameters
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle tar built by 'edgefleet bundle build'.")],
    keys: Annotated[Path, typer.Option("--keys", help="Keys directory ('edgefleet keys init').")],
    repo: Annotated[Path, typer.Option("--repo", help="Repository directory (created when missing).")],
    refresh: Annotated[
        bool,
        typer.Option(
            help="Also renew snapshot and timestamp with the online keys in KEYS/online, if present."
        ),
    ] = True,
    passphrase_file: PassphraseFile = None,
    passphrase_env: PassphraseEnv = None,
    insecure_plaintext: Annotated[
        bool, typer.Option("--insecure-plaintext", help="The offline keys are stored unencrypted.")
    ] = False,
) -> None:
    """Add the bundle to the repository's targets metadata, signed by the targets key(s)."""
    from edgefleet.bundle.keys import ONLINE_ROLES, KeyStore
    from edgefleet.bundle.repository import Repository

    c = cli_context(ctx)
    store = KeyStore(keys)
    root_versions = store.root_versions()
    passphrase = (
        None if insecure_plaintext else resolve_passphrase(passphrase_file, passphrase_env, confirm=False)
    )
    signers = store.signers("targets", passphrase)
    repository = Repository(repo) if Repository(repo).exists() else Repository.create(repo, root_versions)
    repository.sync_roots(root_versions)
    info = repository.add_bundle(bundle, signers)
    targets = repository.targets()
    version = targets.signed.version if targets else 0
    c.out.print(
        f"signed {info.path} ({info.length} bytes, sha256 {info.hashes['sha256']}) in targets v{version}"
    )
    if refresh and all(store.key_files(r) for r in ONLINE_ROLES):
        result = repository.refresh({r: store.signers(r, None) for r in ONLINE_ROLES})
        c.out.print(
            f"snapshot v{result.snapshot_version}, timestamp v{result.timestamp_version}; "
            f"refresh again before {result.next_refresh:%Y-%m-%d %H:%M} UTC"
        )
    else:
        c.out.print("snapshot and timestamp left to the server (online keys)")


@app.command("fetch")
def fetch(  # noqa: PLR0917 - a typer command takes its options as parameters
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Bundle name.")],
    version: Annotated[str, typer.Argument(help="Bundle version.")],
    url: Annotated[str, typer.Option(help="Base URL of the repository (serving metadata/ and targets/).")],
    state: Annotated[Path, typer.Option(help="Directory for trusted metadata and partial downloads.")],
    store: Annotated[Path, typer.Option(help="Content-addressed bundle store.")],
    root: Annotated[
        Path | None, typer.Option(help="Trusted root.json, obtained out of band (needed the first time).")
    ] = None,
) -> None:
    """Fetch, verify (TUF) and install a bundle into the store, as the device agent does."""
    from edgefleet.bundle.client import BundleClient
    from edgefleet.bundle.errors import BundleNotFoundError
    from edgefleet.bundle.store import BundleStore

    c = cli_context(ctx)
    trusted = None
    if root is not None:
        try:
            trusted = root.read_bytes()
        except FileNotFoundError as exc:
            raise BundleNotFoundError(f"--root: {root} does not exist", path=str(root)) from exc
    client = BundleClient(state, url, BundleStore(store), trusted_root=trusted)
    installed = client.fetch(name, version)
    c.out.print(f"installed {installed.manifest.name} {installed.manifest.version} at {installed.path}")


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of bundle.json."""
    from edgefleet.bundle.manifest import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))

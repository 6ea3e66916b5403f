"""`edgefleet image`: minimal OCI images of a bundle (build, inspect, run, quadlet)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgefleet.cli.context import cli_context

__all__ = ["app"]

app = typer.Typer(
    name="image",
    help=(
        "Minimal OCI images of a bundle, built without a daemon.\n\n"
        "Flow: [bold]edgefleet image build B.tar -o IMAGE.tar[/] → [bold]edgefleet image run IMAGE.tar "
        "--cpus 1 --memory 512m[/] or [bold]edgefleet image quadlet IMAGE.tar[/] for systemd."
    ),
    no_args_is_help=True,
)


class NetworkMode(str, Enum):  # noqa: UP042 - typer renders str enums as choices
    none = "none"
    host = "host"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


@app.command("build")
def build(  # noqa: PLR0917 - typer maps one parameter to each documented option
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="The bundle (.tar from `edgefleet bundle build`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OCI image layout archive to write.")],
    platform: Annotated[
        str, typer.Option(help="Target platforms, comma separated: linux/amd64, linux/arm64.")
    ] = "linux/amd64",
    base: Annotated[
        Path | None,
        typer.Option(help="An OCI layout archive to use as the base instead of the Debian packages."),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Name:tag podman gives the image on load (default NAME:VERSION).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where debs, wheels and finished layers are cached (default <data dir>/cache/image)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was built as JSON.")] = False,
) -> None:
    """Build BUNDLE into a minimal, reproducible OCI image (SOURCE_DATE_EPOCH fixes the timestamps)."""
    from edgefleet.image.build import build_image, default_cache_dir, parse_platforms

    c = cli_context(ctx)
    result = build_image(
        bundle,
        output,
        platforms=parse_platforms(platform),
        base=base,
        cache_dir=cache_dir or default_cache_dir(c.settings.data_dir),
        ref_name=tag,
    )
    info = result.to_dict()
    if json_out:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    c.out.print(f"built {output} ({_mib(info['size'])}): {result.bundle_name} {result.bundle_version}")
    for image in info["images"]:
        table = Table(title=f"linux/{image['architecture']}  manifest {image['manifest']}")
        for col in ("layer", "digest", "compressed", "uncompressed"):
            table.add_column(col)
        for layer in image["layers"]:
            table.add_row(
                layer["comment"].split(" sha256:")[0].split(":")[0],
                layer["digest"][:19],
                _mib(layer["size"]),
                _mib(layer["uncompressed_size"]),
            )
        table.add_row("total", "", _mib(image["compressed_size"]), _mib(image["uncompressed_size"]))
        c.out.print(table)


@app.command("inspect")
def inspect(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="OCI image layout archive.")],
    platform: Annotated[
        str | None, typer.Option(help="linux/amd64 or linux/arm64 (default: this machine).")
    ] = None,
) -> None:
    """Print the image config (labels, command, user, health check) of one platform as JSON."""
    from edgefleet.image.build import parse_platforms
    from edgefleet.image.run import read_archive

    cli_context(ctx)
    arch = parse_platforms(platform)[0] if platform else None
    found = read_archive(image, arch)
    doc = {
        "ref_name": found.ref_name,
        "architecture": found.arch,
        "manifest": found.manifest_digest,
        "image_id": found.image_id,
        "config": found.config,
    }
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@app.command("run")
def run(  # noqa: PLR0917 - typer maps one parameter to each documented option
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="OCI image layout archive (loaded into podman if needed).")],
    cpus: Annotated[str | None, typer.Option(help="CPU quota in CPUs (1.5).")] = None,
    cpuset: Annotated[str | None, typer.Option(help="CPUs it may run on, like 0-1.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory limit (512m); swap is off.")] = None,
    pids: Annotated[int | None, typer.Option(help="Most processes/threads.")] = None,
    network: Annotated[
        NetworkMode, typer.Option(help="host: the server's ports on the host; none: loopback only.")
    ] = NetworkMode.host,
    http_port: Annotated[int, typer.Option(help="REST port (0: a free one).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (-1: off).")] = 8001,
    host: Annotated[str, typer.Option(help="Address the server binds.")] = "0.0.0.0",  # noqa: S104 - documented default of a server
    json_report: Annotated[
        bool, typer.Option("--json", help="Print the run report as one JSON line.")
    ] = False,
) -> None:
    """Run the image's server with podman through the sandbox, with limits; report how it ended."""
    from edgefleet.image.run import load_image, workload_spec
    from edgefleet.sandbox.options import RunOptions
    from edgefleet.sandbox.podman import PodmanBackend
    from edgefleet.sandbox.render import render_report

    c = cli_context(ctx)
    limits = RunOptions(cpus=cpus, cpuset=cpuset, memory=memory, pids=pids).limits()
    backend = PodmanBackend()
    loaded = load_image(image, backend=backend)
    name = f"image-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    spec, target = workload_spec(
        loaded,
        name=name,
        limits=limits,
        network=network.value,
        http_port=http_port,
        grpc_port=grpc_port,
        host=host,
    )
    report = backend.run(spec, target)
    if json_report:
        sys.stdout.write(json.dumps(report.to_dict(), default=str) + "\n")
    else:
        render_report(report, c.err)
    raise typer.Exit(report.shell_code())


@app.command("quadlet")
def quadlet(  # noqa: PLR0917 - typer maps one parameter to each documented option
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="OCI image layout archive.")],
    name: Annotated[
        str | None, typer.Option(help="Unit and container name (default edgefleet-BUNDLE).")
    ] = None,
    image_ref: Annotated[
        str | None, typer.Option("--image-ref", help="Image= value (default localhost/NAME:TAG as loaded).")
    ] = None,
    cpus: Annotated[str | None, typer.Option(help="CPU quota in CPUs.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory limit (512m).")] = None,
    pids: Annotated[int | None, typer.Option(help="Most processes/threads.")] = None,
    http_port: Annotated[int, typer.Option(help="Host port for REST.")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="Host port for gRPC.")] = 8001,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write a Podman Quadlet .container unit that runs the image hardened, with limits."""
    from edgefleet.image.run import quadlet_unit, read_archive
    from edgefleet.sandbox.options import RunOptions

    c = cli_context(ctx)
    limits = RunOptions(cpus=cpus, memory=memory, pids=pids).limits()
    found = read_archive(image)
    text = quadlet_unit(
        found, image_ref=image_ref, name=name, limits=limits, http_port=http_port, grpc_port=grpc_port
    )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        c.err.print(f"wrote {output}")

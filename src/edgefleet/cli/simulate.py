"""`edgefleet simulate`: a fleet of virtual devices against a real control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli.context import cli_context
from edgefleet.cli.server import DEFAULT_SERVER, CaCertOpt, ServerOpt

__all__ = ["simulate"]


def simulate(
    ctx: typer.Context,
    *,
    join_token: Annotated[
        str, typer.Option("--join-token", envvar="EDGEFLEET_JOIN_TOKEN", help="Join token.")
    ],
    devices: Annotated[int, typer.Option(help="Number of virtual devices.", min=1, max=1_000_000)] = 10,
    fail_fraction: Annotated[
        float, typer.Option(help="Share of devices that report bad health.", min=0, max=1)
    ] = 0.0,
    bad_version: Annotated[
        list[str] | None, typer.Option(help="Bundle versions that fail on every device.")
    ] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls per device.", min=0.01)] = 60.0,
    jitter: Annotated[
        float, typer.Option(help="Poll jitter as a share of the interval.", min=0, max=1)
    ] = 0.2,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=0)] = 300.0,
    label: Annotated[list[str] | None, typer.Option(help="key=value label of every device.")] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="File (0600) that keeps the devices' identities: a later run with it enrolls nobody.",
            dir_okay=False,
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    ca_cert: CaCertOpt = None,
) -> None:
    """Enroll N virtual devices, poll with jitter, apply, report health; print poll statistics."""
    import asyncio

    from edgefleet.errors import InvalidInputError
    from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig

    labels: dict[str, str] = {}
    for item in label or []:
        k, eq, v = item.partition("=")
        if not eq:
            raise InvalidInputError(f"--label {item!r}: expected key=value", field="label")
        labels[k] = v
    config = SimulatorConfig(
        server=server,
        join_token=join_token,
        devices=devices,
        fail_fraction=fail_fraction,
        bad_versions=frozenset(bad_version or ()),
        poll_interval=poll_interval,
        jitter=jitter,
        labels=labels,
        ca_cert=str(ca_cert) if ca_cert else None,
        state_file=str(state) if state else None,
    )
    sim = FleetSimulator(config)

    async def go() -> None:
        try:
            await sim.run(duration)
        finally:
            await sim.aclose()

    asyncio.run(go())
    st = sim.stats
    cli_context(ctx).out.print(
        f"{len(sim.devices)} devices, {st.polls} polls ({st.not_modified} not modified, "
        f"{st.changed} changed), {st.errors} errors, "
        f"p50 {st.percentile(0.5) * 1000:.1f} ms, p99 {st.percentile(0.99) * 1000:.1f} ms",
        highlight=False,
    )

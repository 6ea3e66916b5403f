"""``edgefleet run [limits] -- CMD ...``: run one command in a sandbox and report how it ended."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli.context import cli_context

__all__ = ["run"]


class Backend(str, Enum):  # noqa: UP042 - typer renders str enums as choices
    native = "native"
    podman = "podman"


class NetworkMode(str, Enum):  # noqa: UP042 - typer renders str enums as choices
    none = "none"
    host = "host"


_LIMITS = "Limits"
_ISOLATION = "Isolation"
_OUTPUT = "Output and placement"


def run(  # noqa: PLR0917 - typer maps one parameter to each documented option
    ctx: typer.Context,
    command: Annotated[
        list[str], typer.Argument(help="The command and its arguments, after --.", show_default=False)
    ],
    cpus: Annotated[
        str | None,
        typer.Option(
            help="CPU quota in CPUs (1.5 = one and a half CPUs per 100 ms period): "
            "cpu.cfs_quota_us (v1) or cpu.max (v2).",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    cpuset: Annotated[
        str | None,
        typer.Option(help="CPUs the workload may run on, like 0-1,3 (cpuset.cpus).", rich_help_panel=_LIMITS),
    ] = None,
    cpuset_mems: Annotated[
        str | None,
        typer.Option(help="Memory nodes it may use, like 0 (cpuset.mems).", rich_help_panel=_LIMITS),
    ] = None,
    cpu_weight: Annotated[
        int | None,
        typer.Option(
            help="Relative CPU weight 1-10000 (default 100): cpu.weight (v2); "
            "on v1 cpu.shares = weight*1024/100.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(
            help="Memory ceiling (64m, 1.5G): memory.limit_in_bytes (+memsw) on v1, memory.max on v2; "
            "exceeding it ends in an OOM kill.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    memory_high: Annotated[
        str | None,
        typer.Option(help="Memory throttling threshold (v2 memory.high only).", rich_help_panel=_LIMITS),
    ] = None,
    pids: Annotated[
        int | None,
        typer.Option(help="Most processes and threads at once (pids.max).", rich_help_panel=_LIMITS),
    ] = None,
    io_weight: Annotated[
        int | None,
        typer.Option(
            help="Relative I/O weight 1-10000: io.weight (v2); "
            "blkio.weight = weight/10 on v1, where present.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    io_max: Annotated[
        list[str] | None,
        typer.Option(
            help="I/O ceiling per block device, repeatable: /dev/sda:rbps=10m,wbps=5m,riops=100,wiops=100 "
            "(io.max on v2, blkio.throttle.* on v1).",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            help="Allow a device node, repeatable: /dev/video0[:rwm]. "
            "Added to the device cgroup (v1) and bound into the sandbox's private /dev.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    network: Annotated[
        NetworkMode,
        typer.Option(
            help="none: a new network namespace with only loopback; host: the host's.",
            rich_help_panel=_ISOLATION,
        ),
    ] = NetworkMode.host,
    user: Annotated[
        str,
        typer.Option(
            help="Run as this user: a name, uid or uid:gid (never with capabilities).",
            rich_help_panel=_ISOLATION,
        ),
    ] = "nobody",
    ro: Annotated[
        list[Path] | None,
        typer.Option(
            help="A directory visible read-only (the bundle), repeatable.", rich_help_panel=_ISOLATION
        ),
    ] = None,
    rw: Annotated[
        list[Path] | None,
        typer.Option(
            help="A directory that stays writable (the state directory), repeatable. Everything else is "
            "read-only; /tmp is a private tmpfs.",
            rich_help_panel=_ISOLATION,
        ),
    ] = None,
    hostname: Annotated[
        str, typer.Option(help="Hostname inside the sandbox.", rich_help_panel=_ISOLATION)
    ] = "edgefleet",
    workdir: Annotated[
        Path, typer.Option(help="Working directory inside.", rich_help_panel=_ISOLATION)
    ] = Path("/"),
    seccomp: Annotated[
        bool,
        typer.Option(
            help="Load the seccomp deny-list "
            "(mount, unshare, ptrace, bpf, kexec, modules...; needs pyseccomp).",
            rich_help_panel=_ISOLATION,
        ),
    ] = True,
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse to start when any requested limit cannot be enforced here.", rich_help_panel=_LIMITS
        ),
    ] = False,
    backend: Annotated[
        Backend,
        typer.Option(help="native: cgroups + namespaces; podman: a container.", rich_help_panel=_ISOLATION),
    ] = Backend.native,
    image: Annotated[
        str | None, typer.Option(help="OCI image for --backend podman.", rich_help_panel=_ISOLATION)
    ] = None,
    rootfs: Annotated[
        Path | None,
        typer.Option(help="Root file system directory for --backend podman.", rich_help_panel=_ISOLATION),
    ] = None,
    cgroup_parent: Annotated[
        str,
        typer.Option(
            help="Parent cgroup (under each hierarchy's root) for the run's cgroup.", rich_help_panel=_OUTPUT
        ),
    ] = "edgefleet",
    json_report: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the report as one JSON line on stdout after the command ends.",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
) -> None:
    """Run CMD in a sandbox with real resource limits and report how it ended.

    The report: exit code or signal, OOM kill, limits hit (memory, pids, cpus), peak memory, CPU time,
    throttling, and every requested limit this kernel cannot enforce.

    The exit status is the command's own (128+N for signal N).
    """
    from edgefleet.sandbox import Sandbox, SandboxSpec
    from edgefleet.sandbox.options import RunOptions
    from edgefleet.sandbox.podman import PodmanBackend, PodmanTarget
    from edgefleet.sandbox.render import render_report

    c = cli_context(ctx)
    options = RunOptions(
        cpus=cpus,
        cpuset=cpuset,
        cpuset_mems=cpuset_mems,
        cpu_weight=cpu_weight,
        memory=memory,
        memory_high=memory_high,
        pids=pids,
        io_weight=io_weight,
        io_max=tuple(io_max or ()),
        devices=tuple(device or ()),
        network=network.value,
        user=user,
        ro=tuple(ro or ()),
        rw=tuple(rw or ()),
        hostname=hostname,
        workdir=workdir,
        seccomp=seccomp,
    )
    name = f"run-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    spec = SandboxSpec(name, tuple(command), options.limits(), options.isolation())
    if backend is Backend.podman:
        target = PodmanTarget(image=image, rootfs=rootfs.absolute() if rootfs else None)
        report = PodmanBackend().run(spec, target, strict=strict)
    else:
        run_dir = Path(tempfile.mkdtemp(prefix="edgefleet-run-"))
        sandbox = Sandbox(run_dir=run_dir, parent=cgroup_parent)
        # SIGTERM and SIGHUP end the run like Ctrl-C: the workload is stopped, its cgroup removed
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.default_int_handler)
        try:
            process = sandbox.start(spec, strict=strict)
            try:
                report = process.wait()
            except KeyboardInterrupt:
                process.stop(grace=2.0)
                raise
        finally:
            sandbox.driver.prune()
            shutil.rmtree(run_dir, ignore_errors=True)
    if json_report:
        sys.stdout.write(json.dumps(report.to_dict(), default=str) + "\n")
    else:
        render_report(report, c.err)
    raise typer.Exit(report.shell_code())

"""`edgefleet up` and `edgefleet down`: the whole system on this machine (docs/up.md)."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from edgefleet.cli.context import cli_context

if TYPE_CHECKING:
    from rich.status import Status

    from edgefleet.up import Summary

__all__ = ["down", "up"]

EXIT_INTERRUPTED = 130

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where everything lives (default: <EDGEFLEET_DATA_DIR>/up).", show_default=False
    ),
]


class _RichProgress:
    """Steps as lines on stderr: a spinner while one runs, then a check mark and what it did."""

    def __init__(self, err: Console, total: int) -> None:
        self.err, self.total = err, total
        self.n = 0
        self.title = ""
        self.t0 = time.monotonic()
        self.status: Status | None = None

    def step(self, title: str) -> None:
        self.close()
        self.n += 1
        self.title, self.t0 = title, time.monotonic()
        self.status = self.err.status(f"[{self.n}/{self.total}] {escape(title)}…")
        self.status.start()

    def done(self, detail: str) -> None:
        self.close()
        took = time.monotonic() - self.t0
        self.err.print(
            f"[green]✓[/] [{self.n}/{self.total}] [bold]{escape(self.title)}[/]: {escape(detail)} "
            f"[dim]({took:.1f}s)[/]",
            highlight=False,
            soft_wrap=True,
        )

    def note(self, text: str) -> None:
        self.err.print(f"    [dim]{escape(text)}[/]", highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _command() -> str:
    """How the user can call this edgefleet: ``edgefleet`` when that is it on PATH, else its path."""
    import shutil

    me = Path(sys.argv[0]).resolve()
    if me.name == "edgefleet":
        found = shutil.which("edgefleet")
        return "edgefleet" if found and Path(found).resolve() == me else shlex.quote(str(me))
    return f"{shlex.quote(sys.executable)} -m edgefleet"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def _print_summary(out: Console, s: Summary) -> None:
    p = out.print
    head = "edgefleet is already up" if s.already_running else "edgefleet is up"
    p(f"\n[bold green]{head}[/] [dim](data in {escape(s.data_dir)})[/]\n", highlight=False)
    rows = [
        ("dashboard", f"{s.dashboard}   sign in with the token: {s.token}"),
        ("device", f"{s.device['name']} ({s.device['id']}), {s.device['status']}"),
        ("rollout", f"{s.rollout['bundle']}: {s.rollout['phase']} in {len(s.rollout['waves'])} waves"),
        ("", s.rollout["note"]),
        ("endpoint", f"{s.endpoint['infer']}   gRPC {s.endpoint['grpc']}   ({s.endpoint['protocol']})"),
        ("input", f"{s.pipeline['source']}, {s.pipeline['max_fps']:g} frames/s through the endpoint (gRPC)"),
        ("", f"results: tail -f {s.pipeline['results']}   live preview: {s.pipeline['preview']}"),
    ]
    for key, url in s.metrics.items():
        rows.append(("metrics" if key == "server" else "", f"{key:<9} {url}"))
    rows.append(("logs", s.logs))
    for key, value in rows:
        p(f"  [bold]{key:<10}[/] {escape(value)}", highlight=False, soft_wrap=True)
    p(
        "\n[bold]Ask the model[/] (the request holds a page of text turned 90° clockwise, preprocessed; "
        "the outputs are the scores of 0°, 90°, 180°, 270°):",
        highlight=False,
        soft_wrap=True,
    )
    p(f"  {escape(s.curl)}", highlight=False, soft_wrap=True)
    p("\n[bold]Or with tritonclient[/] (gRPC):", highlight=False)
    p(f"  {escape(sys.executable)} - <<'EOF'", highlight=False)
    for line in s.tritonclient.splitlines():
        p(f"  {escape(line)}", highlight=False, soft_wrap=True)
    p("  EOF", highlight=False)
    p(
        f"\n[bold]Stop[/]: {escape(s.stop)}  (keeps the state; a second 'edgefleet up' reuses it, "
        "'--purge' removes it)",
        highlight=False,
        soft_wrap=True,
    )


def up(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port of the control plane and its dashboard (default: 8470, or the last one used).",
            min=1,
            max=65535,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Run everything here: control plane, device agent, a signed model rolled out in two waves, a
    pipeline feeding it. Prints the dashboard, the endpoint, the metrics and how to stop."""
    from edgefleet.up import UpOptions, bring_up

    c = cli_context(ctx)
    root = (data_dir or c.settings.data_dir / "up").absolute()
    progress = _RichProgress(c.err, total=7)
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        summary = bring_up(
            UpOptions(root=root, port=port, default_root=c.settings.data_dir / "up", command=_command()),
            progress,
        )
    except KeyboardInterrupt:
        progress.close()
        c.err.print("interrupted: stopped everything this run had started")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        progress.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if as_json:
        typer.echo(json.dumps(summary.to_json()))
    else:
        _print_summary(c.out, summary)


def down(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also remove the directory (state, keys, logs).")
    ] = False,
) -> None:
    """Stop everything `edgefleet up` started (processes, sandboxed workloads, their cgroups)."""
    from edgefleet.up import bring_down

    c = cli_context(ctx)
    root = (data_dir or c.settings.data_dir / "up").absolute()
    progress = _RichProgress(c.err, total=1)
    stopped = bring_down(root, purge=purge, progress=progress)
    if not stopped:
        c.out.print(f"nothing was running (data in {root})", highlight=False, soft_wrap=True)
    elif not purge:
        c.out.print(
            f"everything stopped; the state stays in {root} for the next 'edgefleet up'",
            highlight=False,
            soft_wrap=True,
        )
    if purge:
        c.out.print(f"everything stopped; removed {root}", highlight=False, soft_wrap=True)

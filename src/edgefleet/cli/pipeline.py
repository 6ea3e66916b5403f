"""`edgefleet pipeline`: run or check a stream pipeline spec (TOML or YAML)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli.context import cli_context

__all__ = ["pipeline_app"]

pipeline_app = typer.Typer(
    name="pipeline",
    help="Stream pipelines: sources → transforms → models → post-processing → sinks.",
    no_args_is_help=True,
)

SpecArg = Annotated[Path, typer.Argument(help="Pipeline spec file (.toml, .yaml or .yml).")]


@pipeline_app.command("check")
def check(ctx: typer.Context, spec: SpecArg) -> None:
    """Validate a spec without running it: every error names the key and its line."""
    from edgefleet.pipeline.specfile import load_spec

    c = cli_context(ctx)
    loaded = load_spec(spec)
    s = loaded.spec
    chain = " → ".join(
        f"{m.name} ({m.postprocess.kind}{'' if m.on == 'frame' else ' on ' + m.on})" for m in s.models
    )
    c.out.print(f"[green]ok[/]: {spec}")
    c.out.print(
        f"  policy {s.pipeline.policy}, sources {', '.join(f'{x.name} ({x.kind})' for x in s.sources)}"
    )
    c.out.print(f"  models {chain}")
    c.out.print(f"  sinks {', '.join(x.kind for x in s.sinks) or 'none'}")


@pipeline_app.command("run")
def run(
    ctx: typer.Context,
    spec: SpecArg,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many results.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run a pipeline until its sources end, a limit is reached, or Ctrl-C / SIGTERM."""
    from edgefleet.pipeline.runner import Pipeline
    from edgefleet.pipeline.specfile import load_spec

    c = cli_context(ctx)
    loaded = load_spec(spec)
    settings = loaded.spec.pipeline
    overrides: dict[str, object] = {}
    if max_frames is not None:
        overrides["max_frames"] = max_frames
    if duration is not None:
        overrides["duration_s"] = duration
    pipeline_spec = loaded.spec.model_copy(update={"pipeline": settings.model_copy(update=overrides)})
    pipeline = Pipeline(pipeline_spec, base_dir=loaded.base_dir)
    previous = signal.signal(signal.SIGTERM, lambda *_: pipeline.stop())
    try:
        summary = pipeline.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    p50 = f"{summary.latency_p50_s * 1000:.1f} ms" if summary.latency_p50_s is not None else "-"
    p99 = f"{summary.latency_p99_s * 1000:.1f} ms" if summary.latency_p99_s is not None else "-"
    drops = ", ".join(f"{k} {v}" for k, v in sorted(summary.dropped.items())) or "none"
    c.out.print(
        f"{settings.name}: {summary.frames_in} frames in, {summary.frames_out} out "
        f"in {summary.seconds:.1f}s; "
        f"dropped: {drops}; glass-to-result p50 {p50}, p99 {p99}"
    )

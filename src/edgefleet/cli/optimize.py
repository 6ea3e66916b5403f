"""``edgefleet optimize``: graph optimization, INT8 or FP16, checked against the original."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgefleet.cli.context import cli_context

__all__ = ["optimize"]


def _triple(text: str, option: str) -> tuple[float, float, float]:
    from edgefleet.runtime.optimize import OptimizeError

    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise OptimizeError(
            f"{option} takes three comma-separated numbers, got {text!r}", code="optimize.invalid_option"
        )
    return values[0], values[1], values[2]


def optimize(  # noqa: PLR0917 - typer maps each parameter to one CLI option
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="The .onnx model to optimize (never modified).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the optimized model.")],
    int8: Annotated[
        str | None, typer.Option("--int8", help="dynamic | static (static needs --calibration).")
    ] = None,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Convert to FP16 (providers with FP16 kernels only).")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="Folder of .npy/.npz samples or images; implies --int8 static."),
    ] = None,
    samples: Annotated[
        Path | None,
        typer.Option("--samples", help="Folder of sample inputs for the accuracy check (default: random)."),
    ] = None,
    sample_count: Annotated[
        int, typer.Option("--sample-count", help="Samples used for the accuracy check.")
    ] = 8,
    level: Annotated[
        str,
        typer.Option(
            "--level", help="Graph optimization level: basic | extended (portable) | all (this CPU)."
        ),
    ] = "extended",
    shape: Annotated[
        list[str] | None,
        typer.Option("--shape", help="NAME=1x3x640x640 for dynamic dimensions of random samples."),
    ] = None,
    provider: Annotated[str, typer.Option("--provider", help="Execution provider to check and time on.")] = (
        "CPUExecutionProvider"
    ),
    threads: Annotated[
        int | None, typer.Option("--threads", help="ORT intra-op threads; default: the CPU budget.")
    ] = None,
    image_mean: Annotated[
        str, typer.Option("--image-mean", help="Per-channel mean for image samples (0..1 scale).")
    ] = ("0,0,0"),
    image_std: Annotated[
        str, typer.Option("--image-std", help="Per-channel std for image samples.")
    ] = "1,1,1",
    latency_runs: Annotated[
        int, typer.Option("--latency-runs", min=5, help="Timed runs per model for the latency comparison.")
    ] = 30,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output (never the input).")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Write the report as JSON here.")
    ] = None,
) -> None:
    """Write an optimized copy of MODEL and report size, latency change and accuracy delta."""
    from edgefleet.runtime.loadgen.inputs import parse_shape_overrides
    from edgefleet.runtime.optimize import Mode, OptimizeError, OptimizePlan, optimize_model

    c = cli_context(ctx)
    if int8 not in (None, "dynamic", "static"):
        raise OptimizeError(f"--int8 {int8!r} is not dynamic or static", code="optimize.invalid_option")
    if level not in ("basic", "extended", "all"):
        raise OptimizeError(
            f"--level {level!r} is not basic, extended or all", code="optimize.invalid_option"
        )
    if calibration is not None and int8 is None:
        int8 = "static"
    if fp16 and int8 is not None:
        raise OptimizeError("choose one of --int8 and --fp16", code="optimize.invalid_option")
    mode: Mode = (
        "fp16" if fp16 else "int8-static" if int8 == "static" else "int8-dynamic" if int8 else "graph"
    )
    plan = OptimizePlan(
        model=model,
        output=output,
        mode=mode,
        level=level,  # type: ignore[arg-type]  # checked above
        calibration=calibration,
        samples=samples,
        sample_count=sample_count,
        shapes=parse_shape_overrides(shape or []),
        provider=provider,
        threads=threads,
        image_mean=_triple(image_mean, "--image-mean"),
        image_std=_triple(image_std, "--image-std"),
        latency_runs=latency_runs,
        force=force,
    )
    report = optimize_model(plan, progress=lambda msg: c.err.print(f"[dim]{msg}[/]"))

    lat = report["latency_ms"]
    acc = report["accuracy"]
    table = Table(title=f"{mode} · {model.name} → {output}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "size",
        f"{report['input']['size_bytes'] / 1e6:.2f} MB → {report['output']['size_bytes'] / 1e6:.2f} MB "
        f"(x{report['size_ratio']})",
    )
    table.add_row(
        f"p50 latency ({provider})",
        f"{lat['original_p50']:.3f} ms → {lat['optimized_p50']:.3f} ms (speed-up x{lat['speedup']})",
    )
    for name, diff in acc["outputs"].items():
        table.add_row(
            f"output {name}", f"max abs diff {diff['max_abs_diff']:.3g}, mean {diff['mean_abs_diff']:.3g}"
        )
    for name, share in acc["top1_agreement"].items():
        table.add_row(f"top-1 agreement {name}", f"{share:.1%} of {acc['samples']} samples ({acc['source']})")
    c.out.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")

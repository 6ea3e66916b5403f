"""``edgefleet bench``: measure a KServe v2 endpoint or raw ONNX Runtime under closed-loop load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefleet.cli.context import cli_context

__all__ = ["bench"]


def bench(  # noqa: PLR0917 - typer maps each parameter to one CLI option
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(help="An .onnx file for --protocol ort; the model's name on the endpoint otherwise."),
    ],
    protocol: Annotated[
        str, typer.Option("--protocol", "-p", help="ort | rest-binary | rest-json | grpc.")
    ] = "ort",
    url: Annotated[
        str | None, typer.Option("--url", "-u", help="HOST:PORT of the endpoint (REST port or gRPC port).")
    ] = None,
    model_version: Annotated[
        str, typer.Option("--model-version", help="Model version; empty = the server's default.")
    ] = "",
    concurrency: Annotated[
        str, typer.Option("--concurrency", "-c", help="Closed-loop clients; a comma list runs each in turn.")
    ] = "1",
    duration: Annotated[
        float, typer.Option("--duration", "-d", help="Measured seconds per concurrency.")
    ] = 10.0,
    warmup: Annotated[
        float, typer.Option("--warmup", help="Unmeasured seconds before each measurement.")
    ] = 2.0,
    batch: Annotated[
        int, typer.Option("--batch", "-b", help="Batch size (the first, dynamic dimension).")
    ] = 1,
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape", help="NAME=1x3x640x640: an input's full shape, for dynamic dimensions (repeatable)."
        ),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help=".npy (one input) or .npz keyed by input name.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random input data.")] = 0,
    timeout: Annotated[float, typer.Option("--timeout", help="Per-request timeout in seconds.")] = 30.0,
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", help="ONNX Runtime execution provider for ort (repeatable)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="ORT intra-op threads for ort; default: the CPU budget.")
    ] = None,
    spinning: Annotated[
        bool, typer.Option("--spinning/--no-spinning", help="ORT worker threads spin between runs (ort).")
    ] = True,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Write the full report as JSON here.")
    ] = None,
    backends: Annotated[
        str | None,
        typer.Option(
            "--backends",
            help="Compare in-process backends side by side on MODEL: a comma list of onnxruntime, "
            "openvino, litert, with ':provider' or ':delegate' (e.g. onnxruntime:cpu,openvino).",
        ),
    ] = None,
) -> None:
    """Closed-loop load: throughput and p50/p90/p99 per concurrency, errors by kind, machine and versions."""
    from edgefleet.runtime.loadgen.bench import BenchPlan, run_bench
    from edgefleet.runtime.loadgen.errors import BenchInputError
    from edgefleet.runtime.loadgen.inputs import parse_shape_overrides
    from edgefleet.runtime.loadgen.report import render_table
    from edgefleet.runtime.loadgen.targets import PROTOCOLS

    c = cli_context(ctx)
    if protocol not in PROTOCOLS:
        raise BenchInputError(
            f"--protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}",
            code="bench.invalid_option",
            allowed=list(PROTOCOLS),
        )
    try:
        levels = [int(x) for x in concurrency.split(",") if x.strip()]
    except ValueError:
        raise BenchInputError(
            f"--concurrency {concurrency!r} is not a comma list of integers", code="bench.invalid_concurrency"
        ) from None
    plan = BenchPlan(
        model=model,
        protocol=protocol,
        url=url,
        version=model_version,
        concurrency=levels,
        duration_s=duration,
        warmup_s=warmup,
        batch=batch,
        shapes=parse_shape_overrides(shape or []),
        input_file=input_file,
        seed=seed,
        timeout_s=timeout,
        providers=tuple(provider or ["CPUExecutionProvider"]),
        threads=threads,
        spinning=spinning,
    )

    def progress(result: object) -> None:
        c.err.print(f"[dim]concurrency {getattr(result, 'concurrency', '?')} done[/]")

    if backends:
        _compare_backends(c, plan, [b.strip() for b in backends.split(",") if b.strip()], json_out)
        return

    report, results = run_bench(plan, on_result=progress)
    target = report["target"]
    where = f"{target['url']} · {model}" if target.get("url") else Path(model).name
    shapes = ", ".join(f"{t['name']}{t['shape']} {t['datatype']}" for t in report["inputs"]["tensors"])
    c.out.print(render_table(f"{protocol} · {where} · {shapes}", results))
    machine = report["machine"]
    c.out.print(
        f"[dim]{machine['cpu_model']} · {machine['logical_cpus']} CPUs (budget {machine['cpu_budget']}) · "
        f"kernel {machine['kernel']} · " + " ".join(f"{k} {v}" for k, v in report["versions"].items()) + "[/]"
    )
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        c.err.print(f"report written to {json_out}")


def _compare_backends(c: Any, plan: Any, specs: list[str], json_out: Path | None) -> None:
    """Run ``plan`` once per backend in this process; one table each, then the ratios."""
    from rich.table import Table

    from edgefleet.runtime.bench_target import BackendTarget
    from edgefleet.runtime.loadgen.bench import run_bench
    from edgefleet.runtime.loadgen.report import render_table

    reports: dict[str, Any] = {}
    rows: list[tuple[str, float, float]] = []
    for spec in specs:

        def make(*_a: Any, spec: str = spec, **_k: Any) -> BackendTarget:
            return BackendTarget(Path(plan.model), spec, threads=plan.threads)

        report, results = run_bench(plan, make=make)
        reports[spec] = report
        t = report["target"]
        c.out.print(
            render_table(
                f"{spec} · {t['backend']} {t['backend_version']} · {', '.join(t['providers'])}", results
            )
        )
        first = results[0]
        rows.append((spec, first.latency_ms.p50 if first.latency_ms else float("nan"), first.throughput_rps))
    table = Table(title=f"side by side · {Path(plan.model).name} · concurrency {plan.concurrency[0]}")
    for column in ("backend", "p50 ms", "req/s", "speed vs first"):
        table.add_column(column, justify="right" if column != "backend" else "left")
    base = rows[0][2] or 1.0
    for spec, p50, rps in rows:
        table.add_row(spec, f"{p50:.2f}", f"{rps:.1f}", f"{rps / base:.2f}x")
    c.out.print(table)
    machine = next(iter(reports.values()))["machine"]
    c.out.print(
        f"[dim]{machine['cpu_model']} · {machine['logical_cpus']} CPUs (budget {machine['cpu_budget']})[/]"
    )
    if json_out is not None:
        json_out.write_text(json.dumps({"backends": reports}, indent=2) + "\n")
        c.err.print(f"report written to {json_out}")

"""`edgefleet serve`: serve a model file or a model repository over KServe v2 REST and gRPC."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefleet.cli.context import cli_context

if TYPE_CHECKING:
    from rich.console import Console

    from edgefleet.serving.app import Server

__all__ = ["serve"]


def serve(  # noqa: PLR0917 - typer maps each parameter to an option
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="A .onnx/.tflite file or a repository <repo>/<model>/<version>/model.onnx (or model.tflite)."
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="REST port (0 picks a free one, -1 turns REST off).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (0 picks a free one, -1 turns gRPC off).")] = 8001,
    providers: Annotated[
        str, typer.Option(help="Execution providers in priority order (cuda,openvino,cpu...) or 'auto'.")
    ] = "auto",
    pick_fastest: Annotated[
        bool,
        typer.Option(
            "--pick-fastest",
            help="Time each available provider (and backend: ONNX Runtime, OpenVINO) on the model; "
            "keep the fastest.",
        ),
    ] = False,
    backend: Annotated[
        str,
        typer.Option(help="onnxruntime, openvino, litert, or auto (by file type: .onnx, .tflite)."),
    ] = "auto",
    delegate: Annotated[
        list[str] | None,
        typer.Option(
            help="LiteRT external delegate by name (edgetpu, vx, teflon) or library path; repeatable."
        ),
    ] = None,
    allow_cpu_fallback: Annotated[
        bool,
        typer.Option("--allow-cpu-fallback", help="Run on the CPU when a LiteRT delegate cannot be loaded."),
    ] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="ONNX Runtime intra-op threads (default: the CPU budget).")
    ] = None,
    spinning: Annotated[
        bool | None,
        typer.Option(
            "--spinning/--no-spinning",
            help="Let ONNX Runtime threads spin between operators (default: on, off under a CPU quota).",
        ),
    ] = None,
    optimization: Annotated[
        str, typer.Option(help="Graph optimization level: disable, basic, extended, all.")
    ] = "all",
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted (413 above).")
    ] = 64 * 1024 * 1024,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Request threads per protocol.")] = 8,
    inline_below_ms: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="REST: run a lone request on the event loop when its model takes less than this (0: never).",
        ),
    ] = 10.0,
    model_name: Annotated[
        str | None, typer.Option(help="Model name when serving a single file (default: the file name).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Optimized-model and provider cache (default: <data dir>/cache/serve)."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the caches.")] = False,
    batching: Annotated[
        bool | None,
        typer.Option(
            "--batching/--no-batching",
            help="Dynamic batching for models whose config does not say (default: on for GPUs, off on CPU).",
        ),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Rows per batch when batching.")] = 8,
    max_queue_delay_ms: Annotated[
        float, typer.Option(min=0.0, help="Longest wait for a batch to fill, in milliseconds.")
    ] = 2.0,
    instances: Annotated[int, typer.Option(min=1, max=64, help="Concurrent runs per model.")] = 1,
    poll_seconds: Annotated[
        float | None, typer.Option(min=0.1, help="Rescan the repository this often and reload what changed.")
    ] = None,
) -> None:
    """Serve MODEL (a .onnx or .tflite file, or a repository) over KServe v2 REST and gRPC until interrupted.

    Models that fail to load are reported and the others serve; when none loads, it exits with
    the first model's error.
    """
    from edgefleet.errors import InvalidInputError
    from edgefleet.runtime.config import BatchingConfig, ModelConfig
    from edgefleet.runtime.session import SessionConfig
    from edgefleet.serving.app import ServeSettings, build_server

    c = cli_context(ctx)
    levels = ("disable", "basic", "extended", "all")
    if optimization not in levels:
        raise InvalidInputError(
            f"--optimization {optimization!r} is not one of {', '.join(levels)}", field="optimization"
        )
    session = SessionConfig(
        providers=tuple(p.strip() for p in providers.split(",") if p.strip()),
        pick_fastest=pick_fastest,
        intra_op_threads=threads,
        allow_spinning=spinning,
        optimization_level=optimization,  # type: ignore[arg-type]
        cache_dir=None if no_cache else (cache_dir or c.settings.data_dir / "cache" / "serve"),
        backend=backend,
        delegates=tuple(delegate or ()),
        allow_cpu_fallback=allow_cpu_fallback,
    )
    defaults = ModelConfig(
        instances=instances,
        dynamic_batching=BatchingConfig(
            enabled=batching, max_batch_size=max_batch_size, max_queue_delay_ms=max_queue_delay_ms
        ),
    )
    settings = ServeSettings(
        model_defaults=defaults,
        poll_seconds=poll_seconds,
        host=host,
        http_port=None if http_port < 0 else http_port,
        grpc_port=None if grpc_port < 0 else grpc_port,
        max_body_bytes=max_body_bytes,
        workers=workers,
        inline_below_ms=inline_below_ms,
        model_name=model_name,
        session=session,
    )
    server = build_server(model, settings)

    def on_signal(signum: int, _frame: Any) -> None:
        del signum
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    if server.load_errors and not any(r.state == "READY" for r in server.manager.index()):
        server.stop()
        raise next(iter(server.load_errors.values()))
    _summary(c.out, server)
    sys.stdout.flush()
    server.wait()


def _summary(out: Console, server: Server) -> None:
    index = server.manager.index()
    out.print(f"[bold]edgefleet serve[/] {server.manager.repository.root}", soft_wrap=True)
    for row in index:
        if row.state != "READY":
            out.print(
                f"  model [bold]{row.name}[/] v{row.version or '?'}: [red]{row.state}[/] {row.reason}",
                highlight=False,
                soft_wrap=True,
            )
            continue
        loaded = server.manager.loaded(row.name)[int(row.version)]
        s = loaded.session
        b = s.budget
        quota = "none" if b.quota is None else f"{b.quota:g}"
        how = "set by option; " if s.config.intra_op_threads else "= "
        out.print(
            f"  model [bold]{row.name}[/] v{row.version}: backend {s.backend}; "
            f"providers {', '.join(s.providers)} "
            f"({s.choice.reason}); threads {s.threads} ({how}CPU budget {b.effective:g} from {b.source}: "
            f"cpus {len(b.cpus)}, quota {quota}); spinning {'on' if s.config.allow_spinning else 'off'}; "
            f"optimized cache {s.optimized_cache}; batching {'on' if loaded.batching else 'off'}; "
            f"loaded in {s.load_seconds * 1000:.0f} ms",
            highlight=False,
            soft_wrap=True,
        )
    if server.http_url:
        out.print(
            f"  REST  {server.http_url}/v2   metrics {server.http_url}/metrics",
            highlight=False,
            soft_wrap=True,
        )
    if server.grpc_address:
        out.print(f"  gRPC  {server.grpc_address}", highlight=False, soft_wrap=True)
    out.print("ready; Ctrl-C stops", highlight=False, soft_wrap=True)

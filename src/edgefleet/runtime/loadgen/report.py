"""The bench report: machine, versions, what was measured, one row per concurrency; JSON and a table."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from edgefleet.runtime.loadgen.runner import RunResult

__all__ = ["REPORT_SCHEMA", "build_report", "machine_info", "render_table", "versions"]

REPORT_SCHEMA = "edgefleet.bench/1"

_PACKAGES = ("edgefleet", "onnxruntime", "onnx", "numpy", "tritonclient", "grpcio")


def machine_info(
    *,
    cpuinfo: Path = Path("/proc/cpuinfo"),
    meminfo: Path = Path("/proc/meminfo"),
    budget: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """CPU model, core counts (machine and this process's budget), memory, kernel, Python."""
    model = ""
    flags: set[str] = set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    except (OSError, ValueError, IndexError):
        pass
    if budget is None:
        from edgefleet.probe.cpu_budget import read_cpu_budget

        budget = read_cpu_budget
    cpu_budget = budget()
    isa = sorted(
        f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "amx_tile", "asimd", "neon", "sve"}
    )
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "cpu_isa": isa,
        "logical_cpus": os.cpu_count(),
        "cpu_budget": round(float(cpu_budget.effective), 3),
        "memory_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def versions(packages: Sequence[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the figures (absent ones are left out)."""
    found: dict[str, str] = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def build_report(
    *,
    target: dict[str, Any],
    inputs: dict[str, Any],
    load: dict[str, Any],
    results: Sequence[RunResult],
    machine: dict[str, Any],
    started_at: dt.datetime,
) -> dict[str, Any]:
    """The JSON document ``--json-out`` writes."""
    return {
        "schema": REPORT_SCHEMA,
        "started_at": started_at.isoformat(timespec="seconds"),
        "target": target,
        "inputs": inputs,
        "load": load,
        "results": [r.to_dict() for r in results],
        "machine": machine,
        "versions": versions(),
    }


def render_table(title: str, results: Sequence[RunResult]) -> Table:
    """One row per concurrency: throughput, percentiles, achieved concurrency, CPU, errors by kind."""
    table = Table(
        title=title,
        caption="latency in ms · busy = mean requests in flight · cpu = CPUs this process used "
        "(the client's own cost for remote targets) · requests and max in the JSON",
    )
    for name in ("conc", "req/s", "items/s", "p50", "p90", "p99", "busy", "cpu"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("errors")
    for r in results:
        lat = r.latency_ms
        errors = ", ".join(f"{k}={v}" for k, v in sorted(r.errors.items())) or "0"
        table.add_row(
            str(r.concurrency),
            f"{r.throughput_rps:.1f}",
            f"{r.items_per_s:.1f}",
            f"{lat.p50:.2f}" if lat else "-",
            f"{lat.p90:.2f}" if lat else "-",
            f"{lat.p99:.2f}" if lat else "-",
            f"{r.achieved_concurrency:.2f}",
            f"{r.process_cpu:.2f}" if r.process_cpu is not None else "-",
            errors,
        )
    return table

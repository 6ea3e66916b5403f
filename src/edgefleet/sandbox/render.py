"""A run report for people: a short rich table on the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from edgefleet.sandbox.report import RunReport

__all__ = ["render_report"]


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / (1 << 20):.1f} MiB"


def render_report(report: RunReport, console: Console) -> None:
    """Print how the run ended, what it used and what was not enforced."""
    ended = (
        f"exit code {report.exit_code}"
        if report.exit_code is not None
        else f"signal {report.signal_name or report.signal}"
    )
    table = Table(title=f"{report.name} ({report.backend})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    u = report.usage
    table.add_row("ended", f"{report.reason}, {ended}")
    table.add_row("OOM killed", "yes" if report.oom_killed else "no")
    table.add_row("limits hit", ", ".join(report.limits_hit) or "none")
    table.add_row("duration", f"{report.duration_s:.3f} s")
    table.add_row("CPU time", "-" if u.cpu_time_s is None else f"{u.cpu_time_s:.3f} s")
    if u.cpu_throttled_periods is not None:
        table.add_row(
            "throttled",
            f"{u.cpu_throttled_periods} of {u.cpu_periods} periods ({u.cpu_throttled_s or 0:.3f} s)",
        )
    table.add_row("memory peak", _mib(u.memory_peak))
    if u.pids_max_hits:
        table.add_row("pids limit hit", f"{u.pids_max_hits} times")
    for item in report.unenforced:
        table.add_row(f"not enforced: {item.limit}", item.reason)
    console.print(table)

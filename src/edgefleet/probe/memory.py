"""Memory: RAM, swap, huge pages and transparent huge pages."""

from __future__ import annotations

import re

from pydantic import Field

from edgefleet.probe.model import Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, read_kv, read_text

__all__ = ["MemoryInfo", "collect_memory"]

_KIB = 1024


class MemoryInfo(Section):
    """RAM and swap in bytes, from ``/proc/meminfo``."""

    total_bytes: int | None = Field(description="MemTotal.")
    available_bytes: int | None = Field(description="MemAvailable: what new work can use without swapping.")
    swap_total_bytes: int | None = Field(description="SwapTotal (0: no swap).")
    swap_free_bytes: int | None = Field(description="SwapFree.")
    hugepages_total: int | None = Field(description="HugePages_Total: reserved default-size huge pages.")
    hugepages_free: int | None = Field(description="HugePages_Free.")
    hugepage_size_bytes: int | None = Field(description="Hugepagesize: the default huge page size.")
    transparent_hugepages: str | None = Field(description="THP mode: always, madvise or never.")


def _kib(info: dict[str, str], key: str) -> int:
    if key not in info:
        raise Unreadable(f"/proc/meminfo has no {key}")
    return int(info[key].split()[0]) * (_KIB if info[key].endswith("kB") else 1)


def _thp(paths: ProbePaths) -> str:
    path = paths.sys / "kernel/mm/transparent_hugepage/enabled"
    text = read_text(path)
    match = re.search(r"\[(\w+)\]", text)
    if match is None:
        raise Unreadable(f"{path}: no [selected] mode in {text.strip()!r}")
    return match.group(1)


def collect_memory(paths: ProbePaths) -> MemoryInfo:
    """Read the memory section."""
    unknown = Unknowns()
    info = unknown.attempt("total_bytes", lambda: read_kv(paths.proc / "meminfo"))
    values: dict[str, int | None] = {}
    keys = {
        "total_bytes": "MemTotal",
        "available_bytes": "MemAvailable",
        "swap_total_bytes": "SwapTotal",
        "swap_free_bytes": "SwapFree",
        "hugepages_total": "HugePages_Total",
        "hugepages_free": "HugePages_Free",
        "hugepage_size_bytes": "Hugepagesize",
    }
    for name, key in keys.items():
        if info is None:
            unknown[name] = unknown["total_bytes"]
            values[name] = None
        else:
            values[name] = unknown.attempt(name, lambda key=key: _kib(info, key))  # type: ignore[misc]
    return MemoryInfo(
        **values,
        transparent_hugepages=unknown.attempt("transparent_hugepages", lambda: _thp(paths)),
        unknown=dict(unknown),
    )

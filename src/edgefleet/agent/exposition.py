"""Metric families written by hand: the Prometheus text format without prometheus_client.

The agent keeps its footprint small (docs/agent.md, "Footprint"), so its ``/metrics`` and its
remote-write pushes are built from these plain families instead of a client-library registry::

    fam = Family(metric_name("agent", "polls", counter=True), "counter", "Desired-state polls")
    fam.add(3)
    render([fam])   # "# HELP ...\\n# TYPE ...\\nedgefleet_agent_polls_total 3\\n"
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Family", "render", "samples"]

Kind = Literal["gauge", "counter"]


@dataclass
class Family:
    """One metric: its full name (counters end in ``_total``), type, help and samples."""

    name: str
    kind: Kind
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: object) -> Family:
        self.samples.append(({k: str(v) for k, v in labels.items()}, float(value)))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def render(families: Iterable[Family]) -> str:
    """The text exposition format 0.0.4 (HELP and TYPE for every family, one line per sample)."""
    out: list[str] = []
    for fam in families:
        out.append(f"# HELP {fam.name} {fam.help}")
        out.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                out.append(f"{fam.name}{{{inner}}} {_value(value)}")
            else:
                out.append(f"{fam.name} {_value(value)}")
    return "\n".join(out) + "\n"


def samples(
    families: Iterable[Family], extra_labels: Mapping[str, str] | None = None
) -> list[tuple[dict[str, str], float]]:
    """Every sample as ``(labels with __name__ and extra_labels, value)``, for remote-write."""
    extra = dict(extra_labels or {})
    return [
        ({**labels, **extra, "__name__": fam.name}, value)
        for fam in families
        for labels, value in fam.samples
    ]

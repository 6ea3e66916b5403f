"""Prometheus naming rules, enforced: ``edgefleet_<area>_<what>_<unit>`` in base units.

Counters end in ``_total``; units are plural base units (seconds, bytes, ratio, celsius...).
Every program builds its own :class:`~prometheus_client.CollectorRegistry` with
:func:`new_registry`: the process-global default registry is never used (it is the classic source
of "duplicated timeseries" when two apps or two tests share a process).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from edgefleet.errors import InvalidInputError

if TYPE_CHECKING:  # loaded on use: the device agent names metrics without prometheus_client
    from prometheus_client import CollectorRegistry

__all__ = ["BASE_UNITS", "PREFIX", "metric_name", "new_registry"]

PREFIX: Final = "edgefleet"
BASE_UNITS: Final = frozenset(
    {"seconds", "bytes", "ratio", "celsius", "watts", "joules", "volts", "amperes", "hertz", "meters", "info"}
)
_WORD: Final = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def metric_name(area: str, what: str, unit: str | None = None, *, counter: bool = False) -> str:
    """Build a metric name and check it against the project's rules.

    >>> metric_name("serve", "request_duration", "seconds")
    'edgefleet_serve_request_duration_seconds'
    >>> metric_name("serve", "requests", counter=True)
    'edgefleet_serve_requests_total'
    """
    for label, part in (("area", area), ("what", what)):
        if not _WORD.match(part):
            raise InvalidInputError(
                f"metric {label} {part!r} must be lower_snake_case", code="metrics.bad_name", field=label
            )
    if unit is not None and unit not in BASE_UNITS:
        raise InvalidInputError(
            f"metric unit {unit!r} is not a base unit; allowed: {', '.join(sorted(BASE_UNITS))}",
            code="metrics.bad_unit",
            field="unit",
        )
    if what.endswith("_total") or (unit and what.endswith("_" + unit)):
        raise InvalidInputError(
            f"metric what {what!r} must not carry its suffix; it is added",
            code="metrics.bad_name",
            field="what",
        )
    parts = [PREFIX, area, what]
    if unit is not None:
        parts.append(unit)
    if counter:
        parts.append("total")
    return "_".join(parts)


def new_registry() -> CollectorRegistry:
    """A fresh registry for one app or one test (never the global default)."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=True)

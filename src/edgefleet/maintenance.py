"""Maintenance windows: when a device may apply an update.

A deployment may carry ``{"windows": ["Mon-Fri 02:00-04:00", "Sat,Sun 00:00-06:00"],
"timezone": "Europe/Berlin"}``. Each window is ``DAYS HH:MM-HH:MM``:

- ``DAYS``: ``daily`` or ``*`` (every day), a day (``Mon``), a range (``Mon-Fri``, ``Fri-Mon`` wraps),
  or a comma list of days and ranges (``Mon,Wed,Fri-Sun``); English three-letter names, any case;
- the times are wall-clock times in ``timezone`` (an IANA name, default ``UTC``), ``24:00`` allowed as an
  end; an end at or before the start crosses midnight (``Sat 22:00-02:00`` ends Sunday 02:00), and the
  window belongs to the day it opens on.

The control plane validates windows when a deployment is created (a clear error naming the field and
the allowed forms); the agent evaluates them with :meth:`Schedule.is_open` and :meth:`Schedule.next_open`.
Standard library only: the device agent imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edgefleet.errors import InvalidInputError

__all__ = ["Schedule", "Window", "parse_schedule"]

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW: Final = re.compile(r"^\s*(\S{1,64})\s+([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*$")
_MAX_WINDOWS: Final = 32
_FORMS: Final = (
    "'DAYS HH:MM-HH:MM' with DAYS one of daily, *, Mon, Mon-Fri, Mon,Wed,Fri-Sun (e.g. 'Mon-Fri 02:00-04:00')"
)


class MaintenanceInputError(InvalidInputError):
    default_code = "maintenance.invalid"


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start_min: int
    end_min: int  # may be <= start_min: crosses midnight

    @property
    def length(self) -> timedelta:
        span = self.end_min - self.start_min
        return timedelta(minutes=span if span > 0 else span + 24 * 60)


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...]
    timezone: str
    source: tuple[str, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _openings(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """Windows that open from yesterday to eight days ahead, as aware (start, end) pairs."""
        local = now.astimezone(self.zone)
        out = []
        for offset in range(-1, 9):
            day = (local + timedelta(days=offset)).date()
            for w in self.windows:
                if day.weekday() not in w.days:
                    continue
                start = datetime(day.year, day.month, day.day, tzinfo=self.zone) + timedelta(
                    minutes=w.start_min
                )
                out.append((start, start + w.length))
        return sorted(out)

    def is_open(self, now: datetime) -> bool:
        return any(start <= now < end for start, end in self._openings(now))

    def current_end(self, now: datetime) -> datetime | None:
        ends = [end for start, end in self._openings(now) if start <= now < end]
        return max(ends) if ends else None

    def next_open(self, now: datetime) -> datetime | None:
        """When the next window opens (``now`` when one is open); None when no window ever opens."""
        if self.is_open(now):
            return now
        later = [start for start, _ in self._openings(now) if start > now]
        return later[0] if later else None

    def describe(self) -> str:
        return f"{', '.join(self.source)} ({self.timezone})"


def _days(text: str, field: str) -> frozenset[int]:
    t = text.lower()
    if t in {"daily", "*"}:
        return frozenset(range(7))
    out: set[int] = set()
    for part in t.split(","):
        a, sep, b = part.partition("-")
        if a not in DAYS or (sep and b not in DAYS):
            raise MaintenanceInputError(
                f"{field}: {text!r} is not a day list; use daily, *, a day (Mon), a range (Mon-Fri) "
                f"or a comma list (Mon,Wed,Fri-Sun) of {', '.join(d.title() for d in DAYS)}",
                field=field,
            )
        i = DAYS.index(a)
        j = DAYS.index(b) if sep else i
        while True:
            out.add(i)
            if i == j:
                break
            i = (i + 1) % 7
    return frozenset(out)


def _minutes(h: str, m: str, *, end: bool, field: str, text: str) -> int:
    hh, mm = int(h), int(m)
    if mm > 59 or hh > 24 or (hh == 24 and (mm or not end)):
        raise MaintenanceInputError(
            f"{field}: {text!r}: {h}:{m} is not a time of day (00:00-23:59, 24:00 as an end)", field=field
        )
    return hh * 60 + mm


def parse_schedule(spec: Any, field: str = "maintenance") -> Schedule:
    """A :class:`Schedule` from ``{"windows": [...], "timezone": "..."}``; a clear error otherwise."""
    if not isinstance(spec, dict):
        raise MaintenanceInputError(f"{field}: an object with windows and timezone", field=field)
    unknown = sorted(set(spec) - {"windows", "timezone"})
    if unknown:
        raise MaintenanceInputError(
            f"{field}.{unknown[0]}: unknown key; allowed: windows, timezone", field=f"{field}.{unknown[0]}"
        )
    tz = spec.get("timezone", "UTC")
    if not isinstance(tz, str) or not tz:
        raise MaintenanceInputError(f"{field}.timezone: an IANA time zone name", field=f"{field}.timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MaintenanceInputError(
            f"{field}.timezone: {tz[:64]!r} is not a known IANA time zone (e.g. UTC, Europe/Berlin)",
            field=f"{field}.timezone",
        ) from exc
    raw = spec.get("windows")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw or len(raw) > _MAX_WINDOWS:
        raise MaintenanceInputError(
            f"{field}.windows: a list of 1 to {_MAX_WINDOWS} windows, each {_FORMS}", field=f"{field}.windows"
        )
    windows = []
    for i, text in enumerate(raw):
        where = f"{field}.windows[{i}]"
        m = _WINDOW.match(text) if isinstance(text, str) else None
        if m is None:
            raise MaintenanceInputError(f"{where}: {repr(text)[:80]} is not {_FORMS}", field=where)
        start = _minutes(m[2], m[3], end=False, field=where, text=text)
        stop = _minutes(m[4], m[5], end=True, field=where, text=text)
        if start == stop:
            raise MaintenanceInputError(f"{where}: {text!r} opens and closes at the same time", field=where)
        windows.append(Window(_days(m[1], where), start, stop))
    return Schedule(tuple(windows), tz, tuple(str(t) for t in raw))


def utcnow() -> datetime:
    return datetime.now(UTC)

"""`edgefleet device logs --since`: durations back from now or an ISO 8601 time; anything else is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edgefleet.cli.device import parse_since
from edgefleet.errors import InvalidInputError

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_durations_count_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - back


def test_iso_times_are_taken_as_given_and_naive_ones_as_utc() -> None:
    assert parse_since("2026-11-28T10:00:00+02:00", NOW) == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert parse_since("2026-11-28T10:00:00", NOW) == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert parse_since("2026-11-28T10:00:00Z", NOW) == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "10", "5 minutes", "-1h", "2026-13-01"])
def test_anything_else_is_refused_with_the_forms_allowed(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"--since: .* is neither a duration \(90s, 10m") as e:
        parse_since(text, NOW)
    assert e.value.fields["field"] == "since"

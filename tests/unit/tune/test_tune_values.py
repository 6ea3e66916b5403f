"""tuned's value modifiers and comparison rules."""

from __future__ import annotations

import pytest

from edgefleet.tuning.values import format_cpulist, parse_cpulist, parse_target, values_match


@pytest.mark.unit
@pytest.mark.parametrize(
    ("current", "wanted", "ok"),
    [
        ("10", "10", True),
        ("010", "10", True),  # integers
        ("00000000,00000003", "3", True),  # hex with leading zeros and commas (cpumasks)
        ("f", "0000000f", True),
        ("e", "f", False),
        ("performance", "performance", True),
        ("powersave", "schedutil|ondemand|powersave", True),  # any alternative
        ("userspace", "schedutil|ondemand|powersave", False),
        ("32768\t60999", "32768 60999", True),  # whitespace-normalised strings
        ("11", "10", False),
    ],
)
def test_values_match_follows_tuned(current: str, wanted: str, ok: bool) -> None:
    """Integer, then hex with leading zeros stripped, then string, then any alternative."""
    assert values_match(current, wanted) is ok


@pytest.mark.unit
def test_only_raise_and_only_lower() -> None:
    """'>N' changes only a lower current value, '<N' only a higher one."""
    raise_ = parse_target(">2048")
    assert raise_.modifier == ">"
    assert raise_.wants_change("128")
    assert not raise_.wants_change("4096")
    assert raise_.accepts("4096")
    lower = parse_target("<5")
    assert lower.wants_change("10")
    assert not lower.wants_change("3")


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["", ">abc", "<", "a||b", "x\ny"])
def test_malformed_values_are_rejected(raw: str) -> None:
    """A malformed value raises ValueError with a reason."""
    with pytest.raises(ValueError, match=r".+"):
        parse_target(raw)


@pytest.mark.unit
def test_cpulists_round_trip() -> None:
    """The kernel's CPU list format parses and formats back."""
    assert parse_cpulist("0-2,5") == {0, 1, 2, 5}
    assert format_cpulist(frozenset({0, 1, 2, 5, 7, 8})) == "0-2,5,7-8"
    with pytest.raises(ValueError, match="CPU list"):
        parse_cpulist("1-x")

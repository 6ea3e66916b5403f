"""Nearest-rank percentiles and latency summaries."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.runtime.loadgen.stats import percentile, summarize


@pytest.mark.unit
def test_nearest_rank_on_one_to_hundred() -> None:
    """On 1..100 the q-th nearest-rank percentile is q itself."""
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0.5) == 1


@pytest.mark.unit
def test_small_samples_round_up() -> None:
    """With 4 samples p50 is the 2nd and p90/p99 the 4th (rank = ceil(q/100 * n))."""
    values = [10, 20, 30, 40]
    assert percentile(values, 50) == 20
    assert percentile(values, 90) == 40
    assert percentile(values, 99) == 40
    assert percentile([7], 99) == 7


@pytest.mark.unit
def test_percentile_rejects_empty_and_out_of_range() -> None:
    """No data or q outside (0, 100] is an error, never a made-up number."""
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="percentile"):
        percentile([1], 0)
    with pytest.raises(ValueError, match="percentile"):
        percentile([1], 101)


@pytest.mark.unit
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=200))
def test_percentiles_are_observed_and_ordered(values: list[int]) -> None:
    """Each percentile is a value that was observed, and p50 <= p90 <= p99 <= max."""
    ordered = sorted(values)
    p50, p90, p99 = (percentile(ordered, q) for q in (50, 90, 99))
    assert {p50, p90, p99} <= set(values)
    assert ordered[0] <= p50 <= p90 <= p99 <= ordered[-1]


@pytest.mark.unit
def test_summary_in_milliseconds() -> None:
    """Nanoseconds in, milliseconds out; count, min, mean and max are exact."""
    ns = [1_000_000, 2_000_000, 3_000_000, 4_000_000]
    s = summarize(ns)
    assert s is not None
    assert (s.count, s.min, s.max, s.mean) == (4, 1.0, 4.0, 2.5)
    assert (s.p50, s.p90, s.p99) == (2.0, 4.0, 4.0)
    assert summarize([]) is None

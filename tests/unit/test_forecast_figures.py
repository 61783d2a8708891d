"""The forecast's spread of contacts per customer: the most within any window, and the
nearest-rank percentiles over customers, against the definitions written out plainly."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from aftersale.forecast_figures import most_within, spread

START = datetime(2026, 1, 1, tzinfo=UTC)
hours = st.lists(st.integers(min_value=0, max_value=24 * 60), max_size=40)


@given(hours, st.integers(min_value=1, max_value=24 * 40))
def test_most_within_is_the_busiest_window(offsets: list[int], width: int) -> None:
    times = sorted(START + timedelta(hours=h) for h in offsets)
    window = timedelta(hours=width)
    brute = max(
        (sum(1 for t in times if first <= t < first + window) for first in times), default=0
    )
    assert most_within(times, window) == brute


def test_a_window_is_half_open() -> None:
    times = [START, START + timedelta(days=7)]
    assert most_within(times, timedelta(days=7)) == 1
    assert most_within(times, timedelta(days=7, seconds=1)) == 2


@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=300))
def test_spread_uses_nearest_rank(values: list[int]) -> None:
    ordered = sorted(values)
    shown = spread(values)
    for name, p in (("median", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert shown[name] == ordered[math.ceil(p * len(ordered)) - 1]
    assert shown["max"] == max(values)
    assert shown["at_max"] == values.count(max(values))


def test_no_customers_no_spread() -> None:
    assert spread([]) == {"median": 0, "p90": 0, "p99": 0, "max": 0, "at_max": 0}

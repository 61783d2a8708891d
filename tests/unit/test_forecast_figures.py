"""The forecast's spread of contacts per customer: the most within any window, and the
nearest-rank percentiles over customers, against the definitions written out plainly;
and the tallies of a forecast in several processes, added up."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from aftersale.forecast_figures import Tally, _add_customer, most_within, spread
from aftersale.stats import Prices

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


# A customer's forecast: their sends (hours from START, journey, channel, SMS segments),
# their messages by status, and the caps that held them (reason, then what became of it).
customer_forecasts = st.lists(
    st.tuples(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=24 * 90),
                st.sampled_from(["thanks", "inspection"]),
                st.sampled_from(["email", "sms"]),
                st.integers(min_value=1, max_value=3),
            ),
            max_size=12,
        ),
        st.lists(st.sampled_from(["sent", "skipped", "planned", "cancelled"]), max_size=8),
        st.lists(
            st.tuples(
                st.sampled_from(["frequency_cap:any:3/14d", "frequency_cap:sms:1/7d"]),
                st.sampled_from(["then_sent", "then_skipped", "still_planned"]),
                st.integers(min_value=0, max_value=24 * 90),
            ),
            max_size=3,
        ),
        st.sampled_from([None, "unsatisfied", "fatigue"]),
    ),
    max_size=25,
)


def _feed(found: Tally, customers: list) -> Tally:
    """What reading these customers' forecast adds to ``found``, as ``tally`` counts it."""
    for sends, statuses, held, rests in customers:
        times = []
        for hour, journey, channel, segments in sorted(sends):
            at = START + timedelta(hours=hour)
            times.append(at)
            found.row(journey, channel).sent += 1
            found.week(at).messages[(journey, channel)] += 1
            if channel == "sms":
                found.segments += segments
            else:
                found.emails += 1
        if times:
            _add_customer(times, found.peaks, found.week)
        found.statuses.update(statuses)
        for reason, fate, hour in held:
            found.caps[reason]["deferrals"] += 1
            found.caps[reason]["messages"] += 1
            found.caps[reason][fate] += 1
            found.week(START + timedelta(hours=hour)).cap_deferred += 1
            if fate == "then_skipped":
                found.week(START + timedelta(hours=hour + 30)).cap_dropped += 1
        if rests:
            found.resting[rests] += 1
    return found


@given(customer_forecasts, st.data())
def test_tallies_of_a_split_add_up_to_the_whole(customers: list, data: st.DataObject) -> None:
    """The forecast in several processes: each tallies its own customers; added up, every
    figure (the spreads over customers too) is what one tally of everyone reads."""
    prices = Prices(email=Decimal("0.001"), sms_segment=Decimal("0.07"))
    n = len(customers)
    owner = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    parts = [
        _feed(Tally(), [c for c, o in zip(customers, owner, strict=True) if o == p])
        for p in range(3)
    ]
    added = Tally()
    for part in parts:
        added.add(part)

    whole = _feed(Tally(), customers).figures(prices)
    shown = added.figures(prices)
    assert shown.as_json() == whole.as_json()
    assert shown.weeks == whole.weeks

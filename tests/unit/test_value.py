"""Customer value: the segment scoring and its settings."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.value import SEGMENTS, Money, SegmentRules, segment_of

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("orders", "revenue", "days_ago", "segment"),
    [
        (0, "0", None, "new"),
        (1, "49", 10, "new"),
        (2, "300", 30, "loyal"),
        (4, "999.99", 30, "loyal"),
        (4, "1000", 30, "champion"),
        (9, "9000", 181, "at_risk"),
        (1, "49", 181, "at_risk"),
        (9, "9000", 366, "lost"),
    ],
)
def test_segments_follow_recency_then_frequency_and_revenue(orders, revenue, days_ago, segment):
    last = None if days_ago is None else NOW - timedelta(days=days_ago)
    assert segment_of(orders, Decimal(revenue), last, NOW) == segment


@given(orders=st.integers(0, 50), revenue=st.integers(0, 10_000), days=st.integers(0, 800))
def test_more_orders_never_make_a_recent_customer_less_valuable(orders, revenue, days):
    rank = {"new": 0, "loyal": 1, "champion": 2, "at_risk": -1, "lost": -2}
    last = NOW - timedelta(days=days)
    before = segment_of(orders, Decimal(revenue), last, NOW)
    after = segment_of(orders + 1, Decimal(revenue + 100), last, NOW)
    assert before in SEGMENTS and rank[after] >= rank[before]


def test_revenue_compares_as_a_number_and_keeps_its_currency() -> None:
    money = Money("1249.50", "EUR")
    assert money > 1000 and money.currency == "EUR"
    copied = pickle.loads(pickle.dumps(money))
    assert copied == money and copied.currency == "EUR"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"lost_after": 0}, "segments.lost_after: must be a whole number >= 1"),
        ({"champion_revenue": "lots"}, "segments.champion_revenue: must be an amount"),
        ({"at_risk_after": 400}, "segments.at_risk_after: must be less than lost_after"),
        ({"vip": 1}, "segments.vip: unknown setting"),
    ],
)
def test_bad_segment_settings_name_their_key(config, message) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentRules.from_config(config)
    assert SegmentRules.from_config({"champion_revenue": "2500.50"}).champion_revenue == Decimal(
        "2500.50"
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("audience: \"customer.segment == 'champion'\"", True),
        ('wait: "{{ 30 if customer.orders > 2 else 90 }}d"', True),
        ("audience: customer.complaints.open == 0", True),
        ("audience: customer.attributes.city == 'Berlin'", False),
        ("trigger: {event: complaint_resolved}", False),  # complaint, not complaints
        ("id: preorders_segmented", False),  # the names as parts of other words
    ],
)
def test_a_journey_reads_value_only_when_its_text_names_a_figure(text: str, named: bool) -> None:
    from campaigns.value import names_value

    assert names_value(text) is named

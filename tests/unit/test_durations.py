"""Durations as marketers write them, and months that follow the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.durations import Duration, DurationError, parse_duration, parse_span
from campaigns.journeys import parse_journey
from campaigns.timetable import PlanCache
from tests.broken_journeys import BASE


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30m", Duration(delta=timedelta(minutes=30))),
        ("2h", Duration(delta=timedelta(hours=2))),
        ("14 days", Duration(delta=timedelta(days=14))),
        ("1 day", Duration(delta=timedelta(days=1))),
        ("2 weeks", Duration(delta=timedelta(weeks=2))),
        ("2W", Duration(delta=timedelta(weeks=2))),
        ("-60d", Duration(delta=timedelta(days=-60))),
        ("- 60 days", Duration(delta=timedelta(days=-60))),
        ("2 months", Duration(months=2)),
        ("1y", Duration(months=12)),
        ("12 months", Duration(months=12)),
        ("-2 years", Duration(months=-24)),
    ],
)
def test_spellings(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("14", "14 is a bare number: add a unit, e.g. 14d (14 days)"),
        ("14 dayz", "'dayz' in '14 dayz' is not a unit"),
        ("5M", "'M' in '5M' is not a unit"),  # minutes or months? neither: say which
        ("soon", "'soon' is not a duration; write e.g. 30m, 2h, 14d, 14 days, 2 weeks"),
        ("1.5d", "not a duration"),
    ],
)
def test_what_is_no_duration_says_what_would_be(text, said):
    with pytest.raises(DurationError) as caught:
        parse_span(text)
    assert said in str(caught.value)


def test_months_have_no_fixed_length():
    with pytest.raises(DurationError, match="no fixed length"):
        parse_duration("1 month")
    assert parse_duration("2w") == timedelta(days=14)


@pytest.mark.parametrize(
    ("start", "span", "end"),
    [
        (datetime(2026, 1, 31, 10, tzinfo=UTC), "1 month", datetime(2026, 2, 28, 10, tzinfo=UTC)),
        (datetime(2028, 2, 29, 10, tzinfo=UTC), "1y", datetime(2029, 2, 28, 10, tzinfo=UTC)),
        (datetime(2026, 5, 31, 10, tzinfo=UTC), "-3 months", datetime(2026, 2, 28, 10, tzinfo=UTC)),
        (datetime(2026, 3, 15, 10, tzinfo=UTC), "12 months", datetime(2027, 3, 15, 10, tzinfo=UTC)),
    ],
)
def test_months_follow_the_calendar_from_the_anchor(start, span, end):
    assert parse_span(span).after(start) == end


MONTHLY = BASE.format(id="monthly").replace("wait: -60d", "wait: -2 months")


def test_a_journey_waits_calendar_months_for_every_enrolment_alike():
    journey, problems = parse_journey(MONTHLY, "monthly.yaml")
    assert problems == []
    cache = PlanCache()
    dues = []
    for bought in (datetime(2026, 1, 31, 9, tzinfo=UTC), datetime(2026, 3, 31, 9, tzinfo=UTC)):
        item = {"warranty_end": bought.replace(year=2028)}
        plan = cache.timetable(journey, bought, {"purchased_at": bought}, item, {})
        [(step, occurrence, due, _)] = plan.entries
        dues.append(bought + due)
    # two months before 31 Jan 2028 is 30 Nov 2027; before 31 Mar 2028, 31 Jan 2028
    assert dues == [datetime(2027, 11, 30, 9, tzinfo=UTC), datetime(2028, 1, 31, 9, tzinfo=UTC)]


def test_a_stored_definition_keeps_its_bare_number():
    from campaigns.journeys import Journey

    journey, _ = parse_journey(BASE.format(id="old"), "old.yaml")
    stored = journey.model_dump(mode="json", by_alias=True)
    stored["steps"][0]["wait"] = "14"
    assert Journey.model_validate(stored, context={"stored": True}).steps[0].wait == "14"
    with pytest.raises(ValueError, match="bare number"):
        Journey.model_validate(stored)

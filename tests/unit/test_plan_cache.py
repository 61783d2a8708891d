"""Timetables shifted from a cached one equal timetables planned from scratch.

The planner keeps each journey's timetable relative to the trigger, keyed by what it depends
on. These properties plan random enrolments both ways, with one cache shared across all
examples, so that most of them are answered by shifting a timetable planned for another
purchase at another time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.engine import PlanCache, add_months, plan_steps, to_micros
from campaigns.journeys import Journey, load_journeys

BUILTIN = {loaded.journey.id: loaded.journey for loaded in load_journeys(None)[0]}

# Every way a step can wait: from the trigger, the purchase, the previous step and the
# warranty's end; literal and computed durations, one that fails for some items, repeats
# bounded by count and by time, and both kinds of expiry.
EVERY_ANCHOR = Journey.model_validate(
    {
        "id": "every_anchor",
        "trigger": {"event": "purchase", "for_each": "item"},
        "steps": [
            {"id": "soon", "wait": "2h", "send": {"channel": "email", "template": "t"}},
            {"id": "computed", "wait": "item.inspection_interval_days or 45", "from": "purchase",
             "repeat": {"every": "item.inspection_interval_days or 45", "within": "200d"},
             "send": {"channel": "email", "template": "t", "expires_after": "10d"}},
            {"id": "after", "wait": "3d",
             "repeat": {"every": "item.inspection_interval_days or 45", "times": 3},
             "send": {"channel": "sms", "template": "t", "expires_after": "1d"}},
            {"id": "fails", "wait": "item.lifetime_days", "from": "trigger",
             "send": {"channel": "email", "template": "t"}},
            {"id": "follows_failure", "wait": "1d",
             "send": {"channel": "email", "template": "t"}},
            {"id": "before_end", "wait": "-30d", "from": "warranty_end",
             "send": {"channel": "email", "template": "t", "expires_at": "warranty_end"}},
            {"id": "past_end", "wait": "5d", "from": "warranty_end",
             "send": {"channel": "sms", "template": "t", "expires_at": "warranty_end"}},
        ],
    }
)  # fmt: skip
JOURNEYS = [*BUILTIN.values(), EVERY_ANCHOR]
SHARED = PlanCache()

moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2032, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)


def enrolment(trigger_at, purchased_before, months, interval, lifetime):
    purchased_at = trigger_at - purchased_before
    item = {
        "position": 0,
        "warranty_months": months,
        "inspection_interval_days": interval,
        "warranty_end": add_months(purchased_at, months) if months else None,
    }
    if lifetime is not None:
        item["lifetime_days"] = lifetime
    order = {"id": "o1", "purchased_at": purchased_at, "items": [item]}
    return order, item, {"item": item, "order": order, "customer": {}, "event": {}}


def shifted(plan, trigger_at):
    return [
        (step, k, trigger_at + due, None if expires is None else trigger_at + expires)
        for step, k, due, expires in plan.entries
    ]


@settings(max_examples=400, deadline=None)
@given(
    journey=st.sampled_from(JOURNEYS),
    trigger_at=moments,
    purchased_before=st.sampled_from([timedelta(0), timedelta(days=3), timedelta(hours=7)]),
    months=st.sampled_from([None, 0, 1, 12, 24, 25]),
    interval=st.sampled_from([None, 30, 90, 180]),
    lifetime=st.sampled_from([None, 100, 400]),
)
def test_a_cached_timetable_shifted_to_the_trigger_is_the_timetable_planned_anew(
    journey, trigger_at, purchased_before, months, interval, lifetime
):
    order, item, ctx = enrolment(trigger_at, purchased_before, months, interval, lifetime)
    expected = sorted(plan_steps(journey, trigger_at, order, item, ctx), key=lambda p: p[2])

    plan = SHARED.timetable(journey, trigger_at, order, item, ctx)

    assert shifted(plan, trigger_at) == expected
    base = to_micros(trigger_at)
    assert [
        (step_id, k, base + due, None if expires is None else base + expires)
        for step_id, k, due, expires in plan.micros
    ] == [
        (step.id, k, to_micros(due), None if expires is None else to_micros(expires))
        for step, k, due, expires in expected
    ]


def test_purchases_of_one_shape_share_a_timetable_and_other_shapes_do_not():
    cache = PlanCache()
    warranty = BUILTIN["extended_warranty"]
    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)
    plans = []
    for trigger_at, months in [(monday, 24), (monday + timedelta(hours=5), 24), (monday, 12)]:
        order, item, ctx = enrolment(trigger_at, timedelta(0), months, None, None)
        plans.append(cache.timetable(warranty, trigger_at, order, item, ctx))

    assert plans[0] is plans[1]
    assert plans[2] is not plans[0]
    assert [step.id for step, *_ in plans[0].entries] == ["offer_email", "reminder_sms"]
    # 24 months from 2 March 2026 are 731 days: the offer is due 60 days before.
    assert plans[0].entries[0][2] == timedelta(days=731 - 60)


def test_the_cache_stays_within_its_bound_and_tells_journeys_apart():
    cache = PlanCache(kept=3)
    start = datetime(2026, 1, 31, tzinfo=UTC)
    for day in range(40):  # months from each day of the year: warranty ends at many offsets
        trigger_at = start + timedelta(days=day * 9)
        order, item, ctx = enrolment(trigger_at, timedelta(0), 1, 90, None)
        for journey in JOURNEYS:
            cache.timetable(journey, trigger_at, order, item, ctx)
            assert len(cache._plans) <= 3
    order, item, ctx = enrolment(start, timedelta(0), 24, 90, None)
    thank_you = BUILTIN["thank_you"]
    assert cache.timetable(thank_you, start, order, item, ctx).journey is thank_you
    assert cache.timetable(EVERY_ANCHOR, start, order, item, ctx).journey is EVERY_ANCHOR

"""A step's send window: parsed from plain text, applied in the recipient's local time on
top of the policy, and never left: nothing is allowed, or deferred to, outside it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.journeys import parse_journey
from campaigns.policy import (
    Allow,
    Candidate,
    ContactPolicy,
    Defer,
    PolicyRules,
    QuietHours,
    Recipient,
    Skip,
)
from campaigns.timewindows import SendWindow
from tests.broken_journeys import BASE

BERLIN = ZoneInfo("Europe/Berlin")
RULES = PolicyRules(default_timezone="Europe/Berlin", quiet_hours=QuietHours(time(20), time(9)))
ANNA = Recipient("Europe/Berlin", {"email": True, "sms": True}, {})
WEEKDAYS_10_18 = SendWindow.parse("10:00-18:00 mon-fri")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A Berlin wall time in March 2026 (the 2nd is a Monday), in UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "hours", "days"),
    [
        ("10:00-18:00 mon-fri", "10:00-18:00", {0, 1, 2, 3, 4}),
        ("mon,wed", None, {0, 2}),
        ("fri-mon", None, {4, 5, 6, 0}),
        ("22:00-02:00", "22:00-02:00", set(range(7))),
        ("09:30-12:00 Saturday", "09:30-12:00", {5}),
    ],
)
def test_windows_read_as_written(text, hours, days):
    window = SendWindow.parse(text)
    assert (str(window.hours) if window.hours else None) == hours
    assert window.days == frozenset(days)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("25:00-18:00", "not a clock time (HH:MM): '25:00'"),
        ("10:00-18:00 mon-fry", "not a weekday: 'fry'"),
        ("10:00-10:00", "opens and closes at the same time"),
        ("10-18", "not a weekday: '10'"),
        ("", "a send window looks like"),
    ],
)
def test_bad_windows_are_refused_in_plain_words(text, said):
    with pytest.raises(ValueError, match=None) as caught:
        SendWindow.parse(text)
    assert said in str(caught.value)


def test_a_bad_window_in_a_journey_names_its_line():
    text = BASE.format(id="sms").replace(
        "      expires_at: warranty_end", '      expires_at: warranty_end\n    send_window: "9-17"'
    )
    journey, problems = parse_journey(text, "sms.yaml")
    assert journey is None
    assert [str(p) for p in problems] == [
        "sms.yaml:18: error: steps.0.send_window: not a weekday: '9' "
        "(use mon, tue, wed, thu, fri, sat, sun)"
    ]


def test_a_window_leaves_older_journey_versions_alone():
    plain = BASE.format(id="plain")
    windowed = plain.replace(
        "      expires_at: warranty_end",
        '      expires_at: warranty_end\n    send_window: "mon-fri"',
    )
    first, _ = parse_journey(plain, "a.yaml")
    second, _ = parse_journey(windowed, "a.yaml")
    assert first.steps[0].window is None
    assert second.steps[0].window == SendWindow.parse("mon-fri")
    assert first.digest() != second.digest()
    assert "send_window" not in first.model_dump(exclude_none=True)["steps"][0]


def decide(now: datetime, window: SendWindow | None = WEEKDAYS_10_18, **kwargs):
    candidate = Candidate("sms", "marketing", now, send_window=window, **kwargs)
    return ContactPolicy(RULES).decide(candidate, ANNA, [], now)


def test_inside_the_window_a_message_goes():
    assert decide(at(3, 11)) == Allow()


def test_before_the_window_opens_it_waits_for_the_opening():
    # 09:30 is past the quiet hours but before the window.
    assert decide(at(3, 9, 30)) == Defer(at(3, 10), "send_window")


def test_after_closing_it_waits_for_the_next_weekday():
    assert decide(at(6, 18, 30)) == Defer(at(9, 10), "send_window")  # Friday -> Monday


def test_quiet_hours_still_hold_inside_a_wider_window():
    assert decide(at(3, 7), SendWindow.parse("06:00-22:00")) == Defer(at(3, 9), "quiet_hours")


def test_a_window_that_closes_past_the_expiry_skips_the_message():
    assert decide(at(6, 19), expires_at=at(7, 12)) == Skip("send_window")


def test_transactional_messages_keep_their_window_too():
    candidate = Candidate("sms", "transactional", at(7, 12), send_window=WEEKDAYS_10_18)
    assert ContactPolicy(RULES).decide(candidate, ANNA, [], at(7, 12)) == Defer(
        at(9, 10), "send_window"
    )


# --- property: nothing is allowed, or deferred to, outside the window -----------------------

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", None]
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows = st.builds(
    lambda start, end, days: SendWindow(
        QuietHours(start, end) if start != end else None, frozenset(days)
    ),
    clock,
    clock,
    st.sets(st.integers(0, 6), min_size=1),
)
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
quiet = st.one_of(st.none(), st.builds(QuietHours, clock, clock))


def inside(window: SendWindow, moment: datetime, zone: str | None) -> bool:
    """The oracle: the window read straight off the local wall clock."""
    local = moment.astimezone(ZoneInfo(zone or "Europe/Berlin"))
    if local.weekday() not in window.days:
        return False
    if window.hours is None:
        return True
    start, end, wall = window.hours.start, window.hours.end, local.time()
    return (wall >= start or wall < end) if start > end else start <= wall < end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    window=windows,
    now=instants,
    zone=st.sampled_from(ZONES),
    hours=quiet,
    category=st.sampled_from(["marketing", "transactional"]),
)
def test_nothing_is_sent_outside_a_steps_window(window, now, zone, hours, category):
    rules = PolicyRules(default_timezone="Europe/Berlin", quiet_hours=hours)
    policy = ContactPolicy(rules)
    recipient = Recipient(zone, {"email": True, "sms": True}, {})
    candidate = Candidate("email", category, now, send_window=window)
    decision = policy.decide(candidate, recipient, [], now)
    if isinstance(decision, Allow):
        assert inside(window, now, zone)
        return
    if isinstance(decision, Skip):  # the window lies wholly in quiet time: never, not wrongly
        assert decision.reason == "send_window"
        assert hours is not None
        return
    assert isinstance(decision, Defer)
    assert decision.until > now
    assert inside(window, decision.until, zone)
    # No instant before it was both inside the window and outside quiet time.
    probe = now
    while (probe := probe + timedelta(minutes=15)) < min(decision.until, now + timedelta(days=8)):
        assert not inside(window, probe, zone) or policy.is_quiet(probe, zone, category=category)


def test_a_window_inside_the_quiet_hours_skips_instead_of_waiting_forever():
    assert decide(at(3, 11), SendWindow.parse("21:00-22:00")) == Skip("send_window")

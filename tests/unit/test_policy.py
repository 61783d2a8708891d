"""The contact policy rule by rule, with the exact reason strings the send log relies on."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.policy import (
    Allow,
    Candidate,
    Contact,
    ContactPolicy,
    Defer,
    FrequencyCap,
    PolicyRules,
    QuietHours,
    Recipient,
    Skip,
    order_competitors,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def policy(**rules: object) -> ContactPolicy:
    return ContactPolicy(PolicyRules(**rules))  # type: ignore[arg-type]


def customer(
    tz: str | None = "Europe/Berlin",
    *,
    email: bool = True,
    sms: bool = True,
    suppressed: dict[str, str] | None = None,
    complaint: bool = False,
) -> Recipient:
    return Recipient(tz, {"email": email, "sms": sms}, suppressed or {}, complaint)


def message(
    due: datetime,
    *,
    channel: str = "email",
    category: str = "marketing",
    expires: datetime | None = None,
    priority: int = 0,
) -> Candidate:
    return Candidate(channel, category, due, expires, priority)  # type: ignore[arg-type]


NOON = berlin(2026, 6, 10, 12, 0)  # a Wednesday, not a holiday, summer time


# --- rules 1-4: expiry, suppression, consent, complaints --------------------------------


def test_allows_an_ordinary_message_at_noon() -> None:
    assert policy().decide(message(NOON), customer(), [], NOON) == Allow()


def test_expired_message_is_skipped_even_when_everything_else_allows() -> None:
    m = message(NOON, expires=NOON)
    assert policy().decide(m, customer(), [], NOON) == Skip("expired")
    assert policy().decide(m, customer(), [], NOON - timedelta(microseconds=1)) == Allow()


def test_suppression_skips_every_category_with_its_reason() -> None:
    r = customer(suppressed={"email": "bounce"})
    for category in ("marketing", "transactional"):
        m = message(NOON, category=category)
        assert policy().decide(m, r, [], NOON) == Skip("suppressed:bounce")
    # Suppression is per channel.
    assert policy().decide(message(NOON, channel="sms"), r, [], NOON) == Allow()


def test_marketing_needs_consent_for_its_channel() -> None:
    r = customer(sms=False)
    assert policy().decide(message(NOON, channel="sms"), r, [], NOON) == Skip("no_consent:sms")
    assert policy().decide(message(NOON), r, [], NOON) == Allow()
    missing = Recipient("Europe/Berlin", {}, {})
    assert policy().decide(message(NOON), missing, [], NOON) == Skip("no_consent:email")


def test_transactional_needs_no_consent() -> None:
    r = customer(email=False)
    assert policy().decide(message(NOON, category="transactional"), r, [], NOON) == Allow()


def test_open_complaint_holds_marketing_until_expiry_or_an_event() -> None:
    r = customer(complaint=True)
    expires = NOON + timedelta(days=3)
    held = policy().decide(message(NOON, expires=expires), r, [], NOON)
    assert held == Defer(expires, "complaint_open")
    assert policy().decide(message(NOON), r, [], NOON) == Defer(None, "complaint_open")


def test_complaint_still_open_at_expiry_is_the_skip_reason() -> None:
    r = customer(complaint=True)
    m = message(NOON, expires=NOON)
    assert policy().decide(m, r, [], NOON) == Skip("complaint_open")
    # Resolved by then: it simply ran out of time.
    assert policy().decide(m, customer(), [], NOON) == Skip("expired")


def test_transactional_goes_out_during_a_complaint() -> None:
    r = customer(complaint=True)
    assert policy().decide(message(NOON, category="transactional"), r, [], NOON) == Allow()


def test_rule_order_suppression_before_consent_before_complaint() -> None:
    r = customer(email=False, suppressed={"email": "spamreport"}, complaint=True)
    assert policy().decide(message(NOON), r, [], NOON) == Skip("suppressed:spamreport")
    r = customer(email=False, complaint=True)
    assert policy().decide(message(NOON), r, [], NOON) == Skip("no_consent:email")


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        policy().decide(message(NOON), customer(), [], datetime(2026, 6, 10, 12))


# --- quiet hours, in the recipient's own time ---------------------------------------------


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        (time(19, 59, 59), False),
        (time(20, 0, 0), True),
        (time(23, 59, 59), True),
        (time(0, 0), True),
        (time(8, 59, 59), True),
        (time(9, 0, 0), False),
    ],
)
def test_quiet_hours_boundaries(local: time, quiet: bool) -> None:
    at = datetime.combine(NOON.date(), local, tzinfo=BERLIN)
    assert policy().is_quiet(at, "Europe/Berlin") is quiet


def test_evening_message_deferred_to_nine_next_morning() -> None:
    due = berlin(2026, 6, 10, 21, 15)
    decision = policy().decide(message(due), customer(), [], due)
    assert decision == Defer(berlin(2026, 6, 11, 9, 0), "quiet_hours")
    assert isinstance(decision, Defer) and decision.until is not None
    assert decision.until.tzinfo is UTC


def test_transactional_respects_quiet_hours_too() -> None:
    due = berlin(2026, 6, 10, 23, 0)
    decision = policy().decide(message(due, category="transactional"), customer(), [], due)
    assert decision == Defer(berlin(2026, 6, 11, 9, 0), "quiet_hours")


def test_quiet_hours_past_expiry_skip_with_quiet_hours() -> None:
    due = berlin(2026, 6, 10, 21, 0)
    m = message(due, expires=berlin(2026, 6, 11, 9, 0))
    assert policy().decide(m, customer(), [], due) == Skip("quiet_hours")
    m = message(due, expires=berlin(2026, 6, 11, 9, 0, 1))
    assert policy().decide(m, customer(), [], due) == Defer(berlin(2026, 6, 11, 9), "quiet_hours")


def test_non_wrapping_quiet_hours() -> None:
    lunch = policy(quiet_hours=QuietHours.parse("13:00-14:00"))
    due = berlin(2026, 6, 10, 13, 30)
    assert lunch.decide(message(due), customer(), [], due) == Defer(
        berlin(2026, 6, 10, 14), "quiet_hours"
    )
    late = berlin(2026, 6, 10, 23, 0)
    assert lunch.decide(message(late), customer(), [], late) == Allow()


def test_no_quiet_hours_at_all() -> None:
    night = berlin(2026, 6, 10, 3, 0)
    assert policy(quiet_hours=None).decide(message(night), customer(), [], night) == Allow()


# --- daylight saving time in Berlin (2026-03-29 and 2026-10-25) ---------------------------


def test_spring_forward_night_ends_at_nine_summer_time() -> None:
    due = utc(2026, 3, 29, 0, 30)  # 01:30 CET, half an hour before the clocks jump
    decision = policy().decide(message(due), customer(), [], due)
    # 09:00 CEST is 07:00 UTC, not 08:00.
    assert decision == Defer(utc(2026, 3, 29, 7, 0), "quiet_hours")


def test_fall_back_night_ends_at_nine_winter_time() -> None:
    due = utc(2026, 10, 24, 23, 30)  # 01:30 CEST on the 25th
    decision = policy().decide(message(due), customer(), [], due)
    assert decision == Defer(utc(2026, 10, 25, 8, 0), "quiet_hours")


def test_quiet_hours_crossing_both_changes_from_the_evening_before() -> None:
    for evening, morning in [
        (utc(2026, 3, 28, 19, 0), utc(2026, 3, 29, 7, 0)),
        (utc(2026, 10, 24, 18, 0), utc(2026, 10, 25, 8, 0)),
    ]:
        decision = policy().decide(message(evening), customer(), [], evening)
        assert decision == Defer(morning, "quiet_hours")


def test_quiet_end_inside_the_spring_gap_resolves_to_the_jump() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the first allowed moment is 03:00 CEST.
    rules = policy(quiet_hours=QuietHours.parse("22:00-02:30"))
    due = utc(2026, 3, 28, 23, 0)  # 00:00 CET
    decision = rules.decide(message(due), customer(), [], due)
    assert decision == Defer(utc(2026, 3, 29, 1, 0), "quiet_hours")
    assert not rules.is_quiet(utc(2026, 3, 29, 1, 0), "Europe/Berlin")
    assert rules.is_quiet(utc(2026, 3, 29, 1, 0) - timedelta(microseconds=1), "Europe/Berlin")


def test_quiet_end_inside_the_repeated_autumn_hour() -> None:
    rules = policy(quiet_hours=QuietHours.parse("22:00-02:30"))
    first = utc(2026, 10, 24, 23, 0)  # 01:00 CEST
    assert rules.decide(message(first), customer(), [], first) == Defer(
        utc(2026, 10, 25, 0, 30),
        "quiet_hours",  # 02:30 CEST, the first reading
    )
    # The wall clock reads 02:10 again an hour later (CET): quiet again until 02:30 CET.
    second = utc(2026, 10, 25, 1, 10)
    assert rules.decide(message(second), customer(), [], second) == Defer(
        utc(2026, 10, 25, 1, 30), "quiet_hours"
    )


def test_clock_turning_back_below_the_start_of_quiet_hours_ends_them() -> None:
    # Quiet from 02:15 in the first 02:xx hour (CEST); at 03:00 CEST the clock reads 02:00
    # CET, which is before 02:15 and after 01:10: not quiet, so that is when it may go.
    rules = policy(quiet_hours=QuietHours.parse("02:15-01:10"))
    due = utc(2026, 10, 25, 0, 31)  # 02:31 CEST
    assert rules.decide(message(due), customer(), [], due) == Defer(
        utc(2026, 10, 25, 1, 0), "quiet_hours"
    )


# --- quiet days and public holidays --------------------------------------------------------


def test_sunday_is_quiet_until_monday_morning() -> None:
    rules = policy(quiet_days=frozenset({6}))
    due = berlin(2026, 6, 14, 11, 0)  # Sunday
    assert rules.decide(message(due), customer(), [], due) == Defer(
        berlin(2026, 6, 15, 9, 0), "quiet_days"
    )
    saturday_night = berlin(2026, 6, 13, 21, 0)
    assert rules.decide(message(saturday_night), customer(), [], saturday_night) == Defer(
        berlin(2026, 6, 15, 9, 0), "quiet_days"
    )


def test_quiet_day_without_quiet_hours_opens_at_midnight() -> None:
    rules = policy(quiet_hours=None, quiet_days=frozenset({5, 6}))
    due = berlin(2026, 6, 13, 11, 0)  # Saturday
    assert rules.decide(message(due), customer(), [], due) == Defer(
        berlin(2026, 6, 15, 0, 0), "quiet_days"
    )


def test_christmas_holidays_in_germany() -> None:
    rules = policy(public_holidays="DE")
    due = berlin(2026, 12, 24, 21, 0)  # Christmas Eve, evening
    # 25th and 26th are both holidays; the 27th (a Sunday) is not one.
    assert rules.decide(message(due), customer(), [], due) == Defer(
        berlin(2026, 12, 27, 9, 0), "public_holiday"
    )


def test_german_unity_day() -> None:
    rules = policy(public_holidays="DE")
    due = berlin(2026, 10, 3, 10, 0)
    assert rules.decide(message(due), customer(), [], due) == Defer(
        berlin(2026, 10, 4, 9, 0), "public_holiday"
    )


def test_epiphany_is_a_holiday_in_bavaria_only() -> None:
    due = berlin(2026, 1, 6, 12, 0)
    bavaria = policy(public_holidays="DE-BY")
    assert bavaria.decide(message(due), customer(), [], due) == Defer(
        berlin(2026, 1, 7, 9, 0), "public_holiday"
    )
    assert policy(public_holidays="DE").decide(message(due), customer(), [], due) == Allow()


def test_holiday_follows_the_recipients_calendar_date() -> None:
    rules = policy(public_holidays="DE", quiet_hours=None)
    # 2026-10-03 00:30 in Berlin is still 2026-10-02 in New York.
    at = berlin(2026, 10, 3, 0, 30)
    assert rules.is_quiet(at, "Europe/Berlin")
    assert not rules.is_quiet(at, "America/New_York")


# --- frequency caps ------------------------------------------------------------------------

EMAIL_2_7D = FrequencyCap.parse("email", 2, "7d")


def test_email_cap_defers_until_the_oldest_contact_leaves_the_window() -> None:
    rules = policy(caps=(EMAIL_2_7D,))
    history = [
        Contact("email", berlin(2026, 6, 5, 10, 0)),
        Contact("email", berlin(2026, 6, 8, 11, 0)),
    ]
    assert rules.decide(message(NOON), customer(), history, NOON) == Defer(
        berlin(2026, 6, 12, 10, 0), "frequency_cap:email:2/7d"
    )
    assert rules.decide(message(NOON), customer(), history[:1], NOON) == Allow()


def test_contact_exactly_one_window_ago_no_longer_counts() -> None:
    rules = policy(caps=(FrequencyCap.parse("email", 1, "24h"),))
    history = [Contact("email", NOON - timedelta(hours=24))]
    assert rules.decide(message(NOON), customer(), history, NOON) == Allow()
    history = [Contact("email", NOON - timedelta(hours=24) + timedelta(seconds=1))]
    assert rules.decide(message(NOON), customer(), history, NOON) == Defer(
        NOON + timedelta(seconds=1), "frequency_cap:email:1/24h"
    )


def test_cap_on_one_channel_ignores_the_other() -> None:
    rules = policy(caps=(FrequencyCap.parse("sms", 1, "7d"),))
    history = [Contact("sms", NOON - timedelta(days=1))]
    assert rules.decide(message(NOON), customer(), history, NOON) == Allow()
    assert rules.decide(message(NOON, channel="sms"), customer(), history, NOON) == Defer(
        NOON + timedelta(days=6), "frequency_cap:sms:1/7d"
    )


def test_any_cap_counts_every_channel() -> None:
    rules = policy(caps=(FrequencyCap.parse("any", 2, "7d"),))
    history = [
        Contact("sms", NOON - timedelta(days=2)),
        Contact("email", NOON - timedelta(days=1)),
    ]
    assert rules.decide(message(NOON), customer(), history, NOON) == Defer(
        NOON + timedelta(days=5), "frequency_cap:any:2/7d"
    )


def test_several_caps_report_the_one_that_bound_last() -> None:
    day = FrequencyCap.parse("email", 1, "24h")
    week = FrequencyCap.parse("any", 3, "1w")
    rules = policy(caps=(day, week))
    history = [
        Contact("sms", NOON - timedelta(days=6)),
        Contact("sms", NOON - timedelta(days=5)),
        Contact("email", NOON - timedelta(hours=2)),
    ]
    # The day cap frees the slot at 10:00 tomorrow, the week cap at 12:00 tomorrow.
    assert rules.decide(message(NOON), customer(), history, NOON) == Defer(
        NOON + timedelta(days=1), "frequency_cap:any:3/1w"
    )


def test_cap_then_quiet_hours_reports_quiet_hours() -> None:
    rules = policy(caps=(EMAIL_2_7D,))
    history = [
        Contact("email", berlin(2026, 6, 3, 22, 0)),  # leaves the window at 22:00 on the 10th
        Contact("email", berlin(2026, 6, 8, 10, 0)),
    ]
    assert rules.decide(message(NOON), customer(), history, NOON) == Defer(
        berlin(2026, 6, 11, 9, 0), "quiet_hours"
    )


def test_quiet_hours_then_cap_reports_the_cap() -> None:
    rules = policy(caps=(FrequencyCap.parse("email", 1, "7d"),))
    due = berlin(2026, 6, 10, 22, 0)
    history = [Contact("email", berlin(2026, 6, 4, 10, 30))]
    assert rules.decide(message(due), customer(), history, due) == Defer(
        berlin(2026, 6, 11, 10, 30), "frequency_cap:email:1/7d"
    )


def test_cap_past_expiry_skips_with_the_cap_reason() -> None:
    rules = policy(caps=(EMAIL_2_7D,))
    history = [Contact("email", NOON - timedelta(days=1)), Contact("email", NOON)]
    m = message(NOON, expires=NOON + timedelta(days=2))
    assert rules.decide(m, customer(), history, NOON) == Skip("frequency_cap:email:2/7d")


def test_transactional_ignores_caps() -> None:
    rules = policy(caps=(FrequencyCap.parse("any", 1, "7d"),))
    history = [Contact("email", NOON - timedelta(hours=1))]
    m = message(NOON, category="transactional")
    assert rules.decide(m, customer(), history, NOON) == Allow()


def test_cap_window_is_absolute_across_a_dst_change() -> None:
    rules = policy(quiet_hours=None, caps=(FrequencyCap.parse("email", 1, "7d"),))
    sent = utc(2026, 3, 25, 12, 0)  # 13:00 CET
    now = utc(2026, 3, 30, 12, 0)
    decision = rules.decide(message(now), customer(), [Contact("email", sent)], now)
    # Seven times 24 hours later, which is 14:00 CEST on the wall clock.
    assert decision == Defer(utc(2026, 4, 1, 12, 0), "frequency_cap:email:1/7d")


def test_history_window_is_the_longest_cap() -> None:
    caps = (FrequencyCap.parse("email", 1, "24h"), FrequencyCap.parse("any", 4, "2w"))
    assert policy(caps=caps).history_window() == timedelta(days=14)
    assert policy().history_window() == timedelta(0)


# --- recipients elsewhere ------------------------------------------------------------------


def test_new_york_recipient_uses_new_york_night() -> None:
    at = utc(2026, 6, 10, 23, 0)  # 01:00 in Berlin, 19:00 in New York
    assert policy().decide(message(at), customer("America/New_York"), [], at) == Allow()
    assert policy().decide(message(at), customer(), [], at) == Defer(
        berlin(2026, 6, 11, 9, 0), "quiet_hours"
    )
    late = utc(2026, 6, 11, 1, 0)  # 21:00 in New York
    assert policy().decide(message(late), customer("America/New_York"), [], late) == Defer(
        datetime(2026, 6, 11, 9, 0, tzinfo=NEW_YORK), "quiet_hours"
    )


def test_tokyo_recipient() -> None:
    at = utc(2026, 6, 10, 12, 0)  # 21:00 in Tokyo
    assert policy().decide(message(at), customer("Asia/Tokyo"), [], at) == Defer(
        datetime(2026, 6, 11, 9, 0, tzinfo=TOKYO), "quiet_hours"
    )


def test_missing_or_invalid_zone_falls_back_to_the_default() -> None:
    at = utc(2026, 6, 10, 20, 0)  # 22:00 Berlin, 05:00 (next day) Tokyo
    tokyo_rules = policy(default_timezone="Asia/Tokyo")
    for tz in (None, "", "Mars/Olympus_Mons", "../etc/passwd"):
        assert tokyo_rules.is_quiet(at, tz)
        assert policy().is_quiet(at, tz)
    assert not policy(default_timezone="America/New_York").is_quiet(at, None)


# --- next_allowed and ordering -------------------------------------------------------------


def test_next_allowed_reports_none_when_already_allowed() -> None:
    m = message(NOON)
    assert policy().next_allowed(m, customer(), [], NOON) == (NOON, None)
    night = berlin(2026, 6, 10, 22, 0)
    assert policy().next_allowed(m, customer(), [], night) == (
        berlin(2026, 6, 11, 9, 0),
        "quiet_hours",
    )


def test_order_competitors_puts_priority_first_then_due_time() -> None:
    a = message(NOON, priority=0)
    b = message(NOON + timedelta(hours=1), priority=5)
    c = message(NOON - timedelta(hours=1), priority=0)
    assert order_competitors([a, b, c]) == [b, c, a]
    rows = [("a", a), ("b", b), ("c", c)]
    assert [name for name, _ in order_competitors(rows, key=lambda row: row[1])] == [
        "b",
        "c",
        "a",
    ]

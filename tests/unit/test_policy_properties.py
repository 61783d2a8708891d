"""Properties of the contact policy over random rules, histories, zones and instants.

The checks use an oracle written independently of the policy: quiet time straight from
``astimezone`` and the ``holidays`` package, caps by counting the window literally. The
policy computes the earliest allowed instant in closed form; the oracle only ever asks
"is this one instant allowed?", so a wrong jump shows up as an allowed instant the policy
skipped over or a disallowed one it landed on.

Holidays come from one fixed region or, under ``"auto"``, from the recipient's own region
(else the default one); transactional messages meet the quiet rules their mode names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from campaigns.policy import (
    SKIP_REASON_PREFIXES,
    SKIP_REASONS,
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
)

VALID_OWN = {"US", "DE-BY", "JP", "GB"}  # recipients' regions the holidays package knows

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # half-hour DST shift
    "Asia/Kolkata",
    None,
    "Not/A_Zone",
]
# 2026 DST changes of the zones above (UTC): instants near them are drawn often.
TRANSITIONS = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 16, 0, tzinfo=UTC),
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    datetime(2026, 10, 3, 16, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MICRO = timedelta(microseconds=1)

# --- strategies ------------------------------------------------------------------------------

clock_times = st.builds(
    time, st.integers(0, 23), st.one_of(st.sampled_from([0, 30]), st.integers(0, 59))
)
quiet_hours = st.one_of(st.none(), st.builds(QuietHours, clock_times, clock_times))
caps = st.lists(
    st.builds(
        FrequencyCap,
        st.sampled_from(["email", "sms", "any"]),
        st.integers(1, 5),
        st.integers(60, 14 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    ),
    min_size=1,
    max_size=3,
)
rules = st.builds(
    PolicyRules,
    default_timezone=st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Tokyo"]),
    quiet_hours=quiet_hours,
    quiet_days=st.frozensets(st.integers(0, 6), max_size=3),
    public_holidays=st.sampled_from([None, "DE", "DE-BY", "US", "JP", "auto", "auto"]),
    caps=caps.map(tuple),
    default_region=st.sampled_from([None, "DE", "US"]),
    transactional_quiet=st.sampled_from(["hours", "all", "none"]),
)
own_regions = st.sampled_from([None, *sorted(VALID_OWN), "XX"])
instants = st.one_of(
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda base, minutes: base + timedelta(minutes=minutes),
        st.sampled_from(TRANSITIONS),
        st.integers(-2 * 24 * 60, 2 * 24 * 60),
    ),
)
mostly_true = st.sampled_from([True, True, True, True, False])


@st.composite
def scenarios(
    draw: st.DrawFn, reachable: bool = False
) -> tuple[PolicyRules, Candidate, Recipient, list[Contact], datetime]:
    """Rules, message, recipient, history and instant; ``reachable`` leaves out the
    recipient-level stops (suppression, no consent, complaint) so the timing rules decide."""
    now = draw(instants)
    history = draw(
        st.lists(
            st.builds(
                Contact,
                st.sampled_from(["email", "sms"]),
                # Whole quarter hours often land exactly on a window edge.
                st.one_of(
                    st.integers(0, 15 * 24 * 3600).map(lambda s: timedelta(seconds=s)),
                    st.integers(0, 15 * 24 * 4).map(lambda q: timedelta(minutes=15 * q)),
                ).map(lambda ago: now - ago),
            ),
            max_size=12,
        )
    )
    expires = draw(
        st.one_of(st.none(), st.integers(1, 30 * 24 * 60).map(lambda m: now + timedelta(minutes=m)))
    )
    candidate = Candidate(
        draw(st.sampled_from(["email", "sms"])),
        draw(st.sampled_from(["marketing", "marketing", "marketing", "transactional"])),
        now,
        expires,
        draw(st.integers(-5, 5)),
    )
    zone = draw(st.sampled_from(ZONES))
    region = draw(own_regions)
    if reachable:
        recipient = Recipient(zone, {"email": True, "sms": True}, {}, region=region)
    else:
        recipient = Recipient(
            zone,
            {"email": draw(mostly_true), "sms": draw(mostly_true)},
            {} if draw(mostly_true) else {candidate.channel: "bounce"},
            complaint_open=not draw(mostly_true),
            region=region,
        )
    return draw(rules), candidate, recipient, history, now


# --- the oracle ------------------------------------------------------------------------------


@cache
def holiday_set(region: str, year: int) -> frozenset[date]:
    country, _, subdiv = region.partition("-")
    return frozenset(holidays.country_holidays(country, subdiv=subdiv or None, years=year))


def zone_of(r: PolicyRules, tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz) if tz else ZoneInfo(r.default_timezone)
    except (KeyError, ValueError):
        return ZoneInfo(r.default_timezone)


def oracle_region(r: PolicyRules, own: str | None) -> str | None:
    if r.public_holidays != "auto":
        return r.public_holidays
    return own if own in VALID_OWN else r.default_region


def oracle_quiet(
    r: PolicyRules,
    at: datetime,
    tz: str | None,
    own: str | None = None,
    category: str = "marketing",
) -> bool:
    mode = "all" if category == "marketing" else r.transactional_quiet
    if mode == "none":
        return False
    local = at.astimezone(zone_of(r, tz))
    region = oracle_region(r, own)
    if mode == "all" and local.weekday() in r.quiet_days:
        return True
    if mode == "all" and region and local.date() in holiday_set(region, local.year):
        return True
    hours, wall = r.quiet_hours, local.time()
    if hours is None or hours.start == hours.end:
        return False
    if hours.start < hours.end:
        return hours.start <= wall < hours.end
    return wall >= hours.start or wall < hours.end


def window_count(cap: FrequencyCap, history: Sequence[Contact], at: datetime) -> int:
    at = at.astimezone(UTC)
    return sum(
        1
        for h in history
        if cap.channel in ("any", h.channel) and at - cap.per < h.at.astimezone(UTC) <= at
    )


def oracle_allowed(
    r: PolicyRules, c: Candidate, rec: Recipient, history: Sequence[Contact], at: datetime
) -> bool:
    if oracle_quiet(r, at, rec.timezone, rec.region, c.category):
        return False
    if c.category != "marketing":
        return True
    applicable = [cap for cap in r.caps if cap.channel in ("any", c.channel)]
    return all(window_count(cap, history, at) < cap.max for cap in applicable)


def assert_earliest(
    r: PolicyRules,
    c: Candidate,
    rec: Recipient,
    history: Sequence[Contact],
    start: datetime,
    found: datetime,
) -> None:
    """``found`` is allowed and nothing in [start, found) is (sampled every 15 minutes)."""
    assert found >= start
    assert oracle_allowed(r, c, rec, history, found)
    if found == start:
        return
    assert not oracle_allowed(r, c, rec, history, found - MICRO)
    probe = start
    while probe < found:
        assert not oracle_allowed(r, c, rec, history, probe), probe
        probe += timedelta(minutes=15)


# --- properties ------------------------------------------------------------------------------


@SETTINGS
@given(scenarios(reachable=True))
def test_allow_means_quiet_free_and_within_every_cap(scenario: tuple) -> None:
    r, c, rec, history, now = scenario
    decision = ContactPolicy(r).decide(c, rec, history, now)
    if not isinstance(decision, Allow):
        return
    assert not oracle_quiet(r, now, rec.timezone, rec.region, c.category)
    if c.category == "marketing":
        sent = [*history, Contact(c.channel, now)]
        for cap in r.caps:
            if cap.channel in ("any", c.channel):
                assert window_count(cap, sent, now) <= cap.max


@SETTINGS
@given(scenarios(reachable=True))
def test_defer_goes_to_the_earliest_allowed_instant(scenario: tuple) -> None:
    r, c, rec, history, now = scenario
    decision = ContactPolicy(r).decide(c, rec, history, now)
    event(type(decision).__name__ + ("" if isinstance(decision, Allow) else f":{decision.reason}"))
    if not isinstance(decision, Defer):
        return
    if decision.reason == "complaint_open":
        assert c.category == "marketing" and rec.complaint_open
        assert decision.until == c.expires_at
        return
    assert decision.until is not None and decision.until > now
    assert c.expires_at is None or decision.until < c.expires_at
    assert_earliest(r, c, rec, history, now, decision.until)
    reasons = {"quiet_hours", "quiet_days", "public_holiday"} | {cap.reason for cap in r.caps}
    assert decision.reason in reasons


@SETTINGS
@given(st.one_of(scenarios(), scenarios(reachable=True)))
def test_skip_reasons_come_from_the_fixed_set(scenario: tuple) -> None:
    r, c, rec, history, now = scenario
    policy = ContactPolicy(r)
    decision = policy.decide(c, rec, history, now)
    if not isinstance(decision, Skip):
        return
    reason = decision.reason
    assert reason in SKIP_REASONS or reason.startswith(SKIP_REASON_PREFIXES)
    if reason.startswith("frequency_cap:"):
        assert reason in {cap.reason for cap in r.caps}
    if reason in ("quiet_hours", "quiet_days", "public_holiday") or reason.startswith(
        "frequency_cap:"
    ):
        # Skipped for time: no allowed instant exists before the message expires.
        assert c.expires_at is not None
        until, _ = policy.next_allowed(c, rec, history, now)
        assert until >= c.expires_at
        assert_earliest(r, c, rec, history, now, until)
        # The reason is the rule that held the message up to its expiry, not one beyond it.
        _, held = policy.next_allowed(c, rec, history, now, limit=c.expires_at)
        assert held == reason
        last = c.expires_at - MICRO
        if reason.startswith("frequency_cap:"):
            cap = next(cap for cap in r.caps if cap.reason == reason)
            assert window_count(cap, history, last) >= cap.max
        else:
            assert oracle_quiet(r, last, rec.timezone, rec.region, c.category)


@SETTINGS
@given(scenarios(reachable=True))
def test_every_message_gets_a_decision_consistent_with_next_allowed(scenario: tuple) -> None:
    r, c, rec, history, now = scenario
    policy = ContactPolicy(r)
    until, why = policy.next_allowed(c, rec, history, now)
    assert_earliest(r, c, rec, history, now, until)
    assert (why is None) == (until == now)


@SETTINGS
@given(
    rules,
    instants,
    st.sampled_from(ZONES),
    own_regions,
    st.sampled_from(["marketing", "transactional"]),
)
def test_is_quiet_matches_the_oracle(
    r: PolicyRules, at: datetime, tz: str | None, own: str | None, category: str
) -> None:
    policy = ContactPolicy(r)
    for step in range(0, 48 * 60, 97):  # two days at an odd stride, crossing both edges
        probe = at + timedelta(minutes=step)
        quiet = policy.is_quiet(probe, tz, region=own, category=category)  # type: ignore[arg-type]
        assert quiet == oracle_quiet(r, probe, tz, own, category), probe


@SETTINGS
@given(
    st.builds(time, st.integers(0, 23), st.integers(0, 59)),
    st.builds(time, st.integers(1, 3), st.integers(0, 59)),
    st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    st.sampled_from(TRANSITIONS),
    st.integers(-36 * 60, 12 * 60),
)
def test_quiet_ends_inside_dst_changes(
    start: time, end: time, tz: str, change: datetime, minutes: int
) -> None:
    # Quiet hours that end between 01:00 and 04:00 — inside the skipped or repeated hour
    # on change days — still lead to the first instant the local clock leaves them.
    r = PolicyRules(default_timezone=tz, quiet_hours=QuietHours(start, end))
    c = Candidate("email", "transactional", change)
    rec = Recipient(tz, {}, {})
    now = change + timedelta(minutes=minutes)
    until, why = ContactPolicy(r).next_allowed(c, rec, [], now)
    assert_earliest(r, c, rec, [], now, until)
    assert why in (None, "quiet_hours")


@SETTINGS
@given(st.one_of(scenarios(), scenarios(reachable=True)), own_regions)
def test_a_recipients_own_region_counts_only_under_auto(scenario: tuple, other: str | None) -> None:
    r, c, rec, history, now = scenario
    policy = ContactPolicy(r)
    moved = replace(rec, region=other)
    same = policy.decide(c, rec, history, now) == policy.decide(c, moved, history, now)
    assert same or r.public_holidays == "auto"


@SETTINGS
@given(scenarios(reachable=True))
def test_transactional_mail_meets_only_the_quiet_rules_its_mode_names(scenario: tuple) -> None:
    r, c, rec, history, now = scenario
    c = replace(c, category="transactional")
    decision = ContactPolicy(r).decide(c, rec, history, now)
    if r.transactional_quiet == "none":
        assert decision in (Allow(), Skip("expired"))
    elif r.transactional_quiet == "hours" and not isinstance(decision, Allow):
        assert decision.reason in ("quiet_hours", "expired")

"""Each customer's own holidays, transactional mail under quiet days, and skip reasons at
expiry: the contact policy rule by rule."""

from __future__ import annotations

from datetime import datetime, timedelta
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
    Recipient,
    Skip,
)
from campaigns.timewindows import (
    check_region,
    holiday_dates,
    known_region,
    own_region,
    phone_region,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SUNDAY = frozenset({6})


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def new_york(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


def policy(**rules: object) -> ContactPolicy:
    return ContactPolicy(PolicyRules(**rules))  # type: ignore[arg-type]


def customer(tz: str = "Europe/Berlin", region: str | None = None) -> Recipient:
    return Recipient(tz, {"email": True, "sms": True}, {}, region=region)


def marketing(due: datetime, expires: datetime | None = None) -> Candidate:
    return Candidate("email", "marketing", due, expires)


def transactional(due: datetime) -> Candidate:
    return Candidate("email", "transactional", due)


# --- public_holidays = "auto" -------------------------------------------------------------------

THANKSGIVING = new_york(2026, 11, 26, 12, 0)
UNITY_DAY = berlin(2026, 10, 3, 12, 0)  # a Saturday in 2026; no quiet days in these rules


def test_auto_holds_a_new_yorker_on_thanksgiving_not_on_german_unity_day() -> None:
    rules = policy(public_holidays="auto", default_region="DE")
    ny = customer("America/New_York", "US")
    assert rules.decide(marketing(THANKSGIVING), ny, [], THANKSGIVING) == Defer(
        new_york(2026, 11, 27, 9, 0), "public_holiday"
    )
    unity = new_york(2026, 10, 3, 12, 0)
    assert rules.decide(marketing(unity), ny, [], unity) == Allow()


def test_auto_holds_a_berliner_on_german_unity_day_not_on_thanksgiving() -> None:
    rules = policy(public_holidays="auto", default_region="US")
    berliner = customer("Europe/Berlin", "DE")
    assert rules.decide(marketing(UNITY_DAY), berliner, [], UNITY_DAY) == Defer(
        berlin(2026, 10, 4, 9, 0), "public_holiday"
    )
    thanksgiving = berlin(2026, 11, 26, 12, 0)
    assert rules.decide(marketing(thanksgiving), berliner, [], thanksgiving) == Allow()


def test_auto_uses_the_default_region_for_a_customer_without_one() -> None:
    rules = policy(public_holidays="auto", default_region="DE")
    assert rules.decide(marketing(UNITY_DAY), customer(), [], UNITY_DAY) == Defer(
        berlin(2026, 10, 4, 9, 0), "public_holiday"
    )
    unknown = customer(region="XX")
    assert rules.holiday_region(unknown) == "DE"
    no_default = policy(public_holidays="auto")
    assert no_default.decide(marketing(UNITY_DAY), customer(), [], UNITY_DAY) == Allow()


def test_a_subdivision_has_its_own_holidays() -> None:
    rules = policy(public_holidays="auto", default_region="DE")
    epiphany = berlin(2026, 1, 6, 12, 0)
    assert rules.decide(marketing(epiphany), customer(region="DE-BY"), [], epiphany) == Defer(
        berlin(2026, 1, 7, 9, 0), "public_holiday"
    )
    assert rules.decide(marketing(epiphany), customer(region="DE-BE"), [], epiphany) == Allow()


def test_a_fixed_region_applies_to_everyone_whatever_their_own() -> None:
    rules = policy(public_holidays="DE")
    ny = customer("America/New_York", "US")
    assert rules.decide(marketing(THANKSGIVING), ny, [], THANKSGIVING) == Allow()
    unity = new_york(2026, 10, 3, 12, 0)
    assert rules.decide(marketing(unity), ny, [], unity) == Defer(
        new_york(2026, 10, 4, 9, 0), "public_holiday"
    )


def test_own_region_prefers_the_country_then_the_phone() -> None:
    assert own_region("US", "+4915112345678") == ("US", "country")
    assert own_region("de-by", None) == ("DE-BY", "country")
    assert own_region("", "+12125550100") == ("US", "phone")
    assert own_region(None, "+4915112345678") == ("DE", "phone")
    assert own_region("XX", "+4915112345678") == ("DE", "phone")
    assert own_region(None, None) == (None, None)
    assert own_region(None, "not a number") == (None, None)
    assert phone_region("+442071838750") == "GB"
    assert known_region("DE-ZZ") == "DE"  # an unknown subdivision keeps its country


@pytest.mark.parametrize("region", ["DE", "US", "GB", "JP", "DE-BY", "US-NY", "XX", "DE-ZZ"])
def test_a_region_is_checked_as_building_its_calendar_would(region: str) -> None:
    # A whole country is looked up in the holidays registry, without loading any calendar.
    try:
        holiday_dates(region, 2026)
    except ValueError:
        with pytest.raises(ValueError, match="unknown public holiday region"):
            check_region(region)
    else:
        check_region(region)


def test_the_calendar_that_applies_is_described_with_its_source() -> None:
    auto = policy(public_holidays="auto", default_region="DE")
    assert auto.holiday_calendar("US", None) == "US (from country)"
    assert auto.holiday_calendar(None, "+12125550100") == "US (from phone)"
    assert auto.holiday_calendar(None, None) == "DE (default region)"
    assert policy(public_holidays="auto").holiday_calendar(None, None) == "none (no region known)"
    assert policy(public_holidays="DE").holiday_calendar("US", None) == (
        "DE (the project's calendar)"
    )
    assert policy().holiday_calendar("US", None) == "none"


# --- transactional_quiet ------------------------------------------------------------------------

SATURDAY_EVENING = berlin(2026, 3, 14, 21, 0)


def test_transactional_meets_quiet_hours_only_by_default() -> None:
    rules = policy(quiet_days=SUNDAY, public_holidays="DE")
    thanks = transactional(SATURDAY_EVENING)
    assert rules.decide(thanks, customer(), [], SATURDAY_EVENING) == Defer(
        berlin(2026, 3, 15, 9, 0), "quiet_hours"
    )
    christmas = berlin(2026, 12, 25, 12, 0)
    assert rules.decide(transactional(christmas), customer(), [], christmas) == Allow()
    # Marketing still waits for Monday.
    assert rules.decide(marketing(SATURDAY_EVENING), customer(), [], SATURDAY_EVENING) == Defer(
        berlin(2026, 3, 16, 9, 0), "quiet_days"
    )


def test_transactional_quiet_all_adds_quiet_days_and_holidays() -> None:
    rules = policy(quiet_days=SUNDAY, public_holidays="DE", transactional_quiet="all")
    thanks = transactional(SATURDAY_EVENING)
    assert rules.decide(thanks, customer(), [], SATURDAY_EVENING) == Defer(
        berlin(2026, 3, 16, 9, 0), "quiet_days"
    )
    christmas = berlin(2026, 12, 25, 12, 0)
    assert rules.decide(transactional(christmas), customer(), [], christmas) == Defer(
        berlin(2026, 12, 28, 9, 0),
        "quiet_days",  # the 25th, the 26th, then a Sunday
    )


def test_transactional_quiet_none_sends_at_once() -> None:
    rules = policy(quiet_days=SUNDAY, public_holidays="DE", transactional_quiet="none")
    thanks = transactional(SATURDAY_EVENING)
    assert rules.decide(thanks, customer(), [], SATURDAY_EVENING) == Allow()
    assert not rules.is_quiet(SATURDAY_EVENING, "Europe/Berlin", category="transactional")
    assert rules.is_quiet(SATURDAY_EVENING, "Europe/Berlin")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("sometimes", 'policy.transactional_quiet: must be one of "hours", "all", "none"'),
        (True, "policy.transactional_quiet: must be one of"),
        ("XX", "policy.default_region: unknown public holiday region"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(value: object, error: str) -> None:
    key = "default_region" if value == "XX" else "transactional_quiet"
    with pytest.raises(ValueError, match=error.replace("(", r"\(")) as caught:
        PolicyRules.from_config({key: value})
    assert str(caught.value).startswith(f"policy.{key}: ")


def test_settings_read_auto_and_default_region() -> None:
    rules = PolicyRules.from_config({"public_holidays": "auto", "default_region": "us-ny"})
    assert rules.public_holidays == "auto" and rules.default_region == "US-NY"
    assert rules.transactional_quiet == "hours"
    # Without [policy] default_region the project's region is used if it names a calendar.
    assert PolicyRules.from_config({}, default_region="AT").default_region == "AT"
    assert PolicyRules.from_config({}, default_region="ZZ").default_region is None
    assert PolicyRules.from_config({"transactional_quiet": "none"}).transactional_quiet == "none"


# --- the reason of a skip at expiry ------------------------------------------------------------

ONE_A_HALF_DAY = FrequencyCap.parse("email", 1, "12h")


def test_skip_at_expiry_names_the_cap_that_held_the_message_to_its_expiry() -> None:
    # The cap frees the message at 21:30, past its 18:00 expiry; beyond that lie quiet
    # hours and a quiet Sunday, which the message never reached.
    rules = policy(quiet_days=SUNDAY, caps=(ONE_A_HALF_DAY,))
    now = berlin(2026, 3, 14, 10, 0)  # Saturday
    sent = [Contact("email", berlin(2026, 3, 14, 9, 30))]
    m = marketing(now, expires=berlin(2026, 3, 14, 18, 0))
    assert rules.decide(m, customer(), sent, now) == Skip("frequency_cap:email:1/12h")


def test_skip_at_expiry_names_the_quiet_day_not_the_holiday_after_it() -> None:
    rules = policy(quiet_days=SUNDAY, public_holidays="DE")
    now = berlin(2026, 4, 5, 10, 0)  # Easter Sunday; Easter Monday is a holiday
    m = marketing(now, expires=berlin(2026, 4, 5, 15, 0))
    assert rules.decide(m, customer(), [], now) == Skip("quiet_days")


def test_skip_at_expiry_names_quiet_hours_when_the_night_reached_it() -> None:
    rules = policy(quiet_days=SUNDAY)
    now = berlin(2026, 3, 14, 22, 0)  # Saturday night; Sunday is quiet all day
    m = marketing(now, expires=berlin(2026, 3, 14, 23, 0))
    assert rules.decide(m, customer(), [], now) == Skip("quiet_hours")


def test_a_defer_before_expiry_keeps_the_reason_of_the_whole_way() -> None:
    rules = policy(quiet_days=SUNDAY, caps=(ONE_A_HALF_DAY,))
    now = berlin(2026, 3, 14, 10, 0)
    sent = [Contact("email", berlin(2026, 3, 14, 9, 30))]
    m = marketing(now, expires=now + timedelta(days=7))
    assert rules.decide(m, customer(), sent, now) == Defer(berlin(2026, 3, 16, 9, 0), "quiet_days")

"""Reading the ``[policy]`` table, and the small value types it is made of."""

from __future__ import annotations

import tomllib
from datetime import time, timedelta
from typing import Any

import pytest

from campaigns.policy import FrequencyCap, PolicyRules, QuietHours, parse_weekdays

DESIGN_EXAMPLE = """
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = "20:00-09:00"
quiet_days = ["sun"]
public_holidays = "DE"
[[policy.caps]]
channel = "email"
max = 2
per = "7d"
[[policy.caps]]
channel = "any"
max = 3
per = "2w"
"""


def test_reads_the_documented_example() -> None:
    rules = PolicyRules.from_config(tomllib.loads(DESIGN_EXAMPLE)["policy"])
    assert rules == PolicyRules(
        default_timezone="Europe/Berlin",
        quiet_hours=QuietHours(time(20), time(9)),
        quiet_days=frozenset({6}),
        public_holidays="DE",
        caps=(
            FrequencyCap("email", 2, timedelta(days=7)),
            FrequencyCap("any", 3, timedelta(weeks=2)),
        ),
    )
    assert [cap.reason for cap in rules.caps] == [
        "frequency_cap:email:2/7d",
        "frequency_cap:any:3/2w",
    ]


def test_empty_table_gives_the_defaults() -> None:
    rules = PolicyRules.from_config({})
    assert rules == PolicyRules()
    assert rules.quiet_hours == QuietHours(time(20), time(9))
    assert rules.caps == ()


@pytest.mark.parametrize("off", ["", "off", "none", False])
def test_quiet_hours_and_holidays_can_be_switched_off(off: object) -> None:
    rules = PolicyRules.from_config({"quiet_hours": off, "public_holidays": off})
    assert rules.quiet_hours is None
    assert rules.public_holidays is None


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    assert PolicyRules.from_config({"quiet_hours": "09:00-09:00"}).quiet_hours is None
    assert QuietHours.parse("09:00-09:00").empty
    assert not QuietHours.parse("09:00-09:00").contains(time(9))


def test_subdivision_is_normalised() -> None:
    assert PolicyRules.from_config({"public_holidays": "de-by"}).public_holidays == "DE-BY"


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"default_timezone": "Europe/Atlantis"}, "policy.default_timezone"),
        ({"default_timezone": 3}, "policy.default_timezone"),
        ({"quiet_hours": "20-09"}, "policy.quiet_hours"),
        ({"quiet_hours": "25:00-09:00"}, "policy.quiet_hours"),
        ({"quiet_hours": 20}, "policy.quiet_hours"),
        ({"quiet_days": ["sun", "funday"]}, "policy.quiet_days"),
        ({"quiet_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, "policy.quiet_days"),
        ({"public_holidays": "XX"}, "policy.public_holidays"),
        ({"public_holidays": "DE-ZZ"}, "policy.public_holidays"),
        ({"caps": {"channel": "email"}}, "policy.caps"),
        ({"caps": [{"channel": "fax", "max": 1, "per": "1d"}]}, "policy.caps[0].channel"),
        ({"caps": [{"channel": "sms", "max": 0, "per": "1d"}]}, "policy.caps[0].max"),
        ({"caps": [{"channel": "sms", "max": "2", "per": "1d"}]}, "policy.caps[0].max"),
        ({"caps": [{"channel": "sms", "max": 2, "per": "1 fortnight"}]}, "policy.caps[0].per"),
        ({"caps": [{"channel": "sms", "max": 2}]}, "policy.caps[0].per"),
        (
            {"caps": [{"channel": "sms", "max": 1, "per": "1d"}, {"channel": "email", "max": 1}]},
            "policy.caps[1].per",
        ),
        ({"caps": [{"channel": "sms", "max": 2, "per": "1d", "burst": 3}]}, "policy.caps[0].burst"),
        ({"quiet_hour": "20:00-09:00"}, "policy.quiet_hour"),
    ],
)
def test_bad_values_name_their_key(cfg: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError) as info:
        PolicyRules.from_config(cfg)
    assert str(info.value).startswith(f"{key}:")


@pytest.mark.parametrize(
    ("per", "span"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_cap_windows(per: str, span: timedelta) -> None:
    cap = FrequencyCap.parse("email", 2, per)
    assert cap.per == span
    assert cap.reason == f"frequency_cap:email:2/{per}"


def test_cap_built_directly_renders_its_window() -> None:
    assert FrequencyCap("sms", 1, timedelta(days=7)).reason == "frequency_cap:sms:1/7d"
    assert FrequencyCap("sms", 1, timedelta(hours=36)).reason == "frequency_cap:sms:1/36h"
    assert FrequencyCap("any", 4, timedelta(minutes=90)).reason == "frequency_cap:any:4/90m"


@pytest.mark.parametrize(
    ("channel", "limit", "per"),
    [("fax", 1, "1d"), ("email", 0, "1d"), ("email", True, "1d"), ("email", 1, "0d")],
)
def test_cap_rejects_nonsense(channel: str, limit: int, per: str) -> None:
    with pytest.raises(ValueError):
        FrequencyCap.parse(channel, limit, per)


def test_quiet_hours_parse_and_show() -> None:
    night = QuietHours.parse("20:00-09:00")
    assert (night.start, night.end, night.wraps) == (time(20), time(9), True)
    lunch = QuietHours.parse(" 13:00 - 14:00:30 ")
    assert (lunch.start, lunch.end, lunch.wraps) == (time(13), time(14, 0, 30), False)
    assert str(night) == "20:00-09:00"
    assert str(lunch) == "13:00-14:00:30"
    assert QuietHours.parse("22:00-24:00").end == time(0)


def test_parse_weekdays() -> None:
    assert parse_weekdays(["sun"]) == frozenset({6})
    assert parse_weekdays(["Mon", "saturday", 2]) == frozenset({0, 2, 5})
    with pytest.raises(ValueError, match="'someday'"):
        parse_weekdays(["someday"])

"""The bundling rule (campaigns.bundling) and its setting, without a database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.bundling import bundled_with
from campaigns.journeys import BUILTIN_DIR, parse_journey

NOW = datetime(2026, 4, 13, 9, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Row:
    enrollment_id: str
    due_at: datetime = NOW
    customer_id: str = "c1"
    journey_id: str = "inspection_invitation"
    step: str = "invite"
    expires_at: datetime | None = None


CARRIER = Row("e1")


def test_candidates_of_the_same_customer_journey_and_step_within_the_window_are_bundled():
    later = Row("e3", due_at=NOW + timedelta(hours=20))
    same = Row("e2")
    assert bundled_with(CARRIER, [later, same], DAY, NOW) == [same, later]


@pytest.mark.parametrize(
    "other",
    [
        Row("e1"),  # the carrier's own enrolment
        Row("e2", customer_id="c2"),
        Row("e2", journey_id="extended_warranty"),
        Row("e2", step="reminder"),
        Row("e2", due_at=NOW + DAY + timedelta(seconds=1)),
        Row("e2", due_at=NOW - DAY - timedelta(seconds=1)),
        Row("e2", expires_at=NOW),
    ],
)
def test_anything_else_is_left_alone(other):
    assert bundled_with(CARRIER, [other], DAY, NOW) == []


def test_the_window_is_inclusive_and_the_caller_may_refuse_a_candidate():
    edge = Row("e2", due_at=NOW + DAY)
    assert bundled_with(CARRIER, [edge], DAY, NOW) == [edge]
    assert bundled_with(CARRIER, [edge], DAY, NOW, eligible=lambda r: False) == []


JOURNEY = """id: j
trigger: {event: purchase, for_each: item}
bundle_within: %s
steps:
  - id: one
    send: {channel: email, template: thank_you}
"""


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("soon", "'soon' is not a duration; write e.g. 30m"),
        ("-2h", "'-2h' must not be negative"),
        ("24", "24 is a bare number: add a unit, e.g. 24d"),
        ("1x", "'x' in '1x' is not a unit"),
        ("1 month", "months and years have no fixed length here"),
    ],
)
def test_a_bad_bundle_within_is_refused_with_line_and_reason(value, said):
    journey, problems = parse_journey(JOURNEY % value, "j.yaml")
    assert journey is None
    [problem] = problems
    assert str(problem).startswith("j.yaml:3: error: bundle_within:")
    assert said in problem.message


def test_bundle_within_defaults_to_a_day_and_zero_switches_it_off():
    default, _ = parse_journey((JOURNEY % "24h").replace("bundle_within: 24h\n", ""), "j.yaml")
    assert default is not None and default.bundle_window == DAY
    off, _ = parse_journey(JOURNEY % "0m", "j.yaml")
    assert off is not None and off.bundle_window is None
    per_order, _ = parse_journey((JOURNEY % "2d").replace(", for_each: item", ""), "j.yaml")
    assert per_order is not None and per_order.bundle_window is None


def test_a_journey_without_the_setting_keeps_its_digest():
    # As before the setting existed: running projects store no new version of a journey.
    # (The file as it was before it named its topic: neither setting changes the digest.)
    source = (BUILTIN_DIR / "extended_warranty.yaml").read_text(encoding="utf-8")
    warranty, _ = parse_journey(source.replace("topic: offers\n", ""), "extended_warranty.yaml")
    assert warranty is not None
    assert warranty.digest() == "dd10e9e292fd5eda"  # a per-item journey, unchanged since
    with_default, _ = parse_journey((JOURNEY % "24h").replace("bundle_within: 24h\n", ""), "j")
    explicit, _ = parse_journey(JOURNEY % "24h", "j")
    assert with_default is not None and explicit is not None
    assert with_default.digest() != explicit.digest()

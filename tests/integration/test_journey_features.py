"""What a journey definition decides: trigger and audience conditions over customer
attributes, step conditions at send time, and versions when a journey is edited."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from aftersale.app import Project
from campaigns.models import Enrollment, JourneyVersion
from tests.conftest import Harness, purchase, utc

enrollments_t = Enrollment.__table__
versions_t = JourneyVersion.__table__
BOUGHT = "2026-01-07T10:00:00+01:00"  # a Wednesday, 09:00 UTC

STEPS = """
steps:
  - id: hello
    wait: 1d
    send: {channel: email, template: thank_you, category: transactional}
  - id: club_offer
    wait: 2d
    condition: "customer.club == 'gold' and customer.email_consent"
    send: {channel: email, template: loyalty_offer, category: marketing}
"""
SEGMENT = (
    """
id: segment
name: Berlin regulars over thirty
trigger:
  event: purchase
  condition: "order.total > 100"
audience: >-
  customer.city == 'Berlin' and customer.age is not none and customer.age >= 30
  and customer.postal_code.startswith('10') and customer.club == 'gold'
"""
    + STEPS
)
EVERYONE = "id: segment\nname: Every buyer\ntrigger: {event: purchase}\n" + STEPS
ONE_STEP = (
    "id: segment\nname: One step\ntrigger: {event: purchase}\n"
    + STEPS.split("  - id: club_offer")[0]
)


def customer(cid: str, city: str, birth_year: str, postal_code: str, club: str) -> dict:
    return {"id": cid, "email": f"{cid}@example.org", "city": city, "birth_year": birth_year,
            "postal_code": postal_code, "club": club}  # fmt: skip


def enrolled(h: Harness, journey: str) -> list[tuple]:
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(enrollments_t.c.customer_id, enrollments_t.c.order_id)
            .where(enrollments_t.c.journey_id == journey)
            .order_by(enrollments_t.c.customer_id, enrollments_t.c.order_id)
        )
        return [tuple(r) for r in rows]


@pytest.fixture
def with_journey(
    make_harness: Callable[..., Harness], database_url: str
) -> Iterator[Callable[[str], Harness]]:
    """A project whose only journey is the given definition, on each database."""
    made: list[Harness] = []

    def make(definition: str) -> Harness:
        journeys = {"segment.yaml": definition}
        made.append(make_harness(database_url=database_url, journeys=journeys,
                                 builtin_journeys=False))  # fmt: skip
        return made[-1]

    yield make
    for h in made:
        h.project.close()


def test_trigger_and_audience_conditions_segment_by_attributes(with_journey) -> None:
    h = with_journey(SEGMENT)
    h.customers([
        customer("c1", "Berlin", "1980", "10115", "gold"),
        customer("c2", "Hamburg", "1980", "20095", "gold"),  # another city
        customer("c3", "Berlin", "2004", "10115", "gold"),  # 22 in 2026
        customer("c4", "Berlin", "1980", "10115", "silver"),  # another custom attribute
        customer("c5", "Berlin", "1980", "14467", "gold"),  # Potsdam's postal code
        customer("c6", "Berlin", "", "10115", "gold"),  # no birth year: no age
    ])  # fmt: skip
    h.events(
        [purchase(f"e{n}", f"c{n}", BOUGHT, f"o{n}") for n in range(1, 7)]
        + [purchase("e7", "c1", BOUGHT, "o7", total="50.00")]  # too small to trigger
    )
    h.simulate(utc("2026-01-07T12:00:00"), start=utc("2026-01-07T08:00:00"))
    assert enrolled(h, "segment") == [("c1", "o1")]


def test_a_step_condition_is_checked_when_the_message_is_due(with_journey) -> None:
    h = with_journey(EVERYONE)
    h.customers([customer("c1", "Berlin", "1980", "10115", "gold"),
                 customer("c4", "Berlin", "1980", "10115", "silver")])  # fmt: skip
    h.events([purchase("e1", "c1", BOUGHT, "o1"), purchase("e4", "c4", BOUGHT, "o4")])
    h.simulate(utc("2026-01-07T12:00:00"), start=utc("2026-01-07T08:00:00"))
    # c4 becomes gold after enrolling: the condition is read when the offer is due.
    h.customers([customer("c4", "Berlin", "1980", "10115", "gold"),
                 customer("c1", "Berlin", "1980", "10115", "silver")])  # fmt: skip
    h.simulate(utc("2026-01-12T00:00:00"))
    offers = {m.customer_id: (m.status, m.reason) for m in h.messages(step="club_offer")}
    assert offers == {"c1": ("skipped", "condition:club_offer"), "c4": ("sent", None)}


def test_editing_a_journey_adds_a_version_and_running_enrolments_keep_theirs(
    with_journey,
) -> None:
    h = with_journey(ONE_STEP)
    h.customers([customer("c1", "Berlin", "1980", "10115", "gold"),
                 customer("c2", "Berlin", "1980", "10115", "gold")])  # fmt: skip
    h.events([purchase("e1", "c1", BOUGHT, "o1")])
    h.simulate(utc("2026-01-07T12:00:00"), start=utc("2026-01-07T08:00:00"))
    h.project.close()

    # The marketer edits the wait; the project is opened again, as by the next command.
    (h.directory / "journeys" / "segment.yaml").write_text(
        ONE_STEP.replace("wait: 1d", "wait: 3d"), encoding="utf-8"
    )
    h.project = Project.open(h.directory, **_same_database(h))
    h.project.channel_overrides = {"email": h.email, "sms": h.sms}
    h.events([purchase("e2", "c2", "2026-01-07T13:00:00+01:00", "o2")])
    h.simulate(utc("2026-01-07T13:00:00"))
    first, second = (h.messages(customer_id=c)[0] for c in ("c1", "c2"))
    with h.project.db.connect() as conn:
        versions = conn.execute(
            sa.select(versions_t.c.version).where(versions_t.c.journey_id == "segment")
        ).scalars()
        versions = sorted(versions)
    assert versions == [1, 2]
    assert (first.journey_version, first.due_at - utc("2026-01-07T09:00:00")) == (
        1,
        timedelta(days=1),
    )
    assert (second.journey_version, second.due_at - utc("2026-01-07T12:00:00")) == (
        2,
        timedelta(days=3),
    )


def _same_database(h: Harness) -> dict:
    url = h.project.settings.database_url
    return {"database_url": url} if url else {}

"""Who is enrolled and what ends an enrolment: pausing, re-entry, warranty extensions, the
warranty's end. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from aftersale.app import Project
from aftersale.stats import set_paused
from campaigns.models import Enrollment
from scheduler.clock import SimulatedClock
from tests.conftest import Harness, item, purchase, utc

enrollments_t = Enrollment.__table__
ANNA = {"id": "c1", "email": "anna@example.com", "phone": "+4915112345678", "first_name": "Anna",
        "last_name": "Muster", "timezone": "Europe/Berlin", "sms_consent": "yes"}  # fmt: skip


def enrolments(h: Harness, journey: str) -> list[tuple]:
    e = enrollments_t.c
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(e.order_id, e.item_position, e.status, e.reason)
            .where(e.journey_id == journey)
            .order_by(e.order_id, e.item_position)
        )
        return [tuple(r) for r in rows]


def test_pausing_in_the_console_holds_new_purchases_in_a_running_dispatcher(harness):
    harness.customers([ANNA])
    clock = SimulatedClock(utc("2026-03-02T09:00:00"))
    dispatcher = harness.project.dispatcher(clock)  # started before the journey is paused
    console = Project.open(harness.directory, database_url=str(harness.project.db.url))
    try:
        with console.db.begin() as conn:
            assert set_paused(conn, "loyalty_offer", True)
        harness.events([purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item())])
        dispatcher.apply_due_events(clock.now())
        assert enrolments(harness, "loyalty_offer") == []
        assert len(enrolments(harness, "thank_you")) == 1
        with console.db.begin() as conn:
            assert set_paused(conn, "loyalty_offer", False)
        harness.events([purchase("e2", "c1", "2026-03-02T10:00:00+01:00", "o2", item())])
        dispatcher.apply_due_events(clock.now())
        assert [r[0] for r in enrolments(harness, "loyalty_offer")] == ["o2"]
    finally:
        dispatcher.close()
        console.close()


WARRANTIES = [item("WM-1", warranty_months=24), item("GS-2", warranty_months=24)]


@pytest.mark.parametrize(
    ("extension", "still_active"),
    [
        ({"order": "o1", "sku": "WM-1"}, [("o1", 1), ("o2", 0), ("o2", 1)]),
        ({"order": "o1"}, [("o2", 0), ("o2", 1)]),
    ],
    ids=["item", "order"],
)
def test_what_a_warranty_extension_ends(harness, extension, still_active):
    harness.customers([ANNA])
    harness.events(
        [
            purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", *WARRANTIES),
            purchase("e2", "c1", "2026-03-02T11:00:00+01:00", "o2", *WARRANTIES),
            {"id": "e3", "type": "warranty_extended", "customer": "c1",
             "at": "2026-03-03T10:00:00+01:00", **extension},
        ]
    )  # fmt: skip
    harness.simulate(utc("2026-03-04T00:00:00"), start=utc("2026-03-02T08:00:00"))
    rows = enrolments(harness, "extended_warranty")
    assert [(o, p) for o, p, status, _ in rows if status == "active"] == still_active
    ended = [r for r in rows if r[2] != "active"]
    assert {(status, reason) for _, _, status, reason in ended} <= {
        ("exited", "journey_exit:warranty_extended")
    }
    assert len(ended) == 4 - len(still_active)


def test_a_warranty_extension_names_its_order(harness):
    harness.customers([ANNA])
    extension = {"id": "e1", "type": "warranty_extended", "customer": "c1", "sku": "WM-1",
                 "at": "2026-03-03T10:00:00+01:00"}  # fmt: skip
    assert not harness.events([extension]).ok


LEAVING = """
id: leaving
name: Until the customer moves abroad
trigger: {event: purchase}
exit: {events: [moved_abroad]}
steps:
  - id: hello
    wait: 30d
    send: {channel: email, template: loyalty_offer, category: marketing}
"""


def test_an_exit_event_without_an_order_ends_the_customers_enrolments(make_harness, database_url):
    h = make_harness(database_url=database_url, journeys={"leaving.yaml": LEAVING},
                     builtin_journeys=False)  # fmt: skip
    try:
        h.customers([ANNA, {**ANNA, "id": "c2", "email": "bob@example.com", "phone": ""}])
        h.events(
            [
                purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item()),
                purchase("e2", "c1", "2026-03-03T10:00:00+01:00", "o2", item()),
                purchase("e3", "c2", "2026-03-03T10:00:00+01:00", "o3", item()),
                {"id": "e4", "type": "moved_abroad", "customer": "c1",
                 "at": "2026-03-05T10:00:00+01:00"},
            ]
        )  # fmt: skip
        h.simulate(utc("2026-03-06T00:00:00"), start=utc("2026-03-02T08:00:00"))
        assert [r[:3] for r in enrolments(h, "leaving")] == [
            ("o1", None, "exited"),
            ("o2", None, "exited"),
            ("o3", None, "active"),
        ]
    finally:
        h.project.close()


PER_ITEM = """
id: per_item
name: Per item
trigger: {{event: purchase, for_each: item}}
reentry: {reentry}
steps:
  - id: hello
    wait: 1d
    send: {{channel: email, template: loyalty_offer, category: marketing}}
"""


@pytest.fixture
def per_item(
    make_harness: Callable[..., Harness], database_url: str
) -> Iterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def make(reentry: str) -> Harness:
        journeys = {"per_item.yaml": PER_ITEM.format(reentry=reentry)}
        made.append(make_harness(database_url=database_url, journeys=journeys,
                                 builtin_journeys=False))  # fmt: skip
        return made[-1]

    yield make
    for h in made:
        h.project.close()


@pytest.mark.parametrize(
    ("reentry", "expected"),
    [
        ("once", [("o1", 0)]),
        ("once_per_order", [("o1", 0), ("o2", 0)]),
        ("once_per_item", [("o1", 0), ("o1", 1), ("o2", 0), ("o2", 1)]),
    ],
)
def test_reentry_on_a_per_item_journey(per_item, reentry, expected):
    h = per_item(reentry)
    h.customers([ANNA])
    h.events(
        [
            purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item("A"), item("B")),
            purchase("e2", "c1", "2026-03-09T10:00:00+01:00", "o2", item("A"), item("B")),
        ]
    )
    h.simulate(utc("2026-03-20T00:00:00"), start=utc("2026-03-02T08:00:00"))
    assert [(o, p) for o, p, _, _ in enrolments(h, "per_item")] == expected
    assert len(h.messages(journey_id="per_item")) == len(expected)


@pytest.mark.parametrize(
    ("timezone", "warranty_end"),
    [("Europe/Berlin", "2026-07-31T22:30:00"), ("", "2026-07-31T22:30:00"),
     ("America/New_York", "2026-07-30T22:30:00")],
)  # fmt: skip
def test_the_warranty_ends_by_the_customers_calendar(harness, timezone, warranty_end):
    """Bought on 1 May at 00:30 in Berlin (30 April in UTC and in New York): three months'
    warranty end on 1 August for a Berlin customer (or one in the shop's default zone,
    Berlin), on 30 July in New York's calendar."""
    harness.customers([{**ANNA, "timezone": timezone}])
    bought = "2026-05-01T00:30:00+02:00"
    harness.events([purchase("e1", "c1", bought, "o1", item(warranty_months=3))])
    harness.simulate(utc("2026-05-02T00:00:00"), start=utc("2026-04-30T22:00:00"))
    [offer] = harness.messages(journey_id="extended_warranty", step="offer_email")
    assert offer.expires_at == utc(warranty_end)

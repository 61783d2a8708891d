"""An enrolment plans one message at a time and follows its timetable as each one ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from campaigns.engine import from_micros
from campaigns.models import Enrollment, Message, Purchase
from scheduler.clock import SimulatedClock
from tests.conftest import item, purchase, utc

ANNA = {"id": "c1", "email": "anna@example.com", "phone": "+4915112345678", "first_name": "Anna",
        "timezone": "Europe/Berlin", "sms_consent": "yes"}  # fmt: skip
BOUGHT = "2026-01-07T10:00:00+01:00"  # a Wednesday, 09:00 UTC; 90 days on is a Tuesday
EXTENDED = {"id": "e2", "type": "warranty_extended", "customer": "c1",
            "at": "2026-03-01T10:00:00+01:00", "order": "o1"}  # fmt: skip
enrollments_t = Enrollment.__table__
messages_t = Message.__table__


def inspection(h):
    return h.messages(journey_id="inspection_invitation", customer_id="c1")


def timetable(h, journey_id):
    with h.project.db.connect() as conn:
        return conn.execute(
            sa.select(enrollments_t.c.schedule).where(enrollments_t.c.journey_id == journey_id)
        ).scalar_one()


def test_only_the_next_message_is_planned_and_the_timetable_is_in_due_order(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-01-07T09:30:00"))

    [invite] = inspection(harness)
    assert (invite.step, invite.occurrence, invite.status) == ("invite", 1, "planned")
    assert invite.due_at == utc("2026-04-07T09:00:00")
    entries = timetable(harness, "inspection_invitation")
    # Invitation and its SMS reminder three days later, alternating through the year.
    assert [(step, k) for step, k, _, _ in entries] == [
        (step, k) for k in range(1, 5) for step in ("invite", "reminder")
    ]
    dues = [from_micros(due) for _, _, due, _ in entries]
    assert dues == sorted(dues)
    assert dues[1] - dues[0] == timedelta(days=3)


def test_each_message_that_ends_plans_the_next_one(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-04-09T00:00:00"))  # the first invitation has gone out

    [invite, reminder] = inspection(harness)
    assert (invite.step, invite.status) == ("invite", "sent")
    assert (reminder.step, reminder.occurrence, reminder.status) == ("reminder", 1, "planned")
    assert reminder.due_at == utc("2026-04-10T09:00:00")
    assert reminder.planned_at == invite.sent_at

    harness.simulate(utc("2027-02-01T00:00:00"))
    assert [(m.step, m.occurrence, m.status) for m in inspection(harness)] == [
        (step, k, "sent") for k in range(1, 5) for step in ("invite", "reminder")
    ]


def test_a_skipped_message_still_plans_the_next(harness):
    harness.customers([{**ANNA, "sms_consent": "no"}])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=120))])
    harness.simulate(utc("2027-02-01T00:00:00"))

    messages = inspection(harness)
    assert [(m.step, m.status, m.reason) for m in messages] == [
        ("invite", "sent", None),
        ("reminder", "skipped", "no_consent:sms"),
    ] * 3


def test_an_exit_cancels_the_planned_message_and_plans_nothing_more(harness):
    harness.customers([ANNA])
    harness.events(
        [
            purchase("e1", "c1", BOUGHT, "o1", item(warranty_months=6)),
            EXTENDED,
        ]
    )
    harness.simulate(utc("2026-12-01T00:00:00"))

    offers = harness.messages(journey_id="extended_warranty")
    assert [(m.step, m.status, m.reason) for m in offers] == [
        ("offer_email", "cancelled", "journey_exit:warranty_extended")
    ]
    assert len(timetable(harness, "extended_warranty")) == 2  # the SMS was never planned


def test_a_message_whose_lease_ran_out_plans_the_next(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-01-07T09:30:00"))
    [invite] = inspection(harness)
    crashed_at = utc("2026-04-07T09:00:00")
    with harness.project.db.begin() as conn:  # a dispatcher died mid-send
        conn.execute(
            messages_t.update()
            .where(messages_t.c.id == invite.id)
            .values(
                status="sending",
                sent_at=crashed_at,
                lease_until=crashed_at,
                handed_over_at=crashed_at,  # it may have reached the provider
            )
        )
    dispatcher = harness.project.dispatcher(SimulatedClock(crashed_at + timedelta(hours=1)))
    try:
        assert dispatcher.expire_leases(crashed_at + timedelta(hours=1)) == 1
    finally:
        dispatcher.close()

    [unknown, reminder] = inspection(harness)
    assert (unknown.status, unknown.reason) == ("unknown", "lease_expired")
    assert (reminder.step, reminder.occurrence, reminder.status) == ("reminder", 1, "planned")


def test_planning_the_next_message_twice_plans_it_once(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-04-09T00:00:00"))
    [invite, _] = inspection(harness)
    later = utc("2026-04-09T00:00:00")

    with harness.project.db.begin() as conn:
        again = harness.project.journeys.plan_next(conn, [invite, invite], later)

    assert again == 2  # both asked for the same row; the unique key kept one
    assert [(m.step, m.occurrence) for m in inspection(harness)] == [
        ("invite", 1),
        ("reminder", 1),
    ]


def enrolment_states(h):
    e = enrollments_t.c
    with h.project.db.connect() as conn:
        rows = conn.execute(sa.select(e.journey_id, e.status, e.reason, e.ended_at)).all()
    return {r.journey_id: (r.status, r.reason, r.ended_at) for r in rows}


def test_an_enrolment_completes_when_its_last_message_ends(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-04-09T00:00:00"))  # thank-you and loyalty sent, one invitation

    states = enrolment_states(harness)
    [thanks] = harness.messages(journey_id="thank_you")
    assert states["thank_you"] == ("completed", None, thanks.sent_at)
    assert states["inspection_invitation"][0] == "active"  # its reminder is planned

    harness.simulate(utc("2027-02-01T00:00:00"))
    last = inspection(harness)[-1]
    assert (last.step, last.occurrence, last.status) == ("reminder", 4, "sent")
    assert enrolment_states(harness)["inspection_invitation"] == ("completed", None, last.sent_at)


def test_a_skipped_last_message_completes_too_and_an_exit_is_no_completion(harness):
    harness.customers([{**ANNA, "sms_consent": "no"}])
    harness.events(
        [
            purchase("e1", "c1", BOUGHT, "o1", item(warranty_months=6)),
            EXTENDED,
            purchase("e3", "c1", "2026-09-01T10:00:00+02:00", "o3", item(warranty_months=6)),
        ]  # fmt: skip
    )
    harness.simulate(utc("2027-06-01T00:00:00"))

    e = enrollments_t.c
    with harness.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(e.order_id, e.status, e.reason).where(e.journey_id == "extended_warranty")
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("o1", "exited", "journey_exit:warranty_extended"),
        ("o3", "completed", None),  # its SMS was skipped for want of consent
    ]
    offers = harness.messages(journey_id="extended_warranty", order_id="o3")
    assert [(m.step, m.status) for m in offers] == [
        ("offer_email", "sent"),
        ("reminder_sms", "skipped"),
    ]


def test_an_enrolment_with_messages_still_planned_does_not_complete(harness):
    """Enrolments from before timetables planned all their rows at once."""
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-04-09T00:00:00"))
    [invite, reminder] = inspection(harness)
    e = enrollments_t.c
    with harness.project.db.begin() as conn:  # as an old enrolment: no timetable
        conn.execute(
            enrollments_t.update().where(e.id == invite.enrollment_id).values(schedule=None)
        )
        conn.execute(
            enrollments_t.update().where(e.id == invite.enrollment_id).values(status="active")
        )
        harness.project.journeys.plan_next(conn, [invite], utc("2026-04-09T00:00:00"))
    assert enrolment_states(harness)["inspection_invitation"][0] == "active"

    with harness.project.db.begin() as conn:
        conn.execute(messages_t.update().where(messages_t.c.id == reminder.id).values(
            status="sent"))  # fmt: skip
        harness.project.journeys.plan_next(conn, [reminder], utc("2026-04-11T00:00:00"))
    assert enrolment_states(harness)["inspection_invitation"] == (
        "completed", None, utc("2026-04-11T00:00:00"))  # fmt: skip


def test_the_bulk_insert_stores_what_sqlalchemy_would(sqlite_harness):
    """Planned rows skip SQLAlchemy's parameter handling on SQLite; what they store must be
    the same text, or comparisons between times written both ways would go wrong."""
    from zoneinfo import ZoneInfo

    from campaigns.engine import _insert_ignore

    berlin = ZoneInfo("Europe/Berlin")
    row = {"id": "o1", "customer_id": "c1", "event_id": None, "total": "1", "currency": "EUR"}
    times = [
        utc("2026-03-02T09:00:00"),
        utc("2026-03-02T09:00:00").replace(microsecond=7),
        utc("2026-10-25T00:30:00").astimezone(berlin),  # the second 02:30 of the DST change
    ]
    raw = sa.text("SELECT id, purchased_at, returned_at FROM purchases ORDER BY id")
    with sqlite_harness.project.db.begin() as conn:
        for n, moment in enumerate(times):
            bulk = {**row, "id": f"bulk{n}", "purchased_at": moment, "returned_at": None}
            _insert_ignore(conn, Purchase.__table__, [bulk], ["id"])
            conn.execute(Purchase.__table__.insert(), {**bulk, "id": f"orm{n}"})
        stored = {r.id: (r.purchased_at, r.returned_at) for r in conn.execute(raw)}
    for n in range(len(times)):
        assert stored[f"bulk{n}"] == stored[f"orm{n}"]
    assert stored["bulk0"] == ("2026-03-02 09:00:00.000000", None)
    assert stored["bulk1"] == ("2026-03-02 09:00:00.000007", None)
    assert stored["bulk2"] == ("2026-10-25 00:30:00.000000", None)


WELCOME = """
id: welcome
name: Welcome
trigger:
  event: purchase
{reentry}
steps:
  - id: hello
    wait: 1h
    send: {{channel: email, template: thank_you, category: transactional}}
"""


@pytest.mark.parametrize(
    ("reentry", "same_instant", "expected"),
    [
        ("reentry: once", True, [("e1", "o1")]),
        ("reentry: once", False, [("e1", "o1")]),
        ("", True, [("e1", "o1"), ("e3", "o2")]),  # once per order, the default
        ("", False, [("e1", "o1"), ("e3", "o2")]),
        ("reentry: always", True, [("e1", "o1"), ("e2", "o1"), ("e3", "o2")]),
    ],
)
def test_reentry_decides_how_often_a_customer_enrols_and_the_first_event_wins(
    make_harness, database_url, reentry, same_instant, expected
):
    """e1 and e2 are two purchase events of one order (a shop sent it twice), e3 another
    order; applied in one batch (same instant) or one after the other."""
    h = make_harness(
        database_url=database_url,
        journeys={"welcome.yaml": WELCOME.format(reentry=reentry)},
        builtin_journeys=False,
    )
    try:
        h.customers([ANNA])
        at = ["2026-01-07T10:00:00+01:00"] * 3
        if not same_instant:
            at = ["2026-01-07T10:00:00+01:00", "2026-01-08T10:00:00+01:00",
                  "2026-01-09T10:00:00+01:00"]  # fmt: skip
        h.events([purchase("e1", "c1", at[0], "o1"), purchase("e2", "c1", at[1], "o1"),
                  purchase("e3", "c1", at[2], "o2")])  # fmt: skip
        h.simulate(utc("2026-01-07T09:30:00"), start=utc("2026-01-07T08:00:00"))
        h.simulate(utc("2026-01-10T00:00:00"))
        with h.project.db.connect() as conn:
            enrolments = conn.execute(
                sa.select(enrollments_t.c.trigger_event_id, enrollments_t.c.order_id)
                .where(enrollments_t.c.journey_id == "welcome")
                .order_by(enrollments_t.c.trigger_event_id)
            ).all()
        messages = h.messages(journey_id="welcome")
    finally:
        h.project.close()
    assert [tuple(e) for e in enrolments] == expected
    assert len(messages) == len(expected)

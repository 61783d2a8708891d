"""The simulation and the tick do only what is due: no dispatch round for an instant with
only an event, no second claim after a short one, leases still expired when one runs out."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import sqlalchemy as sa

from campaigns.models import Message
from scheduler.clock import SimulatedClock
from scheduler.simulation import simulate
from tests.conftest import item, purchase, utc

ANNA = {"id": "c1", "email": "anna@example.com", "first_name": "Anna"}
BOUGHT = "2026-01-07T10:00:00+01:00"  # a Wednesday, 09:00 UTC
messages_t = Message.__table__


def counting(dispatcher, name):
    calls = []
    original = getattr(dispatcher, name)

    def wrapper(*args, **kwargs):
        calls.append(dispatcher.clock.now())
        return original(*args, **kwargs)

    setattr(dispatcher, name, wrapper)
    return calls


def test_upcoming_names_the_next_message_event_and_lease(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item())])
    dispatcher = harness.project.dispatcher(SimulatedClock(utc("2026-01-01T00:00:00")))
    try:
        assert dispatcher.upcoming() == (None, utc("2026-01-07T09:00:00"), None)
        dispatcher.clock.advance_to(utc("2026-01-07T09:00:00"))
        dispatcher.apply_due_events(dispatcher.clock.now())
        message_at, event_at, lease_at = dispatcher.upcoming()
        [thanks] = harness.messages(journey_id="thank_you")
        assert (message_at, event_at, lease_at) == (thanks.due_at, None, None)
        with harness.project.db.begin() as conn:
            conn.execute(
                messages_t.update()
                .where(messages_t.c.id == thanks.id)
                .values(status="sending", lease_until=utc("2026-01-07T11:00:00"))
            )
        assert dispatcher.upcoming()[2] == utc("2026-01-07T11:00:00")
        assert dispatcher.next_due() == min(
            m.due_at for m in harness.messages() if m.status == "planned"
        )
    finally:
        dispatcher.close()


def test_an_instant_with_only_an_event_runs_no_dispatch_round(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item())])
    clock = SimulatedClock(utc("2026-01-01T00:00:00"))
    dispatcher = harness.project.dispatcher(clock)
    claims = counting(dispatcher, "_reserve_tx")
    try:
        simulate(dispatcher, clock, utc("2026-01-08T00:00:00"))
    finally:
        dispatcher.close()

    [thanks] = harness.messages(journey_id="thank_you")
    assert thanks.status == "sent"
    # The first tick at the start, then the thank-you's due time; the purchase's own
    # instant only applied the event.
    assert claims == [utc("2026-01-01T00:00:00"), thanks.sent_at]
    assert thanks.sent_at > utc("2026-01-07T09:00:00")


def test_a_short_claim_ends_the_tick_and_a_full_one_claims_again(harness):
    harness.customers([{**ANNA, "id": f"c{n}", "email": f"c{n}@example.com"} for n in range(3)])
    harness.events(
        [purchase(f"e{n}", f"c{n}", BOUGHT, f"o{n}", item()) for n in range(3)]
    )  # fmt: skip
    clock = SimulatedClock(utc("2026-01-07T09:00:00"))
    dispatcher = harness.project.dispatcher(clock)
    dispatcher.config = dataclasses.replace(dispatcher.config, batch_size=2)
    claims = counting(dispatcher, "_reserve_tx")
    try:
        dispatcher.tick()  # applies the purchases; nothing is due yet
        assert len(claims) == 1
        clock.advance_to(utc("2026-01-07T12:00:00"))
        stats = dispatcher.tick()
    finally:
        dispatcher.close()

    assert stats.sent == 3
    assert len(claims) == 1 + 2  # two, then one: short, so no third claim


def test_the_simulation_still_expires_a_lease_left_by_a_dead_dispatcher(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", BOUGHT, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2026-01-07T09:30:00"))
    [invite] = harness.messages(journey_id="inspection_invitation")
    crashed_at = invite.due_at
    with harness.project.db.begin() as conn:
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

    harness.simulate(crashed_at + timedelta(days=30))

    with harness.project.db.connect() as conn:
        status, reason = conn.execute(
            sa.select(messages_t.c.status, messages_t.c.reason).where(messages_t.c.id == invite.id)
        ).one()
    assert (status, reason) == ("unknown", "lease_expired")
    assert str(invite.id) not in {m.message_id for m in harness.email.sent}  # never re-sent
    [reminder] = harness.messages(journey_id="inspection_invitation", step="reminder")
    assert reminder.status in ("planned", "sent", "skipped")  # the timetable goes on

"""How the dispatcher applies a batch of events: bare while nothing fails, each event under
its own savepoint in a new transaction when one does (campaigns.engine.apply_due_events_in).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from campaigns.models import Event
from scheduler.clock import SimulatedClock
from tests.conftest import Harness, item, purchase, utc
from tests.integration.test_event_isolation import POISON, store_raw

events_t = Event.__table__
AT = "2026-01-05T10:00:00+01:00"
LATER = utc("2026-01-05T13:00:00")


@contextmanager
def statements(h: Harness) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement.split()[0].upper())

    sa.event.listen(h.project.db, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(h.project.db, "before_cursor_execute", record)


def shop(h: Harness) -> None:
    h.customers([{"id": "c1", "email": "anna@example.org"},
                 {"id": "c2", "email": "bob@example.org"}])  # fmt: skip
    h.events([purchase("g1", "c1", AT, "o-g1", item(warranty_months=24)),
              purchase("g2", "c2", AT, "o-g2", item())])  # fmt: skip


def applied(h: Harness) -> dict[str, tuple[bool, str | None]]:
    with h.project.db.connect() as conn:
        rows = conn.execute(sa.select(events_t.c.id, events_t.c.applied, events_t.c.error))
        return {r.id: (r.applied, r.error) for r in rows}


def test_a_clean_batch_goes_in_without_a_savepoint(harness: Harness) -> None:
    shop(harness)
    dispatcher = harness.project.dispatcher(SimulatedClock(LATER))
    try:
        with statements(harness) as seen:
            assert dispatcher.apply_due_events(LATER) == 2
    finally:
        dispatcher.close()
    assert "SAVEPOINT" not in seen and "INSERT" in seen
    assert applied(harness) == {"g1": (True, None), "g2": (True, None)}
    assert len(harness.messages(journey_id="thank_you")) == 2


def test_a_poison_event_sends_the_batch_round_again_each_event_on_its_own(
    harness: Harness,
) -> None:
    shop(harness)
    store_raw(harness, purchase("p", "c1", AT, "o-p", POISON["p-warranty"]))
    dispatcher = harness.project.dispatcher(SimulatedClock(LATER))
    try:
        with statements(harness) as seen:
            assert dispatcher.apply_due_events(LATER) == 3
    finally:
        dispatcher.close()
    assert seen.count("SAVEPOINT") == 3  # the second transaction: one per event
    result = applied(harness)
    assert result["g1"] == result["g2"] == (True, None)
    assert result["p"][0] and result["p"][1].startswith("error:")
    # The good events were planned once, in the second transaction; the first left nothing.
    assert sorted(m.customer_id for m in harness.messages(journey_id="thank_you")) == ["c1", "c2"]


def test_purchases_of_a_batch_go_in_together_around_other_events(harness: Harness) -> None:
    """A purchase, another customer's complaint, a third customer's purchase: one insert
    of purchases (each customer's events still in their order), the same outcome."""
    harness.customers([{"id": f"c{n}", "email": f"c{n}@example.org"} for n in (1, 2, 3)])
    harness.events([
        purchase("p1", "c1", "2026-01-05T10:00:00+01:00", "o1", item()),
        {"id": "k2", "type": "complaint_opened", "customer": "c2", "at": "2026-01-05T10:01:00+01:00"},
        purchase("p3", "c3", "2026-01-05T10:02:00+01:00", "o3", item()),
        {"id": "r1", "type": "return", "customer": "c1", "order": "o1",
         "at": "2026-01-05T10:03:00+01:00"},
    ])  # fmt: skip
    inserts: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT") and " purchases " in f"{statement} ":
            inserts.append(statement)

    dispatcher = harness.project.dispatcher(SimulatedClock(LATER))
    sa.event.listen(harness.project.db, "before_cursor_execute", record)
    try:
        assert dispatcher.apply_due_events(LATER) == 4
    finally:
        sa.event.remove(harness.project.db, "before_cursor_execute", record)
        dispatcher.close()
    assert len(inserts) == 1
    assert applied(harness) == dict.fromkeys(("p1", "k2", "p3", "r1"), (True, None))
    thanks = {m.customer_id: m.status for m in harness.messages(journey_id="thank_you")}
    assert thanks == {"c1": "cancelled", "c3": "planned"}  # c1's return came after its purchase

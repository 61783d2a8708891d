"""Batches of events applied one ahead on SQLite (campaigns.engine.Engine.apply_all_due_in):
a full batch reads the next one before it commits and plans its first purchases while it
commits. The outcome is the ordinary one, another connection's commit in between sends the
next batch back to reading, and a bad event still fails alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import campaigns.engine
from campaigns.models import Customer, Enrollment, Event, JourneyState, Message, NotEnrolled
from scheduler.clock import SimulatedClock
from tests.conftest import Harness, item, purchase, utc
from tests.integration.test_event_isolation import POISON, store_raw

LATER = utc("2026-01-06T12:00:00")
TABLES = (Customer, Enrollment, Event, Message, NotEnrolled)
WALL_CLOCK = {"created_at", "updated_at"}  # when the test imported the customers


def at(minute: int) -> str:
    return f"2026-01-05T10:{minute:02d}:00+01:00"


def busy_shop(h: Harness) -> None:
    """Several purchases per customer (some within one batch), a re-sent order, a return,
    a complaint, an unsubscription and an unknown customer, spread over batches of three."""
    h.customers([{"id": f"c{n}", "email": f"c{n}@example.org"} for n in range(1, 6)])
    h.events([
        purchase("e01", "c1", at(0), "o1", item(warranty_months=24)),
        purchase("e02", "c2", at(1), "o2", item(), total="120.00"),
        purchase("e03", "c1", at(2), "o3", item("VC-2", warranty_months=12)),
        purchase("e04", "c3", at(3), "o4", item()),
        purchase("e05", "c4", at(4), "o5", item(), item("VC-2")),
        purchase("e06", "c3", at(5), "o6", item("VC-2")),  # c3's second in this batch
        purchase("e07", "c2", at(6), "o2", item(), total="120.00"),  # the same order again
        purchase("e08", "c5", at(7), "o8", item()),
        {"id": "e09", "type": "return", "customer": "c4", "order": "o5", "at": at(8)},
        purchase("e10", "c1", at(9), "o10", item()),
        {"id": "e11", "type": "unsubscribed", "customer": "c5", "at": at(10), "channel": "email"},
        {"id": "e12", "type": "complaint_opened", "customer": "c3", "at": at(11), "order": "o4"},
        purchase("e14", "c5", at(13), "o14", item()),
    ])  # fmt: skip
    store_raw(h, purchase("e13", "c9", at(12), "o13", item()))  # nobody we know


def tables(h: Harness) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the application wrote, without surrogate ids and wall-clock times."""
    out = {}
    with h.project.db.connect() as conn:
        for model in TABLES:
            table = model.__table__
            columns = [
                c
                for c in table.c
                if c.name not in WALL_CLOCK and not (c.name == "id" and c.autoincrement is True)
            ]
            rows = conn.execute(sa.select(*columns)).all()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


@pytest.fixture
def holds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Each read-ahead batch's check whether it still holds."""
    seen: list[bool] = []
    check = campaigns.engine.Ahead.holds

    def counted(self: campaigns.engine.Ahead, conn: sa.Connection) -> bool:
        seen.append(check(self, conn))
        return seen[-1]

    monkeypatch.setattr(campaigns.engine.Ahead, "holds", counted)
    yield seen


def apply_all(h: Harness, limit: int, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("scheduler.dispatcher.EVENTS_BATCH", limit)
    dispatcher = h.project.dispatcher(SimulatedClock(LATER))
    try:
        return dispatcher.apply_due_events(LATER)
    finally:
        dispatcher.close()


def test_batches_applied_ahead_end_as_batches_applied_one_after_another(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch, holds: list[bool]
) -> None:
    ahead, plain = make_harness(), make_harness()
    for h in (ahead, plain):
        busy_shop(h)
    assert apply_all(ahead, 3, monkeypatch) == 14
    assert len(holds) == 4 and all(holds)  # batches 2 to 5 were read and planned ahead
    monkeypatch.setattr(campaigns.engine.Engine, "_read_ahead", lambda *args: None)
    assert apply_all(plain, 3, monkeypatch) == 14
    assert len(holds) == 4
    got, want = tables(ahead), tables(plain)
    assert got == want
    assert len(want["enrollments"]) > 10 and len(want["messages"]) > 10
    for h in (ahead, plain):
        h.project.close()


def test_a_commit_of_another_connection_between_batches_sends_the_next_back_to_reading(
    sqlite_harness: Harness, holds: list[bool]
) -> None:
    """The second batch was read ahead while the thank-you journey ran; the console paused
    it before that batch began: its purchase is held back, as the pause asks."""
    h = sqlite_harness
    h.customers([{"id": f"c{n}", "email": f"c{n}@example.org"} for n in range(1, 4)])
    h.events([purchase(f"e{n}", f"c{n}", at(n), f"o{n}", item()) for n in range(1, 4)])
    dispatcher = h.project.dispatcher(SimulatedClock(LATER))
    batches = dispatcher.journeys.apply_all_due_in(h.project.db, LATER, limit=2)
    try:
        first = next(batches)
        assert first.events == 2 and first.ahead is not None
        assert [r.id for r in first.ahead.rows] == ["e3"] and first.ahead.planned is not None
        journeys_t = JourneyState.__table__
        with h.project.db.begin() as conn:
            conn.execute(
                journeys_t.update()
                .where(journeys_t.c.journey_id == "thank_you")
                .values(paused=True)
            )
        assert [s.events for s in batches] == [1]
    finally:
        batches.close()
        dispatcher.close()
    assert holds == [False]
    thanked = {m.customer_id for m in h.messages(journey_id="thank_you")}
    assert thanked == {"c1", "c2"}
    with h.project.db.connect() as conn:
        held = conn.execute(
            sa.select(NotEnrolled.__table__.c.reason).where(
                NotEnrolled.__table__.c.event_id == "e3",
                NotEnrolled.__table__.c.journey_id == "thank_you",
            )
        ).scalar_one()
    assert held == "paused"


def test_a_bad_event_in_a_batch_read_ahead_fails_alone(
    sqlite_harness: Harness, monkeypatch: pytest.MonkeyPatch, holds: list[bool]
) -> None:
    """Its planning fails while the last batch commits: that batch is committed, and the
    bad one is read again and applied the ordinary way, the bad event set aside."""
    h = sqlite_harness
    h.customers([{"id": f"c{n}", "email": f"c{n}@example.org"} for n in range(1, 5)])
    h.events([purchase("g1", "c1", at(1), "o1", item()),
              purchase("g2", "c2", at(2), "o2", item())])  # fmt: skip
    store_raw(h, purchase("bad", "c3", at(3), "o3", POISON["p-warranty"]))
    h.events([purchase("g4", "c4", at(4), "o4", item())])
    assert apply_all(h, 2, monkeypatch) == 4
    assert holds == [True]  # read ahead, but not planned
    with h.project.db.connect() as conn:
        events = {r.id: r for r in conn.execute(sa.select(Event.__table__))}
    assert events["bad"].applied and events["bad"].error.startswith("error:")
    assert all(events[e].applied and events[e].error is None for e in ("g1", "g2", "g4"))
    thanked = {m.customer_id for m in h.messages(journey_id="thank_you")}
    assert thanked == {"c1", "c2", "c4"}

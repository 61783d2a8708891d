"""Priority decides a customer's one slot however the due messages fall into batches and
whichever dispatcher claims them: on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from campaigns.models import Message
from scheduler.clock import SimulatedClock
from scheduler.dispatcher import _lock_key
from tests.conftest import Harness, _reset_postgres, item, purchase, utc

messages_t = Message.__table__

# Three offers per purchase: the least important is due first, the most important last,
# all of them long due when the dispatcher comes; the cap leaves room for one a week.
OFFERS = {
    f"offer{n}.yaml": f"""
id: offer{n}
name: Offer {n}
trigger:
  event: purchase
steps:
  - id: offer
    wait: {n + 1}m
    send:
      channel: email
      template: loyalty_offer
      category: marketing
      priority: {n}
      expires_after: 30d
"""
    for n in range(3)
}

SMALL_BATCHES = """
secret_key = "test-secret-key"
public_url = "https://shop.example/after"
[dispatch]
batch_size = 2
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = ""
public_holidays = ""
[[policy.caps]]
channel = "email"
max = 1
per = "7d"
"""
BOUGHT = "2026-03-02T10:00:00+01:00"
LATER = utc("2026-03-03T12:00:00")


@pytest.fixture
def backlog(
    make_harness: Callable[..., Harness], database_url: str
) -> Iterator[Callable[[int], Harness]]:
    yield from _shops(make_harness, database_url)


@pytest.fixture
def pg_backlog(
    make_harness: Callable[..., Harness], postgres_server: str
) -> Iterator[Callable[[int], Harness]]:
    """Row and customer locks held by other dispatchers exist on PostgreSQL."""
    _reset_postgres(postgres_server)
    yield from _shops(make_harness, postgres_server)


def _shops(make_harness: Callable[..., Harness], database_url: str) -> Iterator[Callable]:
    made: list[Harness] = []

    def build(customers: int) -> Harness:
        h = make_harness(
            database_url=database_url,
            toml=SMALL_BATCHES,
            journeys=OFFERS,
            builtin_journeys=False,
        )
        h.customers([{"id": f"c{n}", "email": f"c{n}@example.com"} for n in range(customers)])
        h.events([purchase(f"e{n}", f"c{n}", BOUGHT, f"o{n}", item()) for n in range(customers)])
        made.append(h)
        return h

    yield build
    for h in made:
        h.project.close()


def winners(h: Harness) -> dict[str, str]:
    return {m.customer_id: m.journey_id for m in h.messages(status="sent")}


def test_priority_holds_across_a_backlog_larger_than_one_batch(backlog) -> None:
    # Nine due messages, batches of two: the first claim (by due time) holds only the
    # least important offers of two customers.
    h = backlog(3)
    h.simulate(LATER, start=LATER)
    assert winners(h) == {"c0": "offer2", "c1": "offer2", "c2": "offer2"}
    deferred = h.messages(status="planned")
    assert len(deferred) == 6
    assert {m.reason for m in deferred} == {"frequency_cap:email:1/7d"}


def _plan(h: Harness) -> None:
    """Apply the purchases, so the offers are planned but none decided yet."""
    journeys = h.project.journeys  # synchronised with the database in a transaction of its own
    with h.project.db.begin() as conn:
        journeys.apply_due_events(conn, LATER, limit=100)


def _tick(h: Harness) -> None:
    dispatcher = h.project.dispatcher(SimulatedClock(LATER))
    try:
        dispatcher.tick()
    finally:
        dispatcher.close()


def test_a_customer_whose_due_message_another_dispatcher_holds_waits(
    pg_backlog, postgres_server: str
) -> None:
    """Another dispatcher has claimed c0's most important offer and not yet decided it:
    this one leaves c0 alone rather than send the lesser offer in its place."""
    h = pg_backlog(2)
    _plan(h)
    other = sa.create_engine(postgres_server)
    try:
        with other.connect() as conn, conn.begin():
            held = conn.execute(
                sa.select(messages_t.c.id)
                .where(messages_t.c.customer_id == "c0", messages_t.c.journey_id == "offer2")
                .with_for_update()
            ).scalar_one()
            _tick(h)
            assert winners(h) == {"c1": "offer2"}
            assert {m.status for m in h.messages(customer_id="c0")} == {"planned"}
        _tick(h)  # the other dispatcher went away without deciding: now c0's turn
    finally:
        other.dispose()
    assert winners(h) == {"c0": "offer2", "c1": "offer2"}
    assert [m.status for m in h.messages(id=held)] == ["sent"]


def test_a_customer_another_dispatcher_is_deciding_is_left_to_it(
    pg_backlog, postgres_server: str
) -> None:
    """Another dispatcher holds c0's lock (it is deciding c0): this one does not wait for
    it and decides the others."""
    h = pg_backlog(2)
    _plan(h)
    other = sa.create_engine(postgres_server)
    try:
        with other.connect() as conn, conn.begin():
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key("c0"))))
            _tick(h)
            assert winners(h) == {"c1": "offer2"}
        _tick(h)
    finally:
        other.dispose()
    assert winners(h) == {"c0": "offer2", "c1": "offer2"}


def test_due_messages_are_decided_by_priority_then_due_time(backlog) -> None:
    h = backlog(1)
    _plan(h)
    due = sorted(h.messages(), key=lambda m: m.due_at)
    assert [m.journey_id for m in due] == ["offer0", "offer1", "offer2"]
    assert all(isinstance(m.due_at, datetime) and m.due_at <= LATER for m in due)
    _tick(h)
    assert winners(h) == {"c0": "offer2"}

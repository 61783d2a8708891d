"""Every send's outcome is recorded, whatever raced it: reports, lease expiry, withdrawals.

The races are staged by the channel itself: ``InMemoryChannel(fail_with=...)`` runs a
callable as each message reaches "the provider", and the callable does what another part
of the system would do at that moment (a webhook, the leader's lease expiry, an unsubscribe)
in a transaction of its own, before the send returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from campaigns import transitions
from campaigns.delivery import apply_delivery_events, set_consent, suppress
from campaigns.engine import end_enrollments
from campaigns.models import Customer, Enrollment, Message, MessageDecision, Suppression
from campaigns.transitions import MOVES, allowed, sources
from channels import (
    DeliveryEvent,
    EventType,
    OutgoingMessage,
    PermanentChannelError,
    RecipientOptedOut,
    TransientChannelError,
)
from channels.memory import InMemoryChannel
from scheduler.clock import SimulatedClock
from scheduler.dispatcher import is_connection_fault
from scheduler.handoff import TableJournal
from tests.conftest import Harness, _reset_postgres, item, purchase, utc
from tests.integration.test_webhooks import sold

messages_t = Message.__table__
decisions_t = MessageDecision.__table__
OFFERS = """
id: offer
name: One offer
trigger:
  event: purchase
steps:
  - id: offer
    wait: 1m
    send: {channel: email, template: loyalty_offer, category: marketing, expires_after: 30d}
"""
PLAIN_TOML = """
secret_key = "test-secret-key"
[dispatch]
workers = 1
[policy]
quiet_hours = ""
public_holidays = ""
"""
BOUGHT = "2026-03-02T10:00:00+01:00"


def history(h: Harness, message_id: int) -> list[tuple[str, str | None]]:
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(decisions_t.c.action, decisions_t.c.reason)
            .where(decisions_t.c.message_id == message_id)
            .order_by(decisions_t.c.id)
        )
        return [tuple(r) for r in rows]


@pytest.fixture
def shop(make_harness: Callable[..., Harness], database_url: str) -> Iterator[Harness]:
    """Two customers with a marketing offer each, due a minute after their purchase."""
    h = make_harness(
        database_url=database_url,
        toml=PLAIN_TOML,
        journeys={"offer.yaml": OFFERS},
        builtin_journeys=False,
    )
    h.customers(
        [{"id": "c1", "email": "anna@example.org"}, {"id": "c2", "email": "ben@example.org"}]
    )
    h.events(
        [purchase("e1", "c1", BOUGHT, "o1", item()), purchase("e2", "c2", BOUGHT, "o2", item())]
    )
    yield h
    h.project.close()


def test_the_table_only_moves_forward() -> None:
    assert sources("sending") == ("planned",), "only a planned message is reserved"
    assert sources("planned") == ("planned", "sending"), "only an unsent one goes back"
    for done in ("unknown", "sent", "delivered", "bounced", "failed", "skipped", "cancelled"):
        assert not allowed(done, "planned") and not allowed(done, "sending")
    assert not allowed("delivered", "sent") and not allowed("sent", "unknown")
    assert allowed("unknown", "sent") and allowed("sending", "delivered")
    for final in ("skipped", "cancelled", "failed", "bounced"):
        assert MOVES[final] == frozenset()
    assert set(sources("sent")) == {"sending", "unknown"}


def test_moves_take_their_messages_in_the_order_of_ids(monkeypatch) -> None:
    """Two statements that change many messages (a batch's record, another dispatcher's
    journalled hand-off) take rows in one order, so on PostgreSQL they wait, not deadlock."""
    sent: list[list[int]] = []
    monkeypatch.setattr(
        transitions, "executemany", lambda _c, _s, rows: sent.append([r["_id"] for r in rows])
    )
    rows = [{"_id": i, "reason": None} for i in (9, 2, 7)] + [{"_id": 5, "sent_at": None}]
    transitions.move(None, "sent", rows, utc("2026-01-01 00:00"))
    assert sorted(sent) == [[2, 7, 9], [5]]


@pytest.mark.parametrize("to", ["planned", "skipped"])
def test_a_message_planned_again_or_skipped_has_no_send_time(shop: Harness, to: str) -> None:
    """Claims and bundle candidates find planned and skipped messages at ``sent_at IS
    NULL``: every move to either clears it, whether the caller names it or not."""
    sold(shop)
    shop.simulate(utc("2026-01-05T12:00:00"))
    message = shop.messages(status="planned")[0]
    now = utc("2026-03-03 09:00")
    with shop.project.db.begin() as conn:
        for statement in ("status = 'sending', sent_at = :t", "sent_at = :t"):
            conn.execute(
                sa.text("UPDATE messages SET status = 'planned' WHERE id = :i"),
                {"i": message.id},
            )
            conn.execute(
                sa.text(f"UPDATE messages SET {statement} WHERE id = :i"),
                {"t": now - timedelta(hours=1), "i": message.id},
            )
            transitions.move(conn, to, [{"_id": message.id, "reason": None}], now)
            status, sent_at = conn.execute(
                sa.text("SELECT status, sent_at FROM messages WHERE id = :i"), {"i": message.id}
            ).one()
            assert (status, sent_at) == (to, None), statement


# ------------------------------------------------------------ report before record


def test_a_delivery_report_before_the_record_keeps_provider_id_and_links(
    harness: Harness,
) -> None:
    h = harness

    def delivered_at_once(message: OutgoingMessage) -> None:
        # The provider's status callback lands before the dispatcher records the send.
        report = DeliveryEvent(
            EventType.DELIVERED, "twilio", event_id=f"d-{message.message_id}",
            message_id=message.message_id,
        )  # fmt: skip
        with h.project.db.begin() as conn:
            apply_delivery_events(conn, [report], utc("2026-03-20T10:00:00"))
        return None

    h.sms = InMemoryChannel("sms", fail_with=delivered_at_once)
    h.project.channel_overrides["sms"] = h.sms
    sold(h)
    h.simulate(utc("2026-04-01T00:00:00"))

    (sms,) = h.messages(journey_id="extended_warranty", channel="sms")
    assert sms.status == "delivered", history(h, sms.id)
    assert sms.provider_message_id == "mem-sms-1"
    assert sms.provider == "memory"
    assert sms.details["links"], "the short link's target is the booking page, not the shop"
    assert sms.locale == "de" and sms.attempts == 1
    assert history(h, sms.id)[-2:] == [("delivery:delivered", "provider:twilio"), ("sent", None)]


# ------------------------------------------------------------ lease ran out, then sent


def test_a_send_recorded_after_its_lease_ran_out_is_sent(shop: Harness) -> None:
    lease = timedelta(seconds=shop.project.settings.dispatch_lease_seconds)
    expired: list[int] = []

    def slow_provider(message: OutgoingMessage) -> None:
        # The leader's clock has passed the lease while this send was on the wire.
        if not expired:
            expired.append(leader.expire_leases(utc("2026-03-03T00:00:00") + lease))
        return None

    shop.email = InMemoryChannel("email", fail_with=slow_provider)
    shop.project.channel_overrides["email"] = shop.email
    leader = shop.project.dispatcher(SimulatedClock(utc("2026-03-02T09:01:00")))
    try:
        shop.simulate(utc("2026-03-03T00:00:00"))
    finally:
        leader.close()

    assert expired == [1], "the message on the wire was handed over: unknown, not planned"
    first, second = shop.messages()
    assert (first.status, first.reason) == ("sent", None)
    assert first.provider_message_id == "mem-email-1" and first.attempts == 1
    assert history(shop, first.id)[-2:] == [("unknown", "lease_expired"), ("sent", None)]
    assert second.status == "sent"  # the one never handed over went back and went out once
    assert len(shop.email.sent) == 2


def test_a_reserved_message_never_handed_over_goes_back_to_planned(shop: Harness) -> None:
    start = utc("2026-03-02T09:30:00")
    shop.simulate(utc("2026-03-02T09:00:00"))  # the purchases are applied, nothing due yet
    with shop.project.db.begin() as conn:  # a dispatcher reserved both, then died
        conn.execute(messages_t.update().values(status="sending", sent_at=start, lease_until=start))
    dispatcher = shop.project.dispatcher(SimulatedClock(start + timedelta(minutes=1)))
    try:
        stats = dispatcher.tick()
    finally:
        dispatcher.close()

    assert stats.unknown == 0 and stats.sent == 2
    assert {m.status for m in shop.messages()} == {"sent"}
    assert sorted(m.customer_id for m in shop.email.sent) == ["c1", "c2"]


@pytest.mark.parametrize(
    ("refusal", "settled"),
    [
        (PermanentChannelError("bad address", provider="memory", status=400),
         ("failed", "provider_error:memory:400")),
        (TransientChannelError("slow down", provider="memory", status=429),
         ("planned", "retry:memory:429")),
    ],
    ids=["refused", "refused_for_now"],
)  # fmt: skip
def test_lease_expiry_settles_a_refusal_by_what_was_journalled(
    shop: Harness, refusal: Exception, settled: tuple[str, str]
) -> None:
    """The first send is refused; while the second is on the wire, the batch's lease runs
    out (as if its dispatcher had died): the refusal is settled as the provider answered."""
    lease = timedelta(seconds=shop.project.settings.dispatch_lease_seconds)
    seen: dict[str, tuple[str, str | None]] = {}

    def refuse_then_expire(message: OutgoingMessage) -> Exception | None:
        if not seen:
            seen[message.customer_id] = ("refused", None)
            return refusal
        (first,) = seen
        if seen[first] != ("refused", None):
            return None  # later sends (the retry among them) go through
        leader.expire_leases(utc("2026-03-03T00:00:00") + lease)  # while this one waits
        (row,) = shop.messages(customer_id=first)
        seen[first] = (row.status, row.reason)
        return None

    shop.email = InMemoryChannel("email", fail_with=refuse_then_expire)
    shop.project.channel_overrides["email"] = shop.email
    leader = shop.project.dispatcher(SimulatedClock(utc("2026-03-02T09:01:00")))
    try:
        shop.simulate(utc("2026-03-02T09:02:00"))
    finally:
        leader.close()

    [(first, status)] = seen.items()
    assert status == settled
    (row,) = shop.messages(customer_id=first)
    if settled[0] == "planned":  # and it went out at its next attempt
        assert (row.status, row.attempts) == ("sent", 2)
    else:
        assert (row.status, row.reason, row.attempts) == (*settled, 1)


# ---------------------------------------------------- withdrawn before the hand-off


WITHDRAWALS = {
    "unsubscribed": (
        lambda conn, cid, at: set_consent(conn, [cid], "email", False, "link", at),
        "no_consent:email",
    ),
    "suppressed": (
        lambda conn, cid, at: suppress(conn, cid, "email", "bounce", "provider", at),
        "suppressed:bounce",
    ),
    "offers_dropped": (  # the preference page: service kept, offers dropped
        lambda conn, cid, at: conn.execute(
            Customer.__table__.update()
            .where(Customer.__table__.c.id == cid)
            .values(topic_consent={"email:service": True, "email:offers": False})
        ),
        "no_consent:email:offers",
    ),
}
# Both offers in one batch, each checked after waiting for the rate limiter; or one batch
# each, the second checked once just before its sends begin.
WAITS = {
    "rate_limited": '[email]\nrate = "100/s"\n[dispatch]',
    "next_batch": "[dispatch]\nbatch_size = 1",
}


@pytest.mark.parametrize("wait", sorted(WAITS))
@pytest.mark.parametrize("withdrawal", sorted(WITHDRAWALS))
def test_a_withdrawal_before_the_hand_off_skips_the_message(
    make_harness: Callable[..., Harness], database_url: str, withdrawal: str, wait: str
) -> None:
    withdraw, reason = WITHDRAWALS[withdrawal]
    h = make_harness(
        database_url=database_url,
        toml=PLAIN_TOML.replace("[dispatch]", WAITS[wait]),
        journeys={"offer.yaml": OFFERS},
        builtin_journeys=False,
    )
    withdrawn: list[str] = []

    def meanwhile(message: OutgoingMessage) -> None:
        # While the first offer is on the wire, the other customer, whose offer is
        # already reserved, unsubscribes.
        if withdrawn:
            return None
        other = {"c1": "c2", "c2": "c1"}[message.customer_id]
        deadline = time.monotonic() + 30
        while h.messages(customer_id=other)[0].status != "sending":
            assert time.monotonic() < deadline, "the other offer was never reserved"
            time.sleep(0.005)
        with h.project.db.begin() as conn:
            withdraw(conn, other, utc("2026-03-02T09:01:30"))
        withdrawn.append(other)
        return None

    h.email = InMemoryChannel("email", fail_with=meanwhile)
    h.project.channel_overrides["email"] = h.email
    try:
        h.customers(
            [{"id": "c1", "email": "anna@example.org"}, {"id": "c2", "email": "ben@example.org"}]
        )
        h.events([purchase(f"e{n}", f"c{n}", BOUGHT, f"o{n}", item()) for n in (1, 2)])
        stats = h.simulate(utc("2026-03-03T00:00:00"))

        [other] = withdrawn
        assert [m.customer_id for m in h.email.sent] == [{"c1": "c2", "c2": "c1"}[other]]
        (skipped,) = h.messages(customer_id=other)
        assert (skipped.status, skipped.reason) == ("skipped", reason)
        assert skipped.attempts == 0
        assert history(h, skipped.id)[-1] == ("skipped", reason)
        assert (stats.sent, stats.skipped) == (1, 1)
    finally:
        h.project.close()


# --------------------------------------------------------- one message fails alone


def test_an_unexpected_exception_while_sending_fails_that_message_only(shop: Harness) -> None:
    def broken_for_ben(message: OutgoingMessage) -> BaseException | None:
        return KeyError("to") if message.customer_id == "c2" else None

    shop.email = InMemoryChannel("email", fail_with=broken_for_ben)
    shop.project.channel_overrides["email"] = shop.email
    stats = shop.simulate(utc("2026-03-03T00:00:00"))

    (failed,) = shop.messages(customer_id="c2")
    (sent,) = shop.messages(customer_id="c1")
    assert (failed.status, failed.reason) == ("failed", "error:KeyError")
    assert sent.status == "sent"
    assert (stats.sent, stats.failed) == (1, 1)
    with shop.project.db.connect() as conn:
        detail = conn.execute(
            sa.select(decisions_t.c.detail).where(
                decisions_t.c.message_id == failed.id, decisions_t.c.action == "failed"
            )
        ).scalar_one()
    assert detail == "KeyError: 'to'"


# ---------------------------------------------------------------- the suppress race


@pytest.fixture
def pg_shop(make_harness: Callable[..., Harness], postgres_server: str) -> Iterator[Harness]:
    _reset_postgres(postgres_server)
    h = make_harness(database_url=postgres_server)
    yield h
    h.project.close()


def _commit_once_blocked(h: Harness, conn: sa.Connection, seen: list[bool]) -> None:
    """Commit ``conn`` once another backend waits for its lock (or after 30 s regardless)."""
    waiting = sa.text(
        "select count(*) from pg_stat_activity "
        "where datname = current_database() and wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with h.project.db.connect() as probe:
        while time.monotonic() < deadline:
            if probe.execute(waiting).scalar():
                seen.append(True)
                break
            probe.rollback()
            time.sleep(0.01)
    conn.commit()
    conn.close()


def test_a_concurrent_stop_never_loses_the_batch_record(pg_shop: Harness) -> None:
    h = pg_shop
    threads: list[threading.Thread] = []
    seen: list[bool] = []

    def stop_arrives_too(message: OutgoingMessage) -> BaseException | None:
        # Twilio refuses (21610, the recipient sent STOP) while the STOP webhook's own
        # suppression is being written and not yet committed.
        conn = h.project.db.connect()
        conn.execute(
            Suppression.__table__.insert().values(
                customer_id=message.customer_id, channel="sms", reason="sms_stop",
                source="sms:STOP", created_at=utc("2026-03-20T10:00:00"),
            )
        )  # fmt: skip
        thread = threading.Thread(target=_commit_once_blocked, args=(h, conn, seen))
        thread.start()
        threads.append(thread)
        return RecipientOptedOut("21610 unsubscribed recipient", provider="twilio", code="21610")

    h.sms = InMemoryChannel("sms", fail_with=stop_arrives_too)
    h.project.channel_overrides["sms"] = h.sms
    sold(h)
    h.simulate(utc("2026-04-01T00:00:00"))
    for thread in threads:
        thread.join()

    assert seen, "the dispatcher's suppression waited for the concurrent one"
    (sms,) = h.messages(channel="sms")
    assert (sms.status, sms.reason) == ("failed", "suppressed:sms_stop")
    with h.project.db.connect() as conn:
        suppressions = conn.execute(sa.select(Suppression.__table__.c.source)).scalars().all()
    assert suppressions == ["sms:STOP"]
    assert {m.status for m in h.messages(channel="email") if m.due_at <= sms.due_at} == {"sent"}


# ------------------------------------------------------------- rate within the lease


def test_a_batch_reserves_no_more_than_the_rate_sends_within_the_lease(
    make_harness: Callable[..., Harness], database_url: str
) -> None:
    # One e-mail a minute and a ten-second lease: a batch takes one, the rest stay planned
    # rather than wait on the rate limiter past their lease.
    toml = PLAIN_TOML.replace("[dispatch]", '[email]\nrate = "1/m"\n[dispatch]\nlease_seconds = 10')
    h = make_harness(
        database_url=database_url,
        toml=toml,
        journeys={"offer.yaml": OFFERS},
        builtin_journeys=False,
    )
    try:
        h.customers([{"id": f"c{n}", "email": f"c{n}@example.org"} for n in range(3)])
        h.events([purchase(f"e{n}", f"c{n}", BOUGHT, f"o{n}", item()) for n in range(3)])
        h.simulate(utc("2026-03-02T09:00:30"))  # applied; the offers are due at 09:01
        dispatcher = h.project.dispatcher(SimulatedClock(utc("2026-03-02T09:05:00")))
        try:
            stats = dispatcher.tick()
        finally:
            dispatcher.close()
        statuses = sorted(m.status for m in h.messages())
    finally:
        h.project.close()

    assert (stats.claimed, stats.sent) == (1, 1)
    assert statuses == ["planned", "planned", "sent"]


# ------------------------------------------------ planning the next step fails alone

TWO_STEPS = """
id: offer
name: An offer and a reminder
trigger:
  event: purchase
steps:
  - id: offer
    wait: 1m
    send: {channel: email, template: loyalty_offer, category: marketing, expires_after: 30d}
  - id: reminder
    wait: 7d
    send: {channel: email, template: loyalty_offer, category: marketing, expires_after: 30d}
"""


def test_a_next_step_that_cannot_be_planned_fails_only_its_message(
    make_harness: Callable[..., Harness], database_url: str
) -> None:
    h = make_harness(
        database_url=database_url,
        toml=PLAIN_TOML,
        journeys={"offer.yaml": TWO_STEPS},
        builtin_journeys=False,
    )
    try:
        h.customers([{"id": f"c{n}", "email": f"c{n}@example.org"} for n in (1, 2)])
        h.events([purchase(f"e{n}", f"c{n}", BOUGHT, f"o{n}", item()) for n in (1, 2)])
        h.simulate(utc("2026-03-02T09:00:30"))  # enrolled; the offers are due at 09:01
        enrollments_t = Enrollment.__table__
        with h.project.db.begin() as conn:  # c2's timetable is damaged: its reminder's time
            (schedule,) = conn.execute(
                sa.select(enrollments_t.c.schedule).where(enrollments_t.c.customer_id == "c2")
            ).one()
            schedule[1][2] = "next week"
            conn.execute(
                enrollments_t.update()
                .where(enrollments_t.c.customer_id == "c2")
                .values(schedule=schedule)
            )
        stats = h.simulate(utc("2026-03-03T00:00:00"))

        (c1_offer, c1_reminder) = h.messages(customer_id="c1")
        (c2_offer,) = h.messages(customer_id="c2")
        assert (c1_offer.status, c1_reminder.status) == ("sent", "planned")
        assert c2_offer.status == "sent"  # it went out; only what follows it failed
        assert history(h, c2_offer.id)[-1] == ("plan_failed", "error:TypeError")
        assert (stats.sent, stats.planned) == (2, 1)
    finally:
        h.project.close()


def test_an_exit_cancels_only_what_the_table_lets_it(shop: Harness) -> None:
    """The engine's cancellations go through the transition table: a planned message of an
    ended enrolment is cancelled, one already being sent is left to its dispatcher."""
    at = utc("2026-03-02T12:00:00+01:00")
    journeys = shop.project.journeys  # synced in a transaction of its own, before ours
    with shop.project.db.begin() as conn:
        journeys.apply_due_events(conn, at, limit=100)
    (first,), (second,) = shop.messages(customer_id="c1"), shop.messages(customer_id="c2")
    with shop.project.db.begin() as conn:
        conn.execute(
            messages_t.update().where(messages_t.c.id == second.id).values(status="sending")
        )
        ends = {first.enrollment_id: at, second.enrollment_id: at}
        assert end_enrollments(conn, ends, "journey_exit:return") == 1
    (first,), (second,) = shop.messages(customer_id="c1"), shop.messages(customer_id="c2")
    assert (first.status, first.reason) == ("cancelled", "journey_exit:return")
    assert second.status == "sending" and second.reason is None
    assert history(shop, first.id) == [("cancelled", "journey_exit:return")]
    assert history(shop, second.id) == []


# ------------------------------------------------------------- hand-offs on PostgreSQL


def test_a_hand_off_on_postgresql_is_one_statement_on_a_kept_connection(pg_shop: Harness) -> None:
    """A mark journals the answers of both shapes (acceptance, refusal) and hands over
    only what is still ``sending`` and not handed over, in one statement; the next mark
    takes no connection from the pool; a group whose answers name one of its own tickets
    goes the two-statement way and gets the same result; a dead kept connection is
    replaced."""
    h = pg_shop
    sold(h)
    h.customers([{"id": "c2", "email": "ben@example.org"}])
    h.events([purchase("e2", "c2", "2026-01-05T10:00:00+01:00", "o2", item())])
    with h.project.db.begin() as conn:
        h.project.journeys.apply_due_events(conn, utc("2026-01-05T10:00:00"))
    a, b, c, d = (m.id for m in h.messages()[:4])
    before = utc("2026-01-05T11:00:00")
    at, lease = utc("2026-01-05T12:00:00"), utc("2026-01-05T12:05:00")
    with h.project.db.begin() as conn:
        conn.execute(messages_t.update().where(messages_t.c.id.in_([a, b, c, d]))
                     .values(status="sending", lease_until=lease))  # fmt: skip
        conn.execute(messages_t.update().where(messages_t.c.id == b).values(handed_over_at=before))
    accepted = {"_id": c, "locale": "de", "subject": "Danke", "provider": "sendgrid",
                "provider_message_id": "sg-1", "details": {"links": ["https://x.example/"]}}  # fmt: skip
    refused = {"_id": d, "reason": "retry:sendgrid:429"}
    statements: list[str] = []
    checkouts: list[object] = []
    sa.event.listen(h.project.db, "before_cursor_execute", lambda *e: statements.append(e[2]))
    sa.event.listen(h.project.db.pool, "checkout", lambda *e: checkouts.append(e))
    journal = TableJournal(h.project.db)
    try:
        marked = journal.mark([(a, lease), (b, lease)], [(accepted, lease), (refused, lease)], at)
        assert marked == {a}, "b was handed over before: it is not sent twice"
        assert len(statements) == 1 and len(checkouts) == 1
        statements.clear(), checkouts.clear()
        assert journal.mark([(b, lease)], [], at) == set()
        assert len(statements) == 1 and checkouts == [], "the kept connection, no pool ping"
        # The kept connection dies (a server restart, an idle timeout): the mark fails as a
        # connection fault, which the dispatcher retries, and the retry gets a fresh one.
        (pid,) = {conn.connection.driver_connection.info.backend_pid for conn in journal._idle}
        with h.project.db.connect() as conn:
            conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.DBAPIError) as fault:
            journal.mark([(c, lease)], [], at)
        assert is_connection_fault(fault.value)
        assert journal.mark([(c, lease)], [], at) == {c}
        # A ticket whose answer is in the same group: one row cannot change twice in one
        # statement, so this group goes as a transaction of two.
        assert journal.mark([(d, lease)], [(refused, lease)], at) == {d}
    finally:
        journal.close()
    rows = {m.id: m for m in h.messages()}
    assert {rows[i].status for i in (a, b, c, d)} == {"sending"}, "a mark moves no status"
    assert (rows[a].handed_over_at, rows[b].handed_over_at) == (at, before)
    assert rows[c].handed_over_at == rows[d].handed_over_at == at
    got = {k: getattr(rows[c], k) for k in accepted if k != "_id"}
    assert got == {k: v for k, v in accepted.items() if k != "_id"}
    assert rows[d].reason == "retry:sendgrid:429" and rows[d].provider is None

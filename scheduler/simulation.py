"""Simulated time: run the dispatcher from due time to due time up to a date.

:func:`simulate` drives any dispatcher. :class:`SimulationDispatcher` is the one
``aftersale simulate`` uses: the same decisions, with less read back, for a dispatcher
alone on its clock. :class:`ForecastDispatcher` is a forecast's: it also renders no
e-mail and hands nothing over, for :class:`CountingChannel`, which sends nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from campaigns.policy import Contact
from channels import AmbiguousChannelError, Channel, OutgoingMessage, SendResult
from channels.base import ChannelKind
from scheduler.clock import SimulatedClock
from scheduler.dispatcher import UPCOMING, Dispatcher, DispatchStats, MessageError
from scheduler.handoff import Verdict
from scheduler.rendering import PendingRender, RenderJob


def simulate(
    dispatcher: Dispatcher,
    clock: SimulatedClock,
    until: datetime,
    *,
    on_step: Callable[[datetime, DispatchStats], None] | None = None,
) -> DispatchStats:
    """Jump the clock to each next due time and tick, until nothing is due before ``until``.

    Due are planned messages, unapplied events and the leases of messages a dispatcher
    died sending. The clock ends at ``until``; what is due later stays where it is. Each
    instant does only what is due then: an instant when only events are due applies them
    without a dispatch round. (Alone on its clock, the simulation knows what is due.)
    """
    total = DispatchStats()
    stats = dispatcher.tick()
    while True:
        total.add(stats)
        if on_step is not None:
            on_step(clock.now(), stats)
        message_at, event_at, lease_at = dispatcher.upcoming()
        upcoming = min((t for t in (message_at, event_at, lease_at) if t is not None), default=None)
        if upcoming is None or upcoming > until:
            break
        if upcoming > clock.now():  # else something became due at this very instant
            clock.advance_to(upcoming)
        message_due = message_at is not None and message_at <= upcoming
        lease_due = lease_at is not None and lease_at <= upcoming
        if message_due or lease_due:
            stats = dispatcher.tick(
                apply_events=event_at is not None and event_at <= upcoming,
                expire_leases=lease_due,
            )
        else:
            stats = DispatchStats(events=dispatcher.apply_due_events(clock.now()))
    clock.advance_to(until)
    return total


class CountingChannel(Channel):
    """Accepts every message and keeps nothing but a count: a forecast's channels."""

    name = "forecast"

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        self._ids = itertools.count(1)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Accept ``message`` (nothing leaves the process)."""
        return SendResult(provider=self.name, provider_message_id=f"{self.kind}-{next(self._ids)}")


class SimulationDispatcher(Dispatcher):
    """The dispatcher of a simulation: the same decisions, with less read back.

    Alone on a simulated clock, nothing but this dispatcher sends, so customers' cap
    histories stay in memory (:class:`CapHistories`): read from the database the first
    time a customer comes up, then kept by the reservations themselves, instead of read
    again for every batch. (Sending stays on the sending threads: rendering and sending
    inline measured no less CPU a decision here, and on a busy machine more wall time.)
    """

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self._memory = CapHistories()
        self._reader: Any = None  # SQLite: one connection the simulation asks what is next

    def upcoming(self) -> tuple[datetime | None, datetime | None, datetime | None]:
        """As the dispatcher's, asked once an instant: on SQLite as one plain statement
        on a connection of its own (a statement alone reads a consistent snapshot),
        without a transaction, a pool checkout and a result object around it."""
        if self.db.dialect.name != "sqlite":
            return super().upcoming()
        if self._reader is None:
            self._reader = self.db.raw_connection()
            self._upcoming_sql = str(
                UPCOMING.compile(dialect=self.db.dialect, compile_kwargs={"literal_binds": True})
            )
        row = self._reader.cursor().execute(self._upcoming_sql).fetchone()
        return tuple(_stored_time(value) for value in row)  # type: ignore[return-value]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        super().close()

    def _history(self, conn: Connection, customer_ids: list[str], now: datetime) -> Any:
        window = max(self.policy.history_window(), self.journeys.longest_min_gap())
        if window <= timedelta(0):
            return super()._history(conn, customer_ids, now)
        unknown = self._memory.unknown(customer_ids)
        if unknown:
            self._memory.load(unknown, *super()._history(conn, unknown, now))
        return self._memory.of(customer_ids, now - window)

    def _reserve(self, conn: Connection, now: datetime, stats: DispatchStats) -> Any:
        reserved, claimed = super()._reserve(conn, now, stats)
        self._memory.keep()  # what the reservation added to the batch's view
        return reserved, claimed

    def _record(self, conn: Connection, reserved: list[Any], now: datetime, stats: Any) -> None:
        super()._record(conn, reserved, now, stats)
        for item in reserved:
            if item.row.category == "marketing" and not _counts(item):
                self._memory.forget(item.row.customer_id)  # read again when next needed

    def expire_leases(self, now: datetime) -> int:
        self._memory.clear()  # a lease ran out: what it settled is read again
        return super().expire_leases(now)


def _stored_time(value: Any) -> datetime | None:
    """A time as SQLite holds it (naive UTC text), aware."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _counts(item: Any) -> bool:
    """Whether a reserved message's outcome counts against caps (sent, or maybe sent)."""
    if item.verdict in (Verdict.GONE, Verdict.WITHDRAWN, Verdict.NOT_MARKED):
        return False
    return item.result is not None or isinstance(item.error, AmbiguousChannelError)


class CapHistories:
    """Customers' recent marketing contacts and, per journey, the last one, in memory.

    The dispatcher's reservation appends to the lists and sets the times it is handed
    (:meth:`of`); :meth:`keep` takes those times back after the reservation. A customer
    whose reserved message did not go out is forgotten and read again from the database.
    """

    def __init__(self) -> None:
        self._contacts: dict[str, list[Contact]] = {}
        self._latest: dict[str, dict[str, datetime]] = {}
        self._handed: dict[tuple[str, str], datetime] = {}

    def unknown(self, customer_ids: list[str]) -> list[str]:
        return [cid for cid in customer_ids if cid not in self._contacts]

    def load(self, customer_ids: list[str], history: Any, latest: Any) -> None:
        for cid in customer_ids:
            self._contacts[cid] = list(history.get(cid, ()))
            self._latest[cid] = {}
        for (cid, journey), at in latest.items():
            self._latest[cid][journey] = at

    def of(self, customer_ids: list[str], since: datetime) -> tuple[Any, Any]:
        """The histories of ``customer_ids`` after ``since``, as the dispatcher's
        ``_history`` returns them; the lists are the kept ones, pruned in place."""
        history = {}
        handed: dict[tuple[str, str], datetime] = {}
        for cid in customer_ids:
            contacts = self._contacts[cid]
            if any(c.at <= since for c in contacts):
                contacts[:] = [c for c in contacts if c.at > since]
            history[cid] = contacts
            for journey, at in self._latest[cid].items():
                handed[(cid, journey)] = at
        self._handed = handed
        return history, handed

    def keep(self) -> None:
        for (cid, journey), at in self._handed.items():
            if cid in self._latest:
                self._latest[cid][journey] = at
        self._handed = {}

    def forget(self, customer_id: str) -> None:
        self._contacts.pop(customer_id, None)
        self._latest.pop(customer_id, None)

    def clear(self) -> None:
        self._contacts.clear()
        self._latest.clear()


class ForecastDispatcher(SimulationDispatcher):
    """The dispatcher of a forecast: renders only what the figures need.

    An e-mail is accepted without being rendered (its price does not depend on its
    content); an SMS is rendered, because its price is per segment. Everything else —
    claiming, the policy, bundling, recording, planning the next step — is the
    dispatcher's own, so a forecast decides exactly as ``simulate`` would. (A template
    that fails to render would fail its e-mail in ``simulate``; ``journeys validate``
    finds those before either runs.) Nothing is handed over, so nothing is journalled:
    the channels accept and forget, and the copy is thrown away.
    """

    render_processes = False  # a forecast renders only SMS, a few at a time

    def _send(self, item: Any) -> None:
        channel = self.channels[item.outgoing.kind]
        item.verdict = Verdict.GO
        item.result = channel.send(item.outgoing)

    def _forget(self, ids: list[int]) -> None:
        """Nothing was journalled."""

    def _deliver(self, item: Any, job: RenderJob, rendering: PendingRender | None) -> None:
        if job.channel != "email":
            super()._deliver(item, job, rendering)
            return
        try:
            item.outgoing = OutgoingMessage(
                message_id=str(job.message_id),
                kind="email",
                to="",
                body_text="",
                category=job.category,
                customer_id=job.customer_id,
                journey=job.journey,
                step=job.step,
            )
            item.locale, item.details = job.locale, {}
            self._send(item)
        except Exception as exc:  # noqa: BLE001 - one broken message never stops the batch
            item.error = MessageError.of(exc)
        finally:
            self._dequeue(item)

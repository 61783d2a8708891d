"""Simulated time: run the dispatcher from due time to due time up to a date.

:func:`simulate` drives any dispatcher. :class:`SimulationDispatcher` is the one
``aftersale simulate`` uses: the same decisions, with less read back, for a dispatcher
alone on its clock. :class:`ForecastDispatcher` is a forecast's: it also renders no
e-mail and hands nothing over, for :class:`CountingChannel`, which sends nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns import transitions
from campaigns.bulk import executemany
from campaigns.bundling import BUNDLED
from campaigns.engine import load_customers, messages_t
from campaigns.idlists import id_in
from campaigns.models import COUNTING_STATUSES, PLANNED, SENDING, SENT, SKIPPED, UTCDateTime
from campaigns.policy import Contact
from campaigns.store import DueEvent, events_t, select_fields
from channels import AmbiguousChannelError, Channel, OutgoingMessage, SendResult
from channels.base import ChannelKind
from scheduler.clock import SimulatedClock
from scheduler.context import ContextLoader
from scheduler.dispatcher import (
    _DUE_ORDER,
    CLAIMED,
    DECIDE,
    HISTORY,
    SET_VARIANT,
    UPCOMING,
    Dispatcher,
    DispatchStats,
    MessageError,
    _apply_updates,
    _bundled,
    _moment,
    _not_paused,
    _Outcome,
    _suppressions,
    _update,
    _variant,
    as_claimed,
)
from scheduler.handoff import Verdict
from scheduler.rendering import PendingRender, RenderJob

_m, _e = messages_t.c, events_t.c
_PLANNED_OF = (id_in(_m.customer_id), *transitions.PLANNED_UNSENT, _not_paused())
# A window takes its customers forward in cohorts of this many (at least four batches'
# worth), each customer taking the place of one done: a cohort's messages, decisions and
# enrolments are read again while they are in the page cache, where a round over every
# customer of a large shop would read each of them back from the file.
COHORT = 2_000
# A window's customers' planned messages due before its end (or at it), in due order.
WINDOW_OF = (
    sa.select(*CLAIMED).where(*_PLANNED_OF, _m.due_at < _moment("end")).order_by(*_DUE_ORDER)
)
WINDOW_OF_INCLUSIVE = (
    sa.select(*CLAIMED).where(*_PLANNED_OF, _m.due_at <= _moment("end")).order_by(*_DUE_ORDER)
)
# Who has planned messages due in a window, and their first due time.
_DUE_IN = sa.select(_m.customer_id, sa.func.min(_m.due_at)).group_by(_m.customer_id)
WINDOW_DUE = _DUE_IN.where(_m.status == PLANNED, _m.due_at < _moment("end"), _not_paused())
WINDOW_DUE_INCLUSIVE = _DUE_IN.where(
    _m.status == PLANNED, _m.due_at <= _moment("end"), _not_paused()
)
# Each customer's next pending event: how far the window takes them.
HORIZONS = (
    sa.select(_e.customer_id, sa.func.min(_e.at))
    .where(_e.applied.is_(False))
    .group_by(_e.customer_id)
)
# The pending events of a batch's customers, in the order they are applied. Through the
# customer's index: ``applied`` is compared as a number, which no index answers, so that
# SQLite's planner does not walk every pending event of the shop (``ix_events_pending``).
PENDING_OF = (
    select_fields(events_t, DueEvent)
    .where(id_in(_e.customer_id), sa.cast(_e.applied, sa.Integer) == 0)
    .order_by(_e.at, _e.id)
)


# The id the next message written gets (SQLite numbers rows after the highest).
NEXT_MESSAGE_ID = sa.select(sa.func.coalesce(sa.func.max(_m.id), 0) + 1)


# MARK_SENDING, each message at its own instant.
MARK_SENDING_EACH = (
    messages_t.update()
    .where(_m.id == sa.bindparam("_id"))
    .values(status=SENDING, sent_at=sa.bindparam("at", type_=UTCDateTime()),
            lease_until=sa.bindparam("lease", type_=UTCDateTime()), handed_over_at=None,
            reason=None, updated_at=sa.bindparam("at", type_=UTCDateTime()))
)  # fmt: skip


def _decide_each(conn: Connection, rows: list[tuple]) -> None:
    """The dispatcher's ``_decide_rows``, each decision at its own instant."""
    executemany(
        conn,
        DECIDE,
        [
            {"message_id": mid, "at": at, "action": action, "reason": reason,
             "due_before": before, "due_after": after, "detail": detail}
            for mid, at, action, reason, before, after, detail in rows
        ],
    )  # fmt: skip


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
    A :class:`SimulationDispatcher` takes each customer forward on their own instead
    (:meth:`SimulationDispatcher.tick_window`), from one lease to the next or to the end;
    the clock then moves only where a lease or the end stops every customer.
    """
    total = DispatchStats()
    stats = dispatcher.tick()
    windows = isinstance(dispatcher, SimulationDispatcher) and dispatcher.decides_windows()
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
        event_due = event_at is not None and event_at <= upcoming
        if windows and not lease_due:
            # Each customer taken forward on their own, up to the next lease or the end: their
            # messages each at its own instant, their events between them.
            inclusive = lease_at is None or lease_at > until
            stats = dispatcher.tick_window(until if inclusive else lease_at, inclusive=inclusive)
            if stats.claimed or stats.events:
                continue
            # Nothing moved (cannot happen while the two agree on what is due): a plain tick.
            stats = dispatcher.tick(apply_events=event_due, expire_leases=False)
        elif message_due or lease_due:
            stats = dispatcher.tick(apply_events=event_due, expire_leases=lease_due)
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
        if self.render_pool is not None:
            # A simulation's batches are a few customers each (a live batch that small
            # means a quiet hour, better rendered here): every one goes to the render
            # processes, which render on another core while this one decides the next.
            self.render_pool.min_batch = 1
        self._memory = CapHistories()
        self._reader: Any = None  # SQLite: one connection the simulation asks what is next
        # While a window is decided (:meth:`tick_window`): its end, and whether it is in it.
        self._window: tuple[datetime, bool] | None = None
        # The instant each customer was last decided at, or had their events applied at: a
        # message planned then but due earlier is decided at that instant, as the tick
        # after it would (the simulation's clock stands there).
        self._floor: dict[str, datetime] = {}
        self._busy: set[str] = set()  # customers of the batches reserved, not yet recorded
        # While a window is decided: the customers to claim (each again after a decision,
        # until nothing of theirs is due in it), those waiting for a place among them
        # (:data:`COHORT`), and each customer's next pending event.
        self._queue: deque[str] | None = None
        self._waiting: deque[str] = deque()
        self._horizon: dict[str, datetime] = {}

    # -- windows: the messages of many instants decided in one batch ----------------------

    def decides_windows(self) -> bool:
        """Whether :meth:`tick_window` may decide several instants at once. Not with rate
        limits (they count real seconds per batch), nor with fatigue (its unanswered
        e-mails are read for one instant a batch)."""
        return not self._limiters and self.policy.rules.fatigue is None

    def tick_window(self, end: datetime, *, inclusive: bool) -> DispatchStats:
        """Take every customer forward to ``end`` (up to it, or to it if ``inclusive``):
        their messages each at its own due time, their events each at its own time, in the
        order a tick at each of those instants would.

        One customer's decisions and events touch no other customer's (caps, spacing,
        bundling, conditions, planning and everything an event changes are the
        customer's own), so a batch takes customers at different instants: for each, what
        comes first — the messages of their first due instant (all of them, as a tick
        claims whole customers), or their events at their next event's time if that is no
        later. A customer comes up again in a later batch, with what that batch planned,
        deferred or released, until nothing of theirs is due before ``end``. The clock stays
        where it is: at the earliest time anything is due for anyone.
        """
        self._window = (end, inclusive)
        self._queue = None
        try:
            return self.tick(apply_events=False, expire_leases=False)
        finally:
            self._window = None
            self._queue = None
            self._waiting = deque()

    def _reserve_tx(self, now: datetime, stats: DispatchStats) -> Any:
        reserved, claimed = super()._reserve_tx(now, stats)
        for item in reserved:  # each at its own instant
            item.lease = (item.at or now) + self.config.lease
        return reserved, claimed

    def _finish(self, reserved, futures, now: datetime, stats: DispatchStats) -> None:
        try:
            super()._finish(reserved, futures, now, stats)
        finally:
            for item in reserved:
                self._busy.discard(item.row.customer_id)

    def _claim_window(
        self, conn: Connection, now: datetime, stats: DispatchStats
    ) -> tuple[list[Any], dict, int]:
        """The messages this batch decides: of up to a batch's customers, each one's first
        due instant; with that instant per customer; and a count that tells the tick to
        claim again (a batch's size) while any customer may have more. Customers whose
        next event comes first have their events of that instant applied here instead."""
        assert self._window is not None
        end, inclusive = self._window
        if self._queue is None:  # the window's first claim: who has anything due in it
            self._waiting = self._window_customers(conn, end, inclusive)
            self._queue = deque()
        queue, waiting, busy = self._queue, self._waiting, self._busy
        size = self.config.batch_size
        while waiting and len(queue) < max(COHORT, 4 * size):
            queue.append(waiting.popleft())
        ids: list[str] = []
        for _ in range(len(queue)):  # busy customers (a batch in flight) go round again
            if len(ids) == size:
                break
            cid = queue.popleft()
            (queue.append if cid in busy else ids.append)(cid)
        if not ids:
            return [], {}, size if queue or waiting else 0
        statement = WINDOW_OF_INCLUSIVE if inclusive else WINDOW_OF
        rows = as_claimed(conn.execute(statement, {"ids": ids, "end": end}))
        horizon, floor = self._horizon, self._floor
        first_due: dict[str, datetime] = {}
        for row in rows:  # in due order
            first_due.setdefault(row.customer_id, row.due_at)
        eventful = []
        for cid in ids:
            next_event = horizon.get(cid)
            if (
                next_event is not None
                and (next_event < end or inclusive and next_event == end)
                and (cid not in first_due or next_event <= first_due[cid])
            ):
                eventful.append(cid)
        if eventful:
            stats.events += self._apply_events_of(conn, eventful, now)
        at: dict[str, datetime] = {}
        kept: list[Any] = []
        for row in rows:  # a customer's first row sets their instant
            cid = row.customer_id
            instant = at.get(cid)
            if instant is None:
                if cid in eventful:
                    continue
                instant = at[cid] = max(row.due_at, now, floor.get(cid, now))
            if row.due_at <= instant:
                kept.append(row)
        # Again in a later batch: what their decisions or events planned may be due.
        queue.extend(at)
        queue.extend(eventful)
        return kept, at, size if queue or waiting else len(kept)

    def _apply_events_of(self, conn: Connection, customer_ids: list[str], now: datetime) -> int:
        """Apply these customers' events of their next event's instant (each at its own
        time), in the batch's transaction; returns how many."""
        horizon, floor = self._horizon, self._floor
        pending = [DueEvent._make(r) for r in conn.execute(PENDING_OF, {"ids": customer_ids})]
        due = [e for e in pending if e.at == horizon[e.customer_id]]
        applied = self.journeys.apply_due_events(conn, now, rows=due).events
        for cid in customer_ids:
            instant = max(horizon.pop(cid), now)
            if instant > floor.get(cid, instant - timedelta(1)):
                floor[cid] = instant  # what the events planned before it is decided at it
        applied_now = {e.id for e in due}
        for event in pending:  # in time order: each customer's next pending event after these
            if event.id not in applied_now and event.customer_id not in horizon:
                horizon[event.customer_id] = event.at
        return applied

    def _window_customers(self, conn: Connection, end: datetime, inclusive: bool) -> deque:
        """The customers with a message or an event due in the window; keeps each
        customer's next pending event (:data:`HORIZONS`) for the window's claims."""
        self._horizon = horizon = dict(conn.execute(HORIZONS).all())
        due = conn.execute(WINDOW_DUE_INCLUSIVE if inclusive else WINDOW_DUE, {"end": end})
        customers = {cid for cid, _ in due}
        customers.update(
            cid for cid, at in horizon.items() if at < end or (inclusive and at == end)
        )
        return deque(sorted(customers))

    def _reserve(self, conn: Connection, now: datetime, stats: DispatchStats) -> Any:
        if self._window is None:
            reserved, claimed = super()._reserve(conn, now, stats)
        else:
            reserved, claimed = self._reserve_window(conn, now, stats)
        self._memory.keep()  # what the reservation added to the batch's view
        return reserved, claimed

    def _reserve_window(self, conn: Connection, now: datetime, stats: DispatchStats) -> Any:
        """The dispatcher's reservation (``Dispatcher._reserve``), each customer's messages
        decided at that customer's instant; read once for the batch, written in bulk."""
        rows, instants, claimed = self._claim_window(conn, now, stats)
        if not rows:
            return [], claimed
        customer_ids = sorted(instants)
        stats.claimed += len(rows)
        self._floor.update(instants)
        customers = load_customers(conn, customer_ids)
        suppressed = _suppressions(conn, customer_ids)
        history, latest = self._histories(conn, instants)
        bundles = self._bundles(conn, rows)
        contexts = ContextLoader(conn, [*rows, *bundles.outside], self.journeys.segments)
        decided = self._decide_batch(
            rows, instants.__getitem__, customers, suppressed, history, latest, bundles, contexts
        )
        sending: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        variants: list[dict[str, Any]] = []
        decisions: list[tuple] = []
        reserved: list[Any] = []
        skipped: list[tuple[Any, datetime]] = []  # (row, at)
        lease = self.config.lease
        for outcome in decided:
            row, at = outcome.row, outcome.at
            if outcome.kind is _Outcome.SEND:
                sending.append({"_id": row.id, "at": at, "lease": at + lease})
                item = outcome.item
                item.at = at
                reserved.append(item)
                if item.assignment.variant is not None:
                    variants.append(_variant(row, item.assignment.variant))
            elif outcome.kind is _Outcome.BUNDLED:
                updates.append(_bundled(row, outcome.carrier) | {"updated_at": at})
                decisions.append((row.id, at, "skipped", BUNDLED, row.due_at, None, None))
                stats.skipped += 1
                skipped.append((row, at))
            elif outcome.kind is _Outcome.DEFER:
                updates.append(
                    _update(row.id, due_at=outcome.until, reason=outcome.reason, updated_at=at)
                )
                decisions.append(
                    (row.id, at, "deferred", outcome.reason, row.due_at, outcome.until, None)
                )
                stats.deferred += 1
            else:
                updates.append(
                    _update(row.id, status=SKIPPED, reason=outcome.reason, updated_at=at)
                )
                decisions.append((row.id, at, "skipped", outcome.reason, row.due_at, None, None))
                stats.skipped += 1
                skipped.append((row, at))
        if sending:
            executemany(conn, MARK_SENDING_EACH, sending)
        _apply_updates(conn, updates, now)  # each update names its own instant
        if variants:
            executemany(conn, SET_VARIANT, variants)
        _decide_each(conn, decisions)
        if skipped:
            rows_skipped = [row for row, _ in skipped]
            stats.planned += self._plan_next(conn, rows_skipped, now, {r.id: t for r, t in skipped})
        for item in reserved:
            self._busy.add(item.row.customer_id)  # until its batch is recorded
            customer = customers[item.row.customer_id]
            item.parts = contexts.parts_for(item.row, customer, item.at, bundles.carried(item.row))
        return reserved, claimed

    def _histories(self, conn: Connection, instants: dict[str, datetime]) -> tuple[Any, Any]:
        """``_history`` for customers each at an instant of their own (kept in memory)."""
        window = max(self.policy.history_window(), self.journeys.longest_min_gap())
        if window <= timedelta(0):
            return defaultdict(list), {}
        unknown = self._memory.unknown(list(instants))
        if unknown:
            since = min(instants[cid] for cid in unknown) - window
            history: dict[str, list[Contact]] = defaultdict(list)
            latest: dict[tuple[str, str], datetime] = {}
            for cid, channel, sent_at, category, status, journey_id in conn.execute(
                HISTORY, {"ids": unknown, "since": since}
            ):
                if category != "marketing" or status not in COUNTING_STATUSES:
                    continue
                at = min(sent_at, instants[cid])
                history[cid].append(Contact(channel, at))
                if at > latest.get((cid, journey_id), at - timedelta(1)):
                    latest[(cid, journey_id)] = at
            self._memory.load(unknown, history, latest)
        return self._memory.of_each(instants, window)

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

    def _record(self, conn: Connection, reserved: list[Any], now: datetime, stats: Any) -> None:
        """The dispatcher's record, each message at its own instant: the sends (nearly
        all of a simulation's batch) in one set of statements, anything else per instant."""
        sent, others = [], []
        for item in reserved:
            (sent if _plainly_sent(item) else others).append(item)
        if sent:
            at = {item.row.id: item.at or now for item in sent}
            moves = [self._sent(item) | {"handed_over_at": None, "updated_at": at[item.row.id]}
                     for item in sent]  # fmt: skip
            transitions.move(conn, SENT, moves, now, always=_SENT_ALWAYS)
            _decide_each(
                conn,
                [(item.row.id, at[item.row.id], "sent", None, None, None, item.result.provider)
                 for item in sent],
            )  # fmt: skip
            stats.sent += len(sent)
            stats.planned += self._plan_next(conn, [item.row for item in sent], now, at)
        by_instant: dict[datetime, list[Any]] = defaultdict(list)
        for item in others:
            by_instant[item.at or now].append(item)
        for instant, items in sorted(by_instant.items()):
            super()._record(conn, items, instant, stats)
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


# What the record of a send writes even where the status stays (as the dispatcher's), and
# its own time.
_SENT_ALWAYS = transitions.OUTCOME_COLUMNS | {"updated_at"}
# The hand-off's verdicts under which nothing went out.
_NOT_HANDED = (Verdict.GONE, Verdict.WITHDRAWN, Verdict.NOT_MARKED)


def _plainly_sent(item: Any) -> bool:
    """Whether the dispatcher's record would move this message to ``sent``: handed over
    (or not journalled at all) and accepted."""
    return item.verdict not in _NOT_HANDED and item.result is not None


def _counts(item: Any) -> bool:
    """Whether a reserved message's outcome counts against caps (sent, or maybe sent)."""
    if _plainly_sent(item):
        return True
    return item.verdict not in _NOT_HANDED and isinstance(item.error, AmbiguousChannelError)


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

    def of_each(self, instants: dict[str, datetime], window: timedelta) -> tuple[Any, Any]:
        """:meth:`of` for customers each at an instant of their own."""
        history = {}
        handed: dict[tuple[str, str], datetime] = {}
        for cid, at in instants.items():
            since = at - window
            contacts = self._contacts[cid]
            if any(c.at <= since for c in contacts):
                contacts[:] = [c for c in contacts if c.at > since]
            history[cid] = contacts
            for journey, last in self._latest[cid].items():
                handed[(cid, journey)] = last
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

    An SMS's links carry its message id (a short link, a rating link), so its length, and
    with it its segments, depend on how many digits the id has. A message the forecast
    plans is rendered with the id the project's next message would get instead of its
    own: how the forecast numbers its messages (in one process or several,
    :mod:`aftersale.forecast_shards`) changes nothing in its figures.
    """

    render_processes = False  # a forecast renders only SMS, a few at a time

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        with self.db.connect() as conn:
            self._next_id = conn.execute(NEXT_MESSAGE_ID).scalar_one()

    def _job(self, item: Any) -> RenderJob:
        job = super()._job(item)
        if job.channel == "email" or job.parts is None or job.parts.id <= self._next_id:
            return job
        return dataclasses.replace(job, parts=dataclasses.replace(job.parts, id=self._next_id))

    def _reserve_tx(self, now: datetime, stats: DispatchStats) -> Any:
        """Reserve, "send" and record a batch in one transaction: the channels answer at
        once and nothing is handed over, so the record need not wait for a transaction of
        its own (nor write the batch's pages a second time). Each message "sent" here, in
        turn: the channels take microseconds and only an SMS is rendered, so handing each
        to a sending thread cost more than the send."""
        with self.db.begin() as conn:
            reserved, claimed = self._reserve(conn, now, stats)
            self._enqueue(reserved)
            for item in reserved:
                item.lease = (item.at or now) + self.config.lease
                self._deliver(item, self._job(item), None)
            if reserved:
                self._record(conn, reserved, now, stats)
        for item in reserved:
            self._busy.discard(item.row.customer_id)
        return [], claimed

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

"""The engine: applies events when their time comes, enrols customers and ends enrolments.

Everything here works on a SQLAlchemy connection inside the caller's transaction and takes
``now`` from the caller, so the same code runs on the real and on the simulated clock.
Enrolment and message idempotency rest on unique keys (``ON CONFLICT DO NOTHING``): applying
an event twice, or two processes applying it at once, plans nothing twice.

What an enrolment sends, and when, is worked out in ``campaigns.planning`` (its first and
next messages) and ``campaigns.timetable`` (when each step falls due); the tables and the
statements run every batch are in ``campaigns.store``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns import transitions
from campaigns.bookkeeping import (
    close_complaint,
    count_purchases,
    count_return,
    open_complaint,
    rate,
    store_figures,
    stored_orders,
)
from campaigns.bulk import unjournaled
from campaigns.idlists import id_in
from campaigns.journeys import DEFAULT_MIN_GAP, Journey, parse_duration, previous_view
from campaigns.models import CANCELLED, PLANNED, UTCDateTime
from campaigns.planning import (
    Planner,
    complete_enrollments,
    customer_context,
    message_row,
    order_context,
    plan_next,
    previous_outcomes,
)
from campaigns.store import (
    COMPLETE,
    CUSTOMERS,
    DUE_EVENTS,
    ENROLMENT_PLANNED,
    TIMETABLES,
    ActiveJourney,
    CustomerRow,
    DueEvent,
    _insert_ignore,
    customers_t,
    decisions_t,
    enrollments_t,
    events_t,
    items_t,
    journeys_t,
    load_customers,
    load_version,
    messages_t,
    purchases_t,
    select_fields,
    sync_journeys,
    versions_t,
)
from campaigns.timetable import (
    PlanCache,
    RelativePlan,
    add_months,
    from_micros,
    plan_steps,
    step_durations,
    to_micros,
)
from campaigns.timewindows import SendWindow
from campaigns.value import DEFAULT_SEGMENTS, SegmentRules, names_value
from campaigns.warning import alert_skus

__all__ = [
    "COMPLETE",
    "CUSTOMERS",
    "DUE_EVENTS",
    "ENROLMENT_PLANNED",
    "TIMETABLES",
    "ActiveJourney",
    "ApplyStats",
    "CustomerRow",
    "DueEvent",
    "Engine",
    "PlanCache",
    "Planner",
    "RelativePlan",
    "add_months",
    "complete_enrollments",
    "customer_context",
    "customers_t",
    "decisions_t",
    "end_enrollments",
    "fail_events",
    "retry_events",
    "enrollments_t",
    "events_t",
    "from_micros",
    "items_t",
    "journeys_t",
    "load_customers",
    "load_version",
    "message_row",
    "messages_t",
    "order_context",
    "plan_steps",
    "purchases_t",
    "select_fields",
    "step_durations",
    "sync_journeys",
    "to_micros",
    "versions_t",
]

CONSENT_EVENTS = {"unsubscribed": False, "subscribed": True}
PAUSED = sa.select(journeys_t.c.journey_id, journeys_t.c.paused)
log = logging.getLogger(__name__)


@dataclass
class ApplyStats:
    events: int = 0
    failed: int = 0
    enrollments: int = 0
    messages: int = 0
    cancelled: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    # The next batch, read and partly planned already (Engine.apply_all_due_in).
    ahead: Ahead | None = field(default=None, repr=False)


class _PurchaseReads(NamedTuple):
    rows: Sequence[Any]
    customers: dict[str, CustomerRow]
    stored: set[str]  # order ids stored before


class _PlannedPurchases(NamedTuple):
    rows: Sequence[Any]
    orders: list[dict[str, Any]]
    items: list[dict[str, Any]]
    figures: list[dict[str, Any]]  # the customers' figures with these orders
    plan: Planner


@dataclass
class Ahead:
    """The next batch of due events, read at the end of the last batch's transaction, and
    its first round of purchases planned while that transaction committed. Good only as
    long as no other connection has committed since: ``version`` is SQLite's ``PRAGMA
    data_version`` when it was read, which moves with every other connection's commit."""

    version: int
    rows: list[DueEvent]
    reads: _PurchaseReads | None
    planned: _PlannedPurchases | None = None

    def holds(self, conn: Connection) -> bool:
        """Whether nothing has changed since (call at the start of the next transaction,
        under its write lock)."""
        (version,) = conn.exec_driver_sql("PRAGMA data_version").one()
        return bool(version == self.version)


class Engine:
    """Applies due events against the active journeys."""

    def __init__(
        self,
        journeys: Mapping[str, ActiveJourney],
        *,
        timezone: str = "Europe/Berlin",
        segments: SegmentRules = DEFAULT_SEGMENTS,
    ) -> None:
        """``timezone``: the calendar of a customer who names none (warranties end by it)."""
        self.journeys = dict(journeys)
        self.zone = ZoneInfo(timezone)
        self._versions: dict[int, Journey] = {j.version_id: j.journey for j in journeys.values()}
        self._by_number: dict[tuple[str, int], Journey | None] = {}
        self.plans = PlanCache()
        # The ``[segments]`` thresholds conditions score customers by (campaigns.value).
        self.segments = segments
        # The SKUs under alert (campaigns.warning), read again for each batch of events.
        self.alerts: frozenset[str] = frozenset()
        # id(journey) -> (journey, whether its definition names a customer's value)
        self._names_value: dict[int, tuple[Journey, bool]] = {}

    def reads_value(self, journeys: Iterable[ActiveJourney]) -> bool:
        """Whether any of ``journeys`` may read what a customer is worth (``customer.orders``,
        ``customer.segment``, …: campaigns.value), so that planning must score the customer.
        Decided once per journey version from its definition's text."""
        for active in journeys:
            journey = active.journey
            known = self._names_value.get(id(journey))
            if known is None or known[0] is not journey:
                known = (journey, names_value(journey.model_dump_json()))
                self._names_value[id(journey)] = known
            if known[1]:
                return True
        return False

    def journey_for_version(self, conn: Connection, version_id: int) -> Journey:
        if version_id not in self._versions:
            self._versions[version_id] = load_version(conn, version_id)
        return self._versions[version_id]

    def step_condition(
        self, conn: Connection, journey_id: str, version: int, step_id: str
    ) -> str | None:
        """The send-time condition of a step in the version a message was planned with."""
        journey = self._journey_by_number(conn, journey_id, version)
        step = journey.step(step_id) if journey else None
        return step.condition if step else None

    def send_window(
        self, conn: Connection, journey_id: str, version: int, step_id: str
    ) -> SendWindow | None:
        """A step's own send window in the version a message was planned with, or None."""
        journey = self._journey_by_number(conn, journey_id, version)
        step = journey.step(step_id) if journey else None
        return step.window if step else None

    def bundle_window(self, conn: Connection, journey_id: str, version: int) -> timedelta | None:
        """How close a version's per-item messages bundle (campaigns.bundling); None: never."""
        journey = self._journey_by_number(conn, journey_id, version)
        return journey.bundle_window if journey else None

    def journey_at(self, conn: Connection, journey_id: str, version: int) -> Journey | None:
        """The definition a message was planned with (its journey's ``version``)."""
        return self._journey_by_number(conn, journey_id, version)

    def _journey_by_number(self, conn: Connection, journey_id: str, version: int) -> Journey | None:
        key = (journey_id, version)
        if key not in self._by_number:
            version_id = conn.execute(
                sa.select(versions_t.c.id).where(
                    versions_t.c.journey_id == journey_id, versions_t.c.version == version
                )
            ).scalar()
            self._by_number[key] = (
                self.journey_for_version(conn, version_id) if version_id else None
            )
        return self._by_number[key]

    def min_gap(self, conn: Connection, journey_id: str, version: int) -> timedelta:
        """The ``min_gap`` of a journey's version (the default when it is gone)."""
        journey = self._journey_by_number(conn, journey_id, version)
        return journey.spacing if journey else parse_duration(DEFAULT_MIN_GAP)

    def longest_min_gap(self) -> timedelta:
        """How far back a dispatcher must look to hold every journey's ``min_gap``."""
        gaps = [active.journey.spacing for active in self.journeys.values()]
        return max(gaps, default=parse_duration(DEFAULT_MIN_GAP))

    def previous_of(self, batch: Any, row: Any) -> dict[str, Any]:
        """``previous`` for a step condition of ``row``: how the message of the step listed
        before its step ended (its same occurrence, or its last one before).

        ``batch`` is the dispatcher's per-batch loader (``rows``, ``conn``, ``previous``):
        the outcomes of every row in it that asks are read in one statement, when first
        needed.
        """
        if batch.previous is None:
            conn = batch.conn
            batch.previous = previous_outcomes(
                conn, lambda jid, version: self._journey_by_number(conn, jid, version), batch.rows
            )
        return batch.previous.get(row.id) or previous_view(None, None)

    def plan_next(
        self,
        conn: Connection,
        finished: Iterable[Any],
        now: datetime,
        *,
        at: Mapping[int, datetime] | None = None,
    ) -> int:
        """Plan the message that follows each finished one (see ``campaigns.planning``)."""
        return plan_next(
            conn,
            lambda jid, version: self._journey_by_number(conn, jid, version),
            finished,
            now,
            at=at,
        )

    def apply_due_events(
        self,
        conn: Connection,
        now: datetime,
        *,
        limit: int = 2000,
        rows: Sequence[DueEvent] | None = None,
    ) -> ApplyStats:
        """Apply up to ``limit`` events whose time has come, oldest first; or, given
        ``rows``, those pending events, each at its own time where that is later than
        ``now`` (a simulation taking customers forward each on their own,
        :mod:`scheduler.simulation`).

        A bad event fails alone: the batch is applied under one SAVEPOINT, and if anything
        in it raises, it is rolled back and applied again event by event, each under its
        own, so that every other event still lands and the one at fault is set aside as
        failed (:func:`fail_events`). ``stats.events`` counts both.
        """
        return self._apply_due(conn, now, limit, _GUARDED, rows)

    def apply_due_events_in(self, db: sa.Engine, now: datetime, *, limit: int = 2000) -> ApplyStats:
        """:meth:`apply_due_events` in a transaction of its own, without a savepoint while
        nothing fails.

        On SQLite a savepoint copies every page its writes touch to a sub-journal, which
        cost a tenth of the database's time on a large ingest. So the batch is applied
        bare; if anything in it raises, the transaction is rolled back and the same events
        are applied again in a new one, each under its own savepoint, so that a bad event
        still fails alone.
        """
        try:
            with db.begin() as conn:
                return self._apply_due(conn, now, limit, _BARE)
        except _BatchFailed:
            pass
        with db.begin() as conn:
            return self._apply_due(conn, now, limit, _EACH)

    def apply_all_due_in(
        self, db: sa.Engine, now: datetime, *, limit: int = 2000
    ) -> Iterator[ApplyStats]:
        """Apply every event whose time has come, ``limit`` at a time, each batch as
        :meth:`apply_due_events_in` does; yields each batch's stats after it committed.

        On SQLite a full batch reads the next one before it commits, and plans that one's
        first purchases while it commits: SQLite writes the pages without the interpreter
        lock, so the planning's Python runs beside it. The next batch uses what was read
        and planned only if no other connection has committed in between (``PRAGMA
        data_version``, under the write lock its transaction starts with); otherwise it
        reads and plans again. Closing the iterator between batches leaves nothing open.
        """
        with db.connect() as conn:
            ahead: Ahead | None = None
            while True:
                stats = self._apply_batch(conn, now, limit, ahead)
                ahead = stats.ahead
                yield stats
                if stats.events < limit:
                    return

    def _apply_batch(
        self, conn: Connection, now: datetime, limit: int, ahead: Ahead | None
    ) -> ApplyStats:
        try:
            with conn.begin() as transaction:
                if ahead is not None and not ahead.holds(conn):
                    ahead = None
                stats = self._apply_due(conn, now, limit, _BARE, ahead=ahead)
                if stats.events == limit and conn.dialect.name == "sqlite":
                    stats.ahead = self._read_ahead(conn, now, limit)
                if stats.ahead is not None:
                    self._plan_while_committing(transaction, stats.ahead)
                return stats
        except _BatchFailed:
            pass
        with conn.begin():
            return self._apply_due(conn, now, limit, _EACH)

    def _read_ahead(self, conn: Connection, now: datetime, limit: int) -> Ahead | None:
        """Read the next batch, within the last one's transaction: its events, and what
        its first round of purchases is planned from. Whatever goes wrong here is left to
        the next batch's own transaction, which reads again."""
        try:
            (version,) = conn.exec_driver_sql("PRAGMA data_version").one()
            rows = [
                DueEvent._make(r) for r in conn.execute(DUE_EVENTS, {"now": now, "limit": limit})
            ]
            self._read_paused(conn)
            self.alerts = alert_skus(conn)
            first = [r for r in _in_rounds(rows)[0] if r.type == "purchase"] if rows else []
            return Ahead(version, rows, self._read_purchases(conn, first) if first else None)
        except Exception as exc:
            if _connection_lost(exc):
                raise
            log.warning("reading the next batch of events ahead failed: %s", exc)
            return None

    def _plan_while_committing(self, transaction: sa.Transaction, ahead: Ahead) -> None:
        failed: list[BaseException] = []

        def commit() -> None:
            try:
                transaction.commit()
            except BaseException as exc:  # raised again in the caller's thread
                failed.append(exc)

        committing = threading.Thread(target=commit, name="commit")
        committing.start()
        try:
            if ahead.reads is not None:
                try:
                    ahead.planned = self._plan_purchases(ahead.reads)
                except Exception:  # planned again in its own transaction, where it fails alone
                    ahead.reads = None
        finally:
            committing.join()
        if failed:
            raise failed[0]

    def _apply_due(
        self,
        conn: Connection,
        now: datetime,
        limit: int,
        how: str,
        rows: Sequence[DueEvent] | None = None,
        ahead: Ahead | None = None,
    ) -> ApplyStats:
        if ahead is not None:
            rows = ahead.rows
        if rows is None:
            rows = [
                DueEvent._make(r) for r in conn.execute(DUE_EVENTS, {"now": now, "limit": limit})
            ]
        failed: dict[str, BaseException] = {}
        try:
            if how == _EACH:
                stats, failed = self._apply_one_by_one(conn, rows)
            elif how == _BARE:
                stats = self._apply_rows(conn, rows, ahead)
            else:
                with conn.begin_nested():
                    stats = self._apply_rows(conn, rows)
        except Exception as exc:
            if _connection_lost(exc):
                raise
            if how == _BARE:
                raise _BatchFailed from exc
            stats, failed = self._apply_one_by_one(conn, rows)
        applied = [r.id for r in rows if r.id not in failed]
        if applied:  # at ``now``, or at its own time if that is later
            at = events_t.c.at
            conn.execute(
                unjournaled(events_t.update())
                .where(events_t.c.id.in_(applied))
                .values(
                    applied=True,
                    applied_at=sa.case((at > now, at), else_=sa.literal(now, UTCDateTime())),
                )
            )
        for row in rows:
            if row.id in failed:
                fail_events(conn, {row.id: failed[row.id]}, max(row.at, now))
        stats.events = len(rows)
        stats.failed = len(failed)
        for row in rows:
            stats.by_type[row.type] = stats.by_type.get(row.type, 0) + 1
        return stats

    def _apply_rows(
        self, conn: Connection, rows: Sequence[Any], ahead: Ahead | None = None
    ) -> ApplyStats:
        """Apply ``rows`` round by round (:func:`_in_rounds`); ``ahead``: the same rows, read
        in the last batch's transaction, with their first round's purchases planned."""
        stats = ApplyStats()
        if rows and ahead is None:
            self._read_paused(conn)
            self.alerts = alert_skus(conn)
        for number, group in enumerate(_in_rounds(rows)):
            planned = ahead.planned if ahead is not None and number == 0 else None
            self._apply_purchases(conn, [r for r in group if r.type == "purchase"], stats, planned)
            for row in group:
                if row.type != "purchase":
                    self._apply_other(conn, row, stats)
        return stats

    def _read_paused(self, conn: Connection) -> None:
        """Pausing or resuming a journey (in the console, in another process) holds or
        lets through new enrolments from the next batch of events on."""
        for journey_id, paused in conn.execute(PAUSED):
            active = self.journeys.get(journey_id)
            if active is not None and active.paused != bool(paused):
                self.journeys[journey_id] = replace(active, paused=bool(paused))

    def _apply_one_by_one(
        self, conn: Connection, rows: Sequence[Any]
    ) -> tuple[ApplyStats, dict[str, BaseException]]:
        total = ApplyStats()
        failed: dict[str, BaseException] = {}
        for row in rows:
            try:
                with conn.begin_nested():
                    one = self._apply_rows(conn, [row])
            except Exception as exc:
                if _connection_lost(exc):
                    raise
                failed[row.id] = exc
                continue
            total.enrollments += one.enrollments
            total.messages += one.messages
            total.cancelled += one.cancelled
        return total, failed

    # -- purchases -------------------------------------------------------------------

    def _apply_purchases(
        self,
        conn: Connection,
        rows: Sequence[Any],
        stats: ApplyStats,
        planned: _PlannedPurchases | None = None,
    ) -> None:
        """Store a round's purchases, enrol and plan; ``planned``: the same rows already
        read and planned (:class:`Ahead`)."""
        if not rows:
            return
        if planned is None:
            planned = self._plan_purchases(self._read_purchases(conn, rows))
        store_figures(conn, planned.figures)
        _insert_ignore(conn, purchases_t, planned.orders, ["id"])
        _insert_ignore(conn, items_t, planned.items, ["order_id", "position"])
        stats.enrollments += planned.plan.flush(conn)
        stats.messages += planned.plan.messages_planned
        # After planning, so that a purchase also ends an enrolment made earlier in this batch.
        self._exit_on_repurchase(conn, rows, stats)

    def _read_purchases(self, conn: Connection, rows: Sequence[Any]) -> _PurchaseReads:
        """What planning a round of purchases reads: their customers, and which of their
        orders are stored already."""
        customers = load_customers(conn, {r.customer_id for r in rows})
        ids = [(r.payload.get("order") or {}).get("id") for r in rows]
        return _PurchaseReads(rows, customers, stored_orders(conn, ids))

    def _plan_purchases(self, reads: _PurchaseReads) -> _PlannedPurchases:
        """Plan a round of purchases from what :meth:`_read_purchases` read: touches no
        database, so the next batch is planned while the last one commits."""
        rows, customers = reads.rows, reads.customers
        orders = []
        items = []
        for row in rows:
            order = row.payload.get("order") or {}
            orders.append(
                {
                    "id": order["id"],
                    "customer_id": row.customer_id,
                    "event_id": row.id,
                    "purchased_at": row.at,
                    "total": str(order.get("total", "0")),
                    "currency": order.get("currency", "EUR"),
                }
            )
            for position, item in enumerate(order.get("items") or []):
                items.append(_item_row(order["id"], position, item))
        plan = Planner(self, customers)
        # Each order's figures as they stand with it, only for journeys that may read them.
        reading = self.reads_value(plan.purchase_journeys())
        counted, figures = count_purchases(customers, orders, reads.stored, each=reading)
        for row in rows:
            if counted:
                after = counted.get((row.payload.get("order") or {}).get("id"))
                if after and row.customer_id in customers:  # as they stand with this order
                    customers[row.customer_id] = customers[row.customer_id]._replace(**after)
            plan.purchase(row)
        return _PlannedPurchases(rows, orders, items, figures, plan)

    def _exit_on_repurchase(self, conn: Connection, rows: Sequence[Any], stats: ApplyStats) -> None:
        """A purchase ends the customer's earlier enrolments in journeys whose goal it is."""
        goal = [j.journey.id for j in self.journeys.values() if j.journey.exit.goal == "repurchase"]
        if not goal:
            return
        bought: dict[str, list[tuple[datetime, str | None]]] = defaultdict(list)
        for row in rows:
            bought[row.customer_id].append((row.at, (row.payload.get("order") or {}).get("id")))
        e = enrollments_t.c
        active = conn.execute(
            sa.select(e.id, e.customer_id, e.order_id, e.enrolled_at).where(
                e.customer_id.in_(list(bought)), e.journey_id.in_(goal), e.status == "active"
            )
        )
        ends: dict[str, datetime] = {}
        for enrollment in active:
            later = [
                at
                for at, order_id in bought[enrollment.customer_id]
                if order_id != enrollment.order_id and at > enrollment.enrolled_at
            ]
            if later:
                ends[enrollment.id] = min(later)
        stats.cancelled += end_enrollments(conn, ends, "journey_exit:repurchase")

    # -- everything else -------------------------------------------------------------

    def _apply_other(self, conn: Connection, row: Any, stats: ApplyStats) -> None:
        payload = row.payload or {}
        order_id = payload.get("order")
        if isinstance(order_id, dict):
            order_id = order_id.get("id")
        if row.type == "complaint_opened":
            open_complaint(conn, row)
        elif row.type == "complaint_resolved":
            close_complaint(conn, row)
            self._resolve_complaint(conn, row)
        elif row.type == "satisfaction_rated":
            rate(conn, row)
        elif row.type in CONSENT_EVENTS:
            self._consent(conn, row, payload)
        elif row.type == "warranty_extended":
            cond = items_t.c.order_id == order_id
            if payload.get("sku"):
                cond = sa.and_(cond, items_t.c.sku == payload["sku"])
            conn.execute(items_t.update().where(cond).values(warranty_extended_at=row.at))
        elif row.type == "return" and order_id:
            count_return(conn, row.customer_id, order_id, row.at)
            params = {"customer": row.customer_id, "order": order_id}
            stats.cancelled += _end_matching(
                conn, _ACTIVE_OF_ORDER, params, "journey_exit:return", row.at
            )
        stats.cancelled += self._exit_on_event(conn, row, order_id)
        triggered = [j for j in self.journeys.values() if j.journey.trigger.event == row.type]
        if triggered:
            customers = load_customers(conn, {row.customer_id})
            plan = Planner(self, customers)
            plan.event(row, triggered)
            stats.enrollments += plan.flush(conn)
            stats.messages += plan.messages_planned

    def _exit_on_event(self, conn: Connection, row: Any, order_id: str | None) -> int:
        """End the customer's enrolments in the journeys ``row``'s type exits: of its order
        when it names one (else all of them), and of a per-item journey only the items with
        its ``sku`` when it names one."""
        exiting = [
            j.journey.id for j in self.journeys.values() if row.type in j.journey.exit.events
        ]
        if not exiting:
            return 0
        sku = (row.payload or {}).get("sku")
        params = {"customer": row.customer_id, "journeys": exiting, "order": order_id}
        if sku:
            params["sku"] = str(sku)
        return _end_matching(
            conn, _EXITING[(bool(order_id), bool(sku))], params, f"journey_exit:{row.type}", row.at
        )

    def _resolve_complaint(self, conn: Connection, row: Any) -> None:
        customer = {"customer": row.customer_id}
        conn.execute(_CLOSE_ONE_COMPLAINT, customer)
        if conn.execute(_OPEN_COMPLAINTS, customer).scalar():
            return
        ids = conn.execute(_HELD_FOR_COMPLAINT, customer).all()
        if not ids:
            return
        conn.execute(_RELEASE_HELD, {**customer, "at": row.at})
        conn.execute(
            decisions_t.insert(),
            [
                {
                    "message_id": mid,
                    "at": row.at,
                    "action": "released",
                    "reason": "complaint_resolved",
                    "due_before": due,
                    "due_after": row.at,
                }
                for mid, due in ids
            ],
        )

    def _consent(self, conn: Connection, row: Any, payload: Mapping[str, Any]) -> None:
        channel = payload.get("channel", "email")
        column = {"email": "email_consent", "sms": "sms_consent"}.get(channel)
        if column is None:
            return
        conn.execute(
            customers_t.update()
            .where(customers_t.c.id == row.customer_id)
            .values({column: CONSENT_EVENTS[row.type], f"{column}_source": f"event:{row.id}"})
        )


# How a batch of events is applied: under one savepoint, bare, or each under its own.
_GUARDED, _BARE, _EACH = "guarded", "bare", "each"


class _BatchFailed(Exception):
    """An event of a batch applied bare raised: its transaction must be rolled back."""


def _in_rounds(rows: Sequence[Any]) -> list[list[Any]]:
    """``rows`` in rounds: each customer's first event in the first, their second in the
    second, and so on. One customer's events touch no other customer's rows, so each
    customer's events still come in their order, and the purchases of a round (of
    different customers) are applied together however other events fall between them."""
    rounds: list[list[Any]] = []
    seen: dict[str, int] = {}
    for row in rows:
        k = seen.get(row.customer_id, 0)
        seen[row.customer_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(row)
    return rounds


def _connection_lost(exc: BaseException) -> bool:
    """A fault of the connection, not of the event: the caller retries the transaction."""
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


def fail_events(conn: Connection, failed: Mapping[str, BaseException], now: datetime) -> None:
    """Set events aside as failed (``error:<kind>``, the exception's text as detail).

    A failed event counts as applied, so no tick applies it again; each is logged once,
    here. :func:`retry_events` queues it again.
    """
    for event_id, exc in failed.items():
        kind = type(exc).__name__
        log.error("event %s failed and is set aside: %s: %s", event_id, kind, exc)
        conn.execute(
            events_t.update()
            .where(events_t.c.id == event_id)
            .values(
                applied=True,
                failed_at=now,
                error=f"error:{kind}",
                error_detail=f"{kind}: {exc}"[:2000],
            )
        )


def retry_events(conn: Connection, ids: Iterable[str] | None = None) -> list[str]:
    """Queue failed events again (those of ``ids``, or every failed one); returns their ids.

    They are applied by the next tick, as any event whose time has come.
    """
    failed = events_t.c.failed_at.is_not(None)
    if ids is not None:
        failed = sa.and_(failed, events_t.c.id.in_(list(ids)))
    found = list(
        conn.execute(sa.select(events_t.c.id).where(failed).order_by(events_t.c.id)).scalars()
    )
    if found:
        conn.execute(
            events_t.update()
            .where(events_t.c.id.in_(found))
            .values(applied=False, applied_at=None, failed_at=None, error=None, error_detail=None)
        )
    return found


def end_enrollments(conn: Connection, ends: Mapping[str, datetime], reason: str) -> int:
    """End the given active enrolments (id → when) and cancel their planned messages.

    Returns how many planned messages were cancelled.
    """
    if not ends:
        return 0
    status = "exited" if reason.startswith("journey_exit") else "cancelled"
    params = [
        {"eid": eid, "at": at, "ended_as": status, "reason": reason}
        for eid, at in sorted(ends.items())
    ]
    counted = conn.execute(_CANCELLABLE, {"ids": list(ends)}).scalar_one()
    conn.execute(_END_ENROLMENT, params)
    conn.execute(_CANCEL_HISTORY, params)
    conn.execute(_CANCEL_PLANNED, params)
    return counted


# What ending enrolments runs (one set of bind values per enrolment: ``eid``, ``at``,
# ``ended_as``, ``reason``), built once: an event that ends one runs them for it alone.
# (No value may be named ``status``: it would stand for the messages' new status.)
_AT = sa.bindparam("at", type_=UTCDateTime())
_REASON = sa.bindparam("reason", type_=sa.String())
_OF_ENROLMENT = messages_t.c.enrollment_id == sa.bindparam("eid")
# The enrolments' messages that may be cancelled (those still planned), as the transition
# table says; the count, the decision rows and the move read the same condition.
_CANCELLABLE = sa.select(sa.func.count()).where(
    id_in(messages_t.c.enrollment_id), transitions.movable(CANCELLED)
)
_END_ENROLMENT = (
    enrollments_t.update()
    .where(enrollments_t.c.id == sa.bindparam("eid"))
    .values(status=sa.bindparam("ended_as"), reason=_REASON, ended_at=_AT)
)
_CANCEL_HISTORY = decisions_t.insert().from_select(
    ["message_id", "at", "action", "reason", "due_before"],
    sa.select(messages_t.c.id, _AT, sa.literal("cancelled"), _REASON, messages_t.c.due_at).where(
        _OF_ENROLMENT, transitions.movable(CANCELLED)
    ),
)
_CANCEL_PLANNED = transitions.move_where_statement(
    CANCELLED, _OF_ENROLMENT, {"reason": _REASON, "updated_at": _AT}
)


def _end_matching(
    conn: Connection, select_ids: Any, params: Mapping[str, Any], reason: str, at: datetime
) -> int:
    ids = [r[0] for r in conn.execute(select_ids, params)]
    return end_enrollments(conn, dict.fromkeys(ids, at), reason)


def _exiting(order: bool, sku: bool) -> Any:
    """The customer's active enrolments in the exiting journeys: of one order, of the items
    with one SKU (a per-item journey's), or all of them."""
    e = enrollments_t.c
    cond = sa.and_(
        e.customer_id == sa.bindparam("customer"), id_in(e.journey_id, "journeys"),
        e.status == "active",
    )  # fmt: skip
    if order:
        cond = sa.and_(cond, e.order_id == sa.bindparam("order"))
    if sku:
        that_item = (
            sa.select(items_t.c.position)
            .where(
                items_t.c.order_id == e.order_id,
                items_t.c.position == e.item_position,
                items_t.c.sku == sa.bindparam("sku"),
            )
            .exists()
        )
        cond = sa.and_(cond, sa.or_(e.item_position.is_(None), that_item))
    return sa.select(e.id).where(cond)


_EXITING = {(order, sku): _exiting(order, sku) for order in (False, True) for sku in (False, True)}
_ACTIVE_OF_ORDER = sa.select(enrollments_t.c.id).where(
    enrollments_t.c.order_id == sa.bindparam("order"),
    enrollments_t.c.customer_id == sa.bindparam("customer"),
    enrollments_t.c.status == "active",
)


# A resolved complaint: one fewer open, and once none is, the messages it held released.
_CLOSE_ONE_COMPLAINT = (
    customers_t.update()
    .where(customers_t.c.id == sa.bindparam("customer"), customers_t.c.open_complaints > 0)
    .values(open_complaints=customers_t.c.open_complaints - 1)
)
_OPEN_COMPLAINTS = sa.select(customers_t.c.open_complaints).where(
    customers_t.c.id == sa.bindparam("customer")
)
# A customer's messages held for a complaint, found through the customer's index: compared
# as text, the status cannot draw SQLite's planner to ix_messages_due and through every
# planned message of the shop at each resolved complaint.
_HELD = sa.and_(
    messages_t.c.customer_id == sa.bindparam("customer"),
    messages_t.c.status.concat("") == PLANNED,
    messages_t.c.reason == "complaint_open",
)
_HELD_FOR_COMPLAINT = sa.select(messages_t.c.id, messages_t.c.due_at).where(_HELD)
_RELEASE_HELD = messages_t.update().where(_HELD).values(due_at=_AT, reason=None)


def _item_row(order_id: str, position: int, item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "position": position,
        "sku": str(item.get("sku", "")),
        "name": str(item.get("name", "")),
        "category": str(item.get("category", "")),
        "price": str(item.get("price", "0")),
        "quantity": int(item.get("quantity", 1)),
        "warranty_months": item.get("warranty_months"),
        "inspection_interval_days": item.get("inspection_interval_days"),
    }

"""The engine: applies events when their time comes, enrols customers and plans messages.

Everything here works on a SQLAlchemy connection inside the caller's transaction and takes
``now`` from the caller, so the same code runs on the real and on the simulated clock.
Enrolment and message idempotency rest on unique keys (``ON CONFLICT DO NOTHING``): applying
an event twice, or two processes applying it at once, plans nothing twice.
"""

from __future__ import annotations

import calendar
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.bulk import executemany
from campaigns.importing import insert_ignore_statement
from campaigns.journeys import (
    Journey,
    Step,
    customer_view,
    evaluate,
    parse_duration,
    resolve_duration,
)
from campaigns.models import (
    CANCELLED,
    PLANNED,
    SENDING,
    Customer,
    Enrollment,
    Event,
    JourneyState,
    JourneyVersion,
    Message,
    MessageDecision,
    Purchase,
    PurchaseItem,
    UTCDateTime,
)

customers_t = Customer.__table__
events_t = Event.__table__
purchases_t = Purchase.__table__
items_t = PurchaseItem.__table__
versions_t = JourneyVersion.__table__
journeys_t = JourneyState.__table__
enrollments_t = Enrollment.__table__
messages_t = Message.__table__
decisions_t = MessageDecision.__table__

CONSENT_EVENTS = {"unsubscribed": False, "subscribed": True}


def select_fields(table: sa.Table, row: type[tuple]) -> sa.Select:
    """A select of ``table``'s columns named by the tuple type ``row``, in its order.

    Rows read on hot paths come back as plain named tuples: a SQLAlchemy Row's attribute
    costs ten times a tuple's, and planning and dispatching read dozens per event or message.
    """
    return sa.select(*(table.c[name] for name in row._fields))  # type: ignore[attr-defined]


class CustomerRow(NamedTuple):
    """What planning, policy and templates read of a customer: not the bookkeeping times
    and sources."""

    id: str
    email: str | None
    phone: str | None
    first_name: str
    last_name: str
    locale: str
    timezone: str | None
    email_consent: bool
    sms_consent: bool
    open_complaints: int
    attributes: dict[str, Any]


class DueEvent(NamedTuple):
    """What applying an event reads of it."""

    id: str
    type: str
    customer_id: str
    at: datetime
    payload: dict[str, Any]


# An enrolment's planned messages, next to a condition on messages.enrollment_id. They are
# found through the first column of the unique key (enrollment_id, step, occurrence): an
# enrolment has a few messages. Compared as text (`status || ''`), the status cannot draw
# SQLite's planner, which knows nothing of those counts, to ix_messages_due (status,
# due_at) and through every planned message of every customer instead.
ENROLMENT_PLANNED = messages_t.c.status.concat("") == PLANNED

# Statements run every tick or batch, built once: building one costs more than running it.
CUSTOMERS = select_fields(customers_t, CustomerRow).where(
    customers_t.c.id.in_(sa.bindparam("ids", expanding=True))
)
DUE_EVENTS = (
    select_fields(events_t, DueEvent)
    .where(events_t.c.applied.is_(False), events_t.c.at <= sa.bindparam("now", type_=UTCDateTime()))
    .order_by(events_t.c.at, events_t.c.id)
    .limit(sa.bindparam("limit"))
)
_e = enrollments_t.c
TIMETABLES = sa.select(_e.id, _e.customer_id, _e.order_id, _e.schedule).where(
    _e.id.in_(sa.bindparam("ids", expanding=True)),
    _e.status == "active",
    _e.schedule.is_not(None),
)
COMPLETE = (
    enrollments_t.update()
    .where(
        _e.id.in_(sa.bindparam("ids", expanding=True)),
        _e.status == "active",
        ~sa.select(messages_t.c.id)
        .where(messages_t.c.enrollment_id == _e.id, messages_t.c.status.in_((PLANNED, SENDING)))
        .exists(),
    )
    .values(status="completed", ended_at=sa.bindparam("now", type_=UTCDateTime()))
)


@dataclass(frozen=True)
class ActiveJourney:
    """A journey's current version as the engine uses it."""

    journey: Journey
    version_id: int
    version: int
    paused: bool = False


@dataclass
class ApplyStats:
    events: int = 0
    enrollments: int = 0
    messages: int = 0
    cancelled: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day-of-month ``months`` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# ---------------------------------------------------------------------------- journeys


def sync_journeys(
    conn: Connection, loaded: Iterable[tuple[Journey, str]], now: datetime
) -> dict[str, ActiveJourney]:
    """Store each definition, adding a version when it changed; running enrolments keep theirs."""
    active: dict[str, ActiveJourney] = {}
    for journey, source in loaded:
        digest = journey.digest()
        row = conn.execute(
            sa.select(versions_t.c.id, versions_t.c.version).where(
                versions_t.c.journey_id == journey.id, versions_t.c.digest == digest
            )
        ).first()
        if row is None:
            latest = conn.execute(
                sa.select(sa.func.max(versions_t.c.version)).where(
                    versions_t.c.journey_id == journey.id
                )
            ).scalar()
            version = (latest or 0) + 1
            version_id = conn.execute(
                versions_t.insert()
                .values(
                    journey_id=journey.id,
                    version=version,
                    digest=digest,
                    name=journey.name,
                    definition=journey.model_dump(mode="json", by_alias=True),
                    source_file=source,
                    created_at=now,
                )
                .returning(versions_t.c.id)
            ).scalar_one()
        else:
            version_id, version = row
        _set_current(conn, journey.id, version_id)
        paused = conn.execute(
            sa.select(journeys_t.c.paused).where(journeys_t.c.journey_id == journey.id)
        ).scalar()
        active[journey.id] = ActiveJourney(journey, version_id, version, bool(paused))
    known = set(active)
    conn.execute(
        journeys_t.update().where(journeys_t.c.journey_id.not_in(known)).values(active=False)
    )
    return active


def _set_current(conn: Connection, journey_id: str, version_id: int) -> None:
    updated = conn.execute(
        journeys_t.update()
        .where(journeys_t.c.journey_id == journey_id)
        .values(current_version_id=version_id, active=True)
    ).rowcount
    if not updated:
        conn.execute(
            journeys_t.insert().values(
                journey_id=journey_id, current_version_id=version_id, paused=False, active=True
            )
        )


def load_version(conn: Connection, version_id: int) -> Journey:
    definition = conn.execute(
        sa.select(versions_t.c.definition).where(versions_t.c.id == version_id)
    ).scalar_one()
    return Journey.model_validate(definition)


# ------------------------------------------------------------------------------ events


class Engine:
    """Applies due events against the active journeys."""

    def __init__(self, journeys: Mapping[str, ActiveJourney]) -> None:
        self.journeys = dict(journeys)
        self._versions: dict[int, Journey] = {j.version_id: j.journey for j in journeys.values()}
        self._by_number: dict[tuple[str, int], Journey | None] = {}
        self.plans = PlanCache()

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

    def plan_next(self, conn: Connection, finished: Iterable[Any], now: datetime) -> int:
        """Plan the message that follows each finished one in its enrolment's timetable.

        ``finished`` are message rows (enrollment_id, journey_id, journey_version, step,
        occurrence) that just reached a terminal status. An enrolment that has ended plans
        nothing more; one whose timetable is exhausted, with no message left to send, is
        marked ``completed``. Idempotent: the message's unique key makes a repeat a no-op.
        Returns how many messages were planned.
        """
        finished = list(finished)
        candidates = [
            (row, journey)
            for row in finished
            if (journey := self._journey_by_number(conn, row.journey_id, row.journey_version))
            and journey.has_several_messages
        ]
        enrolments = _timetables(conn, {row.enrollment_id for row, _ in candidates})
        messages = []
        for row, journey in candidates:  # the message's version is its enrolment's
            enrolment = enrolments.get(row.enrollment_id)
            upcoming = _after(enrolment.schedule, row.step, row.occurrence) if enrolment else None
            if upcoming is None:
                continue
            step_id, occurrence, due, expires = upcoming
            step = journey.step(step_id)
            if step is None:
                continue
            messages.append(
                message_row(
                    enrolment.id,
                    enrolment.customer_id,
                    enrolment.order_id,
                    row.journey_id,
                    row.journey_version,
                    step,
                    occurrence,
                    from_micros(due),
                    from_micros(expires) if expires is not None else None,
                    now,
                )  # fmt: skip
            )
        _insert_ignore(conn, messages_t, messages, ["enrollment_id", "step", "occurrence"])
        going_on = {m["enrollment_id"] for m in messages}
        complete_enrollments(conn, {r.enrollment_id for r in finished} - going_on, now)
        return len(messages)

    def apply_due_events(self, conn: Connection, now: datetime, *, limit: int = 2000) -> ApplyStats:
        """Apply up to ``limit`` events whose time has come, oldest first."""
        rows = [DueEvent._make(r) for r in conn.execute(DUE_EVENTS, {"now": now, "limit": limit})]
        stats = ApplyStats()
        purchases: list[Any] = []
        for row in rows:
            if row.type == "purchase":
                purchases.append(row)
                continue
            self._apply_purchases(conn, purchases, stats)
            purchases = []
            self._apply_other(conn, row, stats)
        self._apply_purchases(conn, purchases, stats)
        if rows:
            conn.execute(
                events_t.update()
                .where(events_t.c.id.in_([r.id for r in rows]))
                .values(applied=True, applied_at=now)
            )
        stats.events = len(rows)
        for row in rows:
            stats.by_type[row.type] = stats.by_type.get(row.type, 0) + 1
        return stats

    # -- purchases -------------------------------------------------------------------

    def _apply_purchases(self, conn: Connection, rows: Sequence[Any], stats: ApplyStats) -> None:
        if not rows:
            return
        customers = load_customers(conn, {r.customer_id for r in rows})
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
        _insert_ignore(conn, purchases_t, orders, ["id"])
        _insert_ignore(conn, items_t, items, ["order_id", "position"])
        plan = Planner(self, customers)
        for row in rows:
            plan.purchase(row)
        stats.enrollments += plan.flush(conn)
        stats.messages += plan.messages_planned
        # After planning, so that a purchase also ends an enrolment made earlier in this batch.
        self._exit_on_repurchase(conn, rows, stats)

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
            conn.execute(
                customers_t.update()
                .where(customers_t.c.id == row.customer_id)
                .values(open_complaints=customers_t.c.open_complaints + 1)
            )
        elif row.type == "complaint_resolved":
            self._resolve_complaint(conn, row)
        elif row.type in CONSENT_EVENTS:
            self._consent(conn, row, payload)
        elif row.type == "warranty_extended":
            cond = items_t.c.order_id == order_id
            if payload.get("sku"):
                cond = sa.and_(cond, items_t.c.sku == payload["sku"])
            conn.execute(items_t.update().where(cond).values(warranty_extended_at=row.at))
        elif row.type == "return" and order_id:
            conn.execute(
                purchases_t.update().where(purchases_t.c.id == order_id).values(returned_at=row.at)
            )
            cond = sa.and_(
                enrollments_t.c.order_id == order_id,
                enrollments_t.c.customer_id == row.customer_id,
                enrollments_t.c.status == "active",
            )
            stats.cancelled += _end_matching(conn, cond, "journey_exit:return", row.at)
        stats.cancelled += self._exit_on_event(conn, row, order_id)
        triggered = [j for j in self.journeys.values() if j.journey.trigger.event == row.type]
        if triggered:
            customers = load_customers(conn, {row.customer_id})
            plan = Planner(self, customers)
            plan.event(row, triggered)
            stats.enrollments += plan.flush(conn)
            stats.messages += plan.messages_planned

    def _exit_on_event(self, conn: Connection, row: Any, order_id: str | None) -> int:
        exiting = [
            j.journey.id for j in self.journeys.values() if row.type in j.journey.exit.events
        ]
        if not exiting:
            return 0
        cond = sa.and_(
            enrollments_t.c.customer_id == row.customer_id,
            enrollments_t.c.journey_id.in_(exiting),
            enrollments_t.c.status == "active",
        )
        if order_id:
            cond = sa.and_(cond, enrollments_t.c.order_id == order_id)
        return _end_matching(conn, cond, f"journey_exit:{row.type}", row.at)

    def _resolve_complaint(self, conn: Connection, row: Any) -> None:
        conn.execute(
            customers_t.update()
            .where(customers_t.c.id == row.customer_id, customers_t.c.open_complaints > 0)
            .values(open_complaints=customers_t.c.open_complaints - 1)
        )
        still_open = conn.execute(
            sa.select(customers_t.c.open_complaints).where(customers_t.c.id == row.customer_id)
        ).scalar()
        if still_open:
            return
        held = sa.and_(
            messages_t.c.customer_id == row.customer_id,
            messages_t.c.status == PLANNED,
            messages_t.c.reason == "complaint_open",
        )
        ids = conn.execute(sa.select(messages_t.c.id, messages_t.c.due_at).where(held)).all()
        if not ids:
            return
        conn.execute(messages_t.update().where(held).values(due_at=row.at, reason=None))
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


def end_enrollments(conn: Connection, ends: Mapping[str, datetime], reason: str) -> int:
    """End the given active enrolments (id → when) and cancel their planned messages.

    Returns how many planned messages were cancelled.
    """
    if not ends:
        return 0
    status = "exited" if reason.startswith("journey_exit") else "cancelled"
    params = [{"eid": eid, "at": at} for eid, at in sorted(ends.items())]
    at_param = sa.bindparam("at", type_=UTCDateTime())
    planned = sa.and_(messages_t.c.enrollment_id == sa.bindparam("eid"), ENROLMENT_PLANNED)
    counted = conn.execute(
        sa.select(sa.func.count()).where(
            messages_t.c.enrollment_id.in_(list(ends)), ENROLMENT_PLANNED
        )
    ).scalar_one()
    conn.execute(
        enrollments_t.update()
        .where(enrollments_t.c.id == sa.bindparam("eid"))
        .values(status=status, reason=reason, ended_at=at_param),
        params,
    )
    history = sa.select(
        messages_t.c.id, at_param, sa.literal("cancelled"), sa.literal(reason), messages_t.c.due_at
    ).where(planned)
    conn.execute(
        decisions_t.insert().from_select(
            ["message_id", "at", "action", "reason", "due_before"], history
        ),
        params,
    )
    conn.execute(
        messages_t.update()
        .where(planned)
        .values(status=CANCELLED, reason=reason, updated_at=at_param),
        params,
    )
    return counted


def _timetables(conn: Connection, ids: set[str]) -> dict[str, Any]:
    """The active enrolments among ``ids`` that keep a timetable, by id."""
    if not ids:
        return {}
    return {r.id: r for r in conn.execute(TIMETABLES, {"ids": sorted(ids)})}


def complete_enrollments(conn: Connection, ids: Iterable[str], now: datetime) -> int:
    """Mark active enrolments ``completed`` when none of their messages waits to be sent.

    An enrolment planned before timetables existed may still hold later planned messages;
    it completes only when the last of them ends. Returns how many were completed.
    """
    ids = sorted(ids)
    if not ids:
        return 0
    return conn.execute(COMPLETE, {"ids": ids, "now": now}).rowcount


def _end_matching(conn: Connection, condition: Any, reason: str, at: datetime) -> int:
    ids = [r[0] for r in conn.execute(sa.select(enrollments_t.c.id).where(condition))]
    return end_enrollments(conn, dict.fromkeys(ids, at), reason)


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


def load_customers(conn: Connection, ids: Iterable[str]) -> dict[str, CustomerRow]:
    """The customers with these ids, by id (unknown ids are left out)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    return {r.id: CustomerRow._make(r) for r in conn.execute(CUSTOMERS, {"ids": ids})}


def _insert_ignore(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]):
    """Bulk insert that leaves rows with an existing unique key alone.

    Rows go in key order: side by side in the indexes they touch far fewer pages than
    scattered, and the sort is stable, so of two rows with one key the first still wins.
    """
    if not rows:
        return
    rows = sorted(rows, key=operator.itemgetter(*keys))
    executemany(conn, insert_ignore_statement(conn, table, tuple(keys)), rows)


# ------------------------------------------------------------------------------ planning


def customer_context(row: Any, today_year: int) -> dict[str, Any]:
    base = {
        "id": row.id,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "email": row.email,
        "phone": row.phone,
        "locale": row.locale,
        "timezone": row.timezone,
        "email_consent": row.email_consent,
        "sms_consent": row.sms_consent,
    }
    return customer_view(base, row.attributes or {}, today_year)


def order_context(order: Mapping[str, Any], at: datetime) -> tuple[dict[str, Any], list[dict]]:
    items = []
    for position, raw in enumerate(order.get("items") or []):
        item = {
            "position": position,
            "sku": raw.get("sku", ""),
            "name": raw.get("name", ""),
            "category": raw.get("category", ""),
            "price": Decimal(str(raw.get("price", "0"))),
            "quantity": int(raw.get("quantity", 1)),
            "warranty_months": raw.get("warranty_months"),
            "inspection_interval_days": raw.get("inspection_interval_days"),
        }
        months = item["warranty_months"]
        item["warranty_end"] = add_months(at, int(months)) if months else None
        items.append(item)
    ctx = {
        "id": order.get("id"),
        "total": Decimal(str(order.get("total", "0"))),
        "currency": order.get("currency", "EUR"),
        "purchased_at": at,
        "items": items,
    }
    return ctx, items


class Planner:
    """Collects enrolments and messages for a batch of events, then writes them in bulk."""

    def __init__(self, engine: Engine, customers: Mapping[str, Any]) -> None:
        self.engine = engine
        self.customers = customers
        self.enrollments: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.messages_planned = 0

    def purchase(self, row: Any) -> None:
        journeys = [
            j for j in self.engine.journeys.values() if j.journey.trigger.event == "purchase"
        ]
        self.event(row, journeys)

    def event(self, row: Any, journeys: Sequence[ActiveJourney]) -> None:
        customer_row = self.customers.get(row.customer_id)
        if customer_row is None:
            return
        customer = customer_context(customer_row, row.at.year)
        raw_order = row.payload.get("order") if isinstance(row.payload.get("order"), dict) else {}
        order, items = order_context(raw_order or {}, row.at)
        event = {"id": row.id, "type": row.type, "at": row.at, **row.payload}
        base = {"customer": customer, "order": order, "event": event, "now": row.at}
        whole = {**base, "item": None}
        for active in journeys:
            if active.paused:
                continue
            journey = active.journey
            if not _safe_eval(journey.trigger.condition, whole):
                continue
            if not _safe_eval(journey.audience, whole):
                continue
            if journey.trigger.for_each == "item":
                for item in items:
                    ctx = {**base, "item": item}
                    if _safe_eval(journey.trigger.item_condition, ctx):
                        self._enrol(active, row, order, item, ctx)
            else:
                self._enrol(active, row, order, None, whole)

    def _enrol(self, active: ActiveJourney, row: Any, order: Mapping, item: Mapping | None, ctx):
        journey = active.journey
        order_id = order.get("id")
        key = _entry_key(journey.effective_reentry, row.id, order_id, item)
        enrollment_id = f"{journey.id}:{row.customer_id}:{key}"
        plan = self.engine.plans.timetable(journey, row.at, order, item, ctx)
        at = row.at
        if len(plan.entries) > 1:
            base = to_micros(at)
            schedule = [
                [step, k, base + due, None if expires is None else base + expires]
                for step, k, due, expires in plan.micros
            ]
        else:
            schedule = None
        self.enrollments.append(
            {
                "id": enrollment_id,
                "journey_id": journey.id,
                "journey_version_id": active.version_id,
                "customer_id": row.customer_id,
                "order_id": order_id,
                "item_position": item["position"] if item else None,
                "entry_key": key,
                "trigger_event_id": row.id,
                "status": "active",
                "enrolled_at": at,
                "schedule": schedule,
            }
        )
        if plan.entries:
            step, occurrence, due, expires = plan.entries[0]
            self.messages.append(
                message_row(
                    enrollment_id,
                    row.customer_id,
                    order_id,
                    journey.id,
                    active.version,
                    step,
                    occurrence,
                    at + due,
                    None if expires is None else at + expires,
                    at,
                )  # fmt: skip
            )

    def flush(self, conn: Connection) -> int:
        _insert_ignore(conn, enrollments_t, self.enrollments, ["id"])
        _insert_ignore(conn, messages_t, self.messages, ["enrollment_id", "step", "occurrence"])
        self.messages_planned = len(self.messages)
        count = len(self.enrollments)
        self.enrollments, self.messages = [], []
        return count


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, compact, and cheap in JSON."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _after(schedule: Sequence[Sequence[Any]] | None, step: str, occurrence: int) -> Any:
    """The timetable entry that follows (step, occurrence), or None."""
    for index, entry in enumerate(schedule or ()):
        if entry[0] == step and entry[1] == occurrence:
            return schedule[index + 1] if index + 1 < len(schedule) else None
    return None


def message_row(
    enrollment_id: str,
    customer_id: str,
    order_id: str | None,
    journey_id: str,
    version: int,
    step: Step,
    occurrence: int,
    due: datetime,
    expires: datetime | None,
    planned_at: datetime,
) -> dict[str, Any]:
    """A planned message of ``step``, ready for a bulk insert."""
    return {
        "enrollment_id": enrollment_id,
        "customer_id": customer_id,
        "order_id": order_id,
        "journey_id": journey_id,
        "journey_version": version,
        "step": step.id,
        "occurrence": occurrence,
        "channel": step.send.channel,
        "category": step.send.category,
        "template": step.send.template,
        "priority": step.send.priority,
        "status": PLANNED,
        "due_at": due,
        "planned_at": planned_at,
        "expires_at": expires,
        "attempts": 0,
        "details": {},
    }


def _entry_key(reentry: str, event_id: str, order_id: str | None, item: Mapping | None) -> str:
    position = f"#{item['position']}" if item else ""
    if reentry == "once":
        return "once" + position
    if reentry == "always" or not order_id:
        return f"event:{event_id}{position}"
    return f"order:{order_id}{position}"


def _safe_eval(source: str | None, context: Mapping[str, Any]) -> bool:
    try:
        return evaluate(source, context)
    except Exception:  # noqa: BLE001 - a failing condition excludes, it never stops the engine
        return False


def plan_steps(
    journey: Journey,
    trigger_at: datetime,
    order: Mapping[str, Any],
    item: Mapping[str, Any] | None,
    ctx: Mapping[str, Any],
) -> list[tuple[Step, int, datetime, datetime | None]]:
    """Every (step, occurrence, due, expires) of an enrolment started at ``trigger_at``."""
    return _plan(journey, step_durations(journey, ctx), *_anchors(trigger_at, order, item))


def _anchors(
    trigger_at: datetime, order: Mapping[str, Any], item: Mapping[str, Any] | None
) -> tuple[datetime, datetime, datetime | None]:
    """The times a step can wait from: the trigger, the purchase and the warranty's end."""
    warranty_end = item.get("warranty_end") if item else None
    return trigger_at, order.get("purchased_at") or trigger_at, warranty_end


def step_durations(journey: Journey, ctx: Mapping[str, Any]) -> tuple[Any, ...]:
    """Each step's (wait, every) in this context, or None where an expression fails."""
    memo: dict[str, timedelta] = {}  # the same expression often serves several steps
    durations: list[tuple[timedelta, timedelta | None] | None] = []
    for step in journey.steps:
        try:
            wait = _duration(memo, step.wait, ctx)
            every = _duration(memo, step.repeat.every, ctx) if step.repeat else None
        except Exception:  # noqa: BLE001 - an expression that fails for this item plans nothing
            durations.append(None)
            continue
        durations.append((wait, every))
    return tuple(durations)


def _plan(
    journey: Journey,
    durations: Sequence[Any],
    trigger_at: datetime,
    purchased_at: datetime,
    warranty_end: datetime | None,
) -> list[tuple[Step, int, datetime, datetime | None]]:
    planned: list[tuple[Step, int, datetime, datetime | None]] = []
    previous: list[datetime] = []
    for index, (step, resolved) in enumerate(zip(journey.steps, durations, strict=True)):
        if resolved is None:
            previous = []
            continue
        wait, every = resolved
        source = step.from_ or ("trigger" if index == 0 else "previous")
        times = _occurrence_limit(step)
        within = (
            trigger_at + parse_duration(step.repeat.within)
            if step.repeat and step.repeat.within
            else None
        )
        dues: list[datetime] = []
        for k in range(times):
            if source == "previous":
                if not previous:
                    break
                anchor = previous[min(k, len(previous) - 1)]
                extra = (k - len(previous) + 1) if k >= len(previous) else 0
                due = anchor + wait + (every * extra if every else timedelta(0))
            else:
                anchor = {
                    "trigger": trigger_at,
                    "purchase": purchased_at,
                    "warranty_end": warranty_end,
                }[source]
                if anchor is None:
                    break
                due = anchor + wait + (every * k if every else timedelta(0))
            if within is not None and due > within:
                break
            dues.append(due)
        for k, due in enumerate(dues, start=1):
            expires = _expiry(step, due, warranty_end)
            if due < trigger_at or (expires is not None and expires <= due):
                continue  # already too late when the customer enrolled: nothing to plan
            planned.append((step, k, due, expires))
        previous = dues
    return planned


# Timetables are worked out relative to the trigger, once for each combination of what they
# depend on: the steps' durations and where the purchase and the warranty's end lie from the
# trigger. Times only ever add up, so shifting the result back is exact.
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
_PLANS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class RelativePlan:
    """An enrolment's timetable in due order, as offsets from its trigger."""

    journey: Journey
    entries: tuple[tuple[Step, int, timedelta, timedelta | None], ...]
    micros: tuple[tuple[str, int, int, int | None], ...]


class PlanCache:
    """Timetables relative to the trigger, by journey and everything else they depend on.

    A shop's purchases mostly share a handful of shapes (the same durations, a warranty of
    the same length), so planning an enrolment is mostly shifting a known timetable.
    """

    def __init__(self, kept: int = _PLANS_KEPT) -> None:
        self.kept = kept
        self._plans: dict[tuple[Any, ...], RelativePlan] = {}

    def timetable(
        self,
        journey: Journey,
        trigger_at: datetime,
        order: Mapping[str, Any],
        item: Mapping[str, Any] | None,
        ctx: Mapping[str, Any],
    ) -> RelativePlan:
        durations = step_durations(journey, ctx)
        _, purchased_at, warranty_end = _anchors(trigger_at, order, item)
        key = (
            id(journey),
            durations,
            purchased_at - trigger_at,
            None if warranty_end is None else warranty_end - trigger_at,
        )
        plan = self._plans.get(key)
        if plan is None or plan.journey is not journey:
            if len(self._plans) >= self.kept:
                self._plans.clear()
            plan = self._plans[key] = _relative_plan(journey, durations, key[2], key[3])
        return plan


def _relative_plan(
    journey: Journey,
    durations: tuple[Any, ...],
    purchase: timedelta,
    warranty_end: timedelta | None,
) -> RelativePlan:
    ref = _REFERENCE
    end = None if warranty_end is None else ref + warranty_end
    planned = _plan(journey, durations, ref, ref + purchase, end)
    # In due order; a stable sort keeps the steps' order among equal times.
    planned.sort(key=lambda p: p[2])
    entries = tuple(
        (step, k, due - ref, None if expires is None else expires - ref)
        for step, k, due, expires in planned
    )
    micros = tuple(
        (step.id, k, due // _MICROSECOND, None if expires is None else expires // _MICROSECOND)
        for step, k, due, expires in entries
    )
    return RelativePlan(journey, entries, micros)


def _duration(memo: dict[str, timedelta], spec: str, ctx: Mapping[str, Any]) -> timedelta:
    if spec not in memo:
        memo[spec] = resolve_duration(spec, ctx)
    return memo[spec]


def _occurrence_limit(step: Step) -> int:
    if step.repeat is None:
        return 1
    return step.repeat.times or 1000


def _expiry(step: Step, due: datetime, warranty_end: datetime | None) -> datetime | None:
    candidates = []
    if step.send.expires_after:
        candidates.append(due + parse_duration(step.send.expires_after))
    if step.send.expires_at == "warranty_end" and warranty_end is not None:
        candidates.append(warranty_end)
    return min(candidates) if candidates else None

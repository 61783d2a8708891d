"""Planning: an enrolment's first message when it starts, and its next one when the
previous message has reached its outcome.

``Planner`` enrols customers for a batch of events and plans each enrolment's first
message; ``plan_next`` plans what follows a message that ended. Both write in bulk and rest
on unique keys, so a repeat plans nothing twice.

An event whose type starts a journey and that does not enrol the customer leaves one
``not_enrolled`` row per (event, journey) with the first reason that held, checked in this
order: ``paused``, ``trigger_condition``, ``audience``, ``no_item`` / ``item_condition``
(journeys run per item), ``reentry`` (the enrolment's entry key is taken, in the database
or by an earlier event of the batch). A failing condition is stored with its source text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.bulk import executemany
from campaigns.conditions import condition_names
from campaigns.customers import customer_context
from campaigns.durations import warranty_end
from campaigns.idlists import id_in
from campaigns.journeys import Journey, Step, evaluate, previous_view
from campaigns.models import COUNTING_STATUSES, PLANNED, SENDING
from campaigns.store import (
    COMPLETE,
    COMPLETE_ONE,
    TIMETABLES,
    ActiveJourney,
    _insert_ignore,
    enrollments_t,
    messages_t,
    not_enrolled_t,
)
from campaigns.timetable import (
    find_entry,
    from_micros,
    previous_step,
    rebased,
    to_micros,
    waits_for_previous,
)
from campaigns.timewindows import resolve_zone
from campaigns.value import SegmentRules

if TYPE_CHECKING:
    from campaigns.engine import Engine

# The statuses of a message that went out (or may have): its outcome time is its send.
WENT_OUT = frozenset(COUNTING_STATUSES)


def order_context(
    order: Mapping[str, Any], at: datetime, zone: tzinfo = UTC
) -> tuple[dict[str, Any], list[dict]]:
    """The ``order`` conditions see, and its items; warranties end by ``zone``'s calendar."""
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
        item["warranty_end"] = warranty_end(at, int(months), zone) if months else None
        items.append(item)
    ctx = {
        "id": order.get("id"),
        "total": Decimal(str(order.get("total", "0"))),
        "currency": order.get("currency", "EUR"),
        "purchased_at": at,
        "items": items,
    }
    return ctx, items


def event_context(
    customer_row: Any,
    row: Any,
    default_zone: tzinfo,
    segments: SegmentRules | None = None,
    alerts: frozenset[str] = frozenset(),
    *,
    value: bool = True,
) -> tuple[dict[str, Any], dict[str, Any], list[dict]]:
    """What a journey's expressions see for event ``row`` (``id``, ``type``, ``at``,
    ``payload``) of a customer: the context without ``item``, the order and its items;
    ``alerts``: the SKUs under an early-warning alert (``item.sku in alerts``).
    ``value=False`` leaves out what the customer is worth, for journeys that never read it
    (:meth:`campaigns.engine.Engine.reads_value`)."""
    customer = customer_context(customer_row, row.at.year, row.at if value else None, segments)
    raw_order = row.payload.get("order") if isinstance(row.payload.get("order"), dict) else {}
    zone = resolve_zone(customer_row.timezone, default_zone)
    order, items = order_context(raw_order or {}, row.at, zone)
    event = {"id": row.id, "type": row.type, "at": row.at, **row.payload}
    base = {"customer": customer, "order": order, "event": event, "now": row.at, "alerts": alerts}
    return base, order, items


class Planner:
    """Collects enrolments and messages for a batch of events, then writes them in bulk."""

    def __init__(self, engine: Engine, customers: Mapping[str, Any]) -> None:
        self.engine = engine
        self.customers = customers
        self.enrollments: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.messages_planned = 0
        self.not_enrolled: list[dict[str, Any]] = []
        self._keys: dict[str, str] = {}  # enrolment id -> the event that took it
        # (event, journey, enrolment) asked for, told apart from re-entries at flush when an
        # entry key was contested: by two events of the batch, or by one before it
        self._asked: list[tuple[Any, str, str]] = []
        self._contested = False
        self._purchase_journeys: list[ActiveJourney] | None = None
        # The journeys of the last event, and whether any of them reads a customer's value.
        self._reading: tuple[Sequence[ActiveJourney], bool] | None = None

    def purchase_journeys(self) -> list[ActiveJourney]:
        """The journeys a purchase triggers."""
        if self._purchase_journeys is None:
            self._purchase_journeys = [
                j for j in self.engine.journeys.values() if j.journey.trigger.event == "purchase"
            ]
        return self._purchase_journeys

    def purchase(self, row: Any) -> None:
        self.event(row, self.purchase_journeys())

    def event(self, row: Any, journeys: Sequence[ActiveJourney]) -> None:
        customer_row = self.customers.get(row.customer_id)
        if customer_row is None:
            return
        engine = self.engine
        if self._reading is None or self._reading[0] is not journeys:  # a batch's one list
            self._reading = (journeys, engine.reads_value(journeys))
        base, order, items = event_context(
            customer_row, row, engine.zone, engine.segments, engine.alerts,
            value=self._reading[1],
        )  # fmt: skip
        whole = {**base, "item": None}
        for active in journeys:
            journey = active.journey
            if active.paused:
                self._miss(row, journey.id, "paused")
            elif not _safe_eval(journey.trigger.condition, whole):
                self._miss(row, journey.id, "trigger_condition", journey.trigger.condition)
            elif not _safe_eval(journey.audience, whole):
                self._miss(row, journey.id, "audience", journey.audience)
            elif journey.trigger.for_each != "item":
                self._enrol(active, row, order, None, whole)
            elif not items:
                self._miss(row, journey.id, "no_item")
            else:
                met = False
                for item in items:
                    ctx = {**base, "item": item}
                    if _safe_eval(journey.trigger.item_condition, ctx):
                        met = True
                        self._enrol(active, row, order, item, ctx)
                if not met:
                    condition = journey.trigger.item_condition
                    self._miss(row, journey.id, "item_condition", condition)

    def _miss(self, row: Any, journey_id: str, reason: str, expression: str | None = None):
        self.not_enrolled.append(
            {
                "customer_id": row.customer_id,
                "journey_id": journey_id,
                "event_id": row.id,
                "at": row.at,
                "reason": reason,
                "expression": expression,
            }
        )

    def _enrol(self, active: ActiveJourney, row: Any, order: Mapping, item: Mapping | None, ctx):
        journey = active.journey
        order_id = order.get("id")
        key = _entry_key(journey.effective_reentry, row.id, order_id, item)
        enrollment_id = f"{journey.id}:{row.customer_id}:{key}"
        if enrollment_id in self._keys:
            if self._keys[enrollment_id] != row.id:  # an earlier event of this batch took it
                self._asked.append((row, journey.id, enrollment_id))
                self._contested = True
            return  # else another item of this order already enrolled the customer
        self._keys[enrollment_id] = row.id
        self._asked.append((row, journey.id, enrollment_id))
        plan = self.engine.plans.timetable(journey, row.at, order, item, ctx)
        at = row.at
        if len(plan.entries) > 1:
            base = to_micros(at)
            if plan.deadlines:
                schedule = [
                    [step, k, base + due, None if expires is None else base + expires]
                    + [base + end for end in deadline]
                    for step, k, due, expires, *deadline in plan.micros
                ]
            else:
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
        inserted = _insert_ignore(conn, enrollments_t, self.enrollments, ["id"])
        self._reentries(conn, inserted)
        _insert_ignore(conn, messages_t, self.messages, ["enrollment_id", "step", "occurrence"])
        _insert_ignore(conn, not_enrolled_t, self.not_enrolled, ["event_id", "journey_id"])
        self.messages_planned = len(self.messages)
        count = len(self.enrollments)
        self.enrollments, self.messages, self.not_enrolled = [], [], []
        self._keys.clear()
        self._asked.clear()
        self._contested = False
        return count

    def _reentries(self, conn: Connection, inserted: int) -> None:
        """A ``reentry`` row for each (event, journey) whose every enrolment was taken
        before: by an earlier event of the batch, or already in the database.

        Run after the batch's enrolments are inserted: an enrolment of this batch then
        names its own event, one taken before names another. Only entry keys an event
        shares with others (``once``, per order or item) are looked up, and on SQLite only
        when the insert left some rows alone (its row count says how many it wrote).
        """
        taken: dict[str, str | None] = {}  # enrolment id -> the event that started it
        if conn.dialect.name != "sqlite" or inserted < len(self.enrollments):
            taken = self._taken(conn)
        if not taken and not self._contested:
            return
        asked: dict[tuple[str, str], tuple[Any, list[str]]] = {}
        for row, journey_id, enrollment_id in self._asked:
            asked.setdefault((row.id, journey_id), (row, []))[1].append(enrollment_id)
        for (event_id, journey_id), (row, ids) in asked.items():
            if all(self._keys[i] != event_id or taken.get(i, event_id) != event_id for i in ids):
                self._miss(row, journey_id, "reentry")

    def _taken(self, conn: Connection) -> dict[str, str | None]:
        shared = [e["id"] for e in self.enrollments if not e["entry_key"].startswith("event:")]
        taken: dict[str, str | None] = {}
        e = enrollments_t.c
        for start in range(0, len(shared), 500):
            chunk = shared[start : start + 500]
            query = sa.select(e.id, e.trigger_event_id).where(e.id.in_(chunk))
            taken.update((i, event) for i, event in conn.execute(query))
        return taken


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
    """What makes an enrolment one: ``once`` a customer, ``once_per_order`` an order,
    ``once_per_item`` an item of an order, ``always`` an event (and item)."""
    if reentry == "once":
        return "once"
    position = f"#{item['position']}" if item and reentry != "once_per_order" else ""
    if reentry == "always" or not order_id:
        return f"event:{event_id}{position}"
    return f"order:{order_id}{position}"


def _safe_eval(source: str | None, context: Mapping[str, Any]) -> bool:
    try:
        return evaluate(source, context)
    except Exception:  # noqa: BLE001 - a failing condition excludes, it never stops the engine
        return False


def plan_next(
    conn: Connection,
    journey_for: Callable[[str, int], Journey | None],
    finished: Iterable[Any],
    now: datetime,
    *,
    at: Mapping[int, datetime] | None = None,
) -> int:
    """Plan the message that follows each finished one in its enrolment's timetable.

    ``finished`` are message rows (id, enrollment_id, journey_id, journey_version, step,
    occurrence) that reached their outcome at ``now``, or each at its own time in ``at``
    (by message id; a simulation decides its customers each at their own instant): sent,
    skipped, failed or unknown.
    A step timed ``from: previous`` counts from that outcome, not from when the previous
    message was due: its timetable entry is moved by as much as the previous message was
    late. An enrolment that has ended plans nothing more; one whose timetable is
    exhausted, with no message left to send, is marked ``completed``. Idempotent: the
    message's unique key makes a repeat a no-op. Returns how many messages were planned.
    """
    finished = list(finished)
    # Per version, once: whether its enrolments can plan a next message at all.
    following: dict[tuple[str, int], Any] = {}
    for version in {(row.journey_id, row.journey_version) for row in finished}:
        journey = journey_for(*version)
        following[version] = journey if journey and journey.has_several_messages else None
    candidates = [
        (row, journey)
        for row in finished
        if (journey := following[(row.journey_id, row.journey_version)]) is not None
    ]
    enrolments = _timetables(conn, {row.enrollment_id for row, _ in candidates})
    # (row, enrolment, next entry, its step, how late its anchor ended or the anchor's entry)
    upcoming: list[tuple[Any, Any, Sequence[Any], Step, timedelta | None, Sequence[Any] | None]]
    upcoming = []
    for row, journey in candidates:  # the message's version is its enrolment's
        enrolment = enrolments.get(row.enrollment_id)
        schedule = enrolment.schedule if enrolment else None
        index = find_entry(schedule, row.step, row.occurrence)
        if index < 0 or index + 1 >= len(schedule):
            continue
        entry = schedule[index + 1]
        step = journey.step(entry[0])
        if step is None:
            continue
        anchor = _anchor(journey, step, schedule, entry[1])
        if anchor is None:
            upcoming.append((row, enrolment, entry, step, None, None))
        elif anchor[0] == row.step and anchor[1] == row.occurrence:
            ended_now = at[row.id] if at else now
            upcoming.append((row, enrolment, entry, step, ended_now - from_micros(anchor[2]), None))
        else:  # timed from a message that ended before the one that just did
            upcoming.append((row, enrolment, entry, step, None, anchor))
    looked_up = [(u[1].id, u[5][0], u[5][1]) for u in upcoming if u[5] is not None]
    ended = _ended_at(conn, looked_up) if looked_up else {}
    messages = []
    for row, enrolment, entry, step, late, anchor in upcoming:
        due = from_micros(entry[2])
        expires = from_micros(entry[3]) if entry[3] is not None else None
        if anchor is not None and (ended_when := ended.get((enrolment.id, anchor[0], anchor[1]))):
            late = ended_when - from_micros(anchor[2])
        if late is not None:
            deadline = from_micros(entry[4]) if len(entry) > 4 else None
            if deadline is None and step.send.expires_at == "warranty_end":
                deadline = expires  # a timetable written before entries carried it
            due, expires = rebased(step, due, deadline, late)
        messages.append(
            message_row(
                enrolment.id,
                enrolment.customer_id,
                enrolment.order_id,
                row.journey_id,
                row.journey_version,
                step,
                entry[1],
                due,
                expires,
                at[row.id] if at else now,
            )  # fmt: skip
        )
    _insert_ignore(conn, messages_t, messages, ["enrollment_id", "step", "occurrence"])
    going_on = {m["enrollment_id"] for m in messages}
    if at is None:
        complete_enrollments(conn, {r.enrollment_id for r in finished} - going_on, now)
    else:  # each at its message's time (the latest, should an enrolment end twice)
        ends: dict[str, datetime] = {}
        for row in finished:
            if row.enrollment_id not in going_on:
                ends[row.enrollment_id] = max(at[row.id], ends.get(row.enrollment_id, at[row.id]))
        complete_each(conn, ends)
    return len(messages)


def _anchor(
    journey: Journey, step: Step, schedule: Sequence[Sequence[Any]], occurrence: int
) -> Sequence[Any] | None:
    """The timetable entry of the message ``step``'s ``occurrence`` is timed from, if it
    waits for the previous step: that step's same occurrence, or its last one before."""
    if not waits_for_previous(journey, step):
        return None
    before = previous_step(journey, step)
    assert before is not None
    found: Sequence[Any] | None = None
    for entry in schedule:
        if entry[0] == before.id and entry[1] <= occurrence and (not found or entry[1] > found[1]):
            found = entry
    return found


def _ended_at(conn: Connection, keys: list[tuple[str, str, int]]) -> dict[tuple, datetime]:
    """When each of these messages (enrolment, step, occurrence) went out or ended."""
    m = messages_t.c
    rows = conn.execute(
        sa.select(m.enrollment_id, m.step, m.occurrence, m.status, m.sent_at, m.updated_at).where(
            m.enrollment_id.in_(sorted({k[0] for k in keys}))
        )
    )
    wanted = set(keys)
    found = {}
    for eid, step, occurrence, status, sent_at, updated_at in rows:
        key = (eid, step, occurrence)
        if key in wanted and status not in (PLANNED, SENDING):
            found[key] = sent_at if status in WENT_OUT and sent_at else updated_at
    return found


def previous_outcomes(
    conn: Connection, journey_for: Callable[[str, int], Journey | None], rows: Sequence[Any]
) -> dict[int, dict[str, Any]]:
    """``previous`` for the step conditions of ``rows`` (claimed messages) that ask for it,
    by message id: how the message of the step listed before ended, of the same occurrence
    or the last one before. One statement for the lot."""
    wanted: dict[int, tuple[str, str, int]] = {}
    for row in rows:
        journey = journey_for(row.journey_id, row.journey_version)
        step = journey.step(row.step) if journey else None
        before = previous_step(journey, step) if step else None
        if before is not None and step.condition and "previous" in condition_names(step.condition):
            wanted[row.id] = (row.enrollment_id, before.id, row.occurrence)
    if not wanted:
        return {}
    found: dict[tuple[str, str], list[Any]] = defaultdict(list)
    enrolments = sorted({w[0] for w in wanted.values()})
    steps = sorted({w[1] for w in wanted.values()})
    for message in conn.execute(_OUTCOMES, {"ids": enrolments, "steps": steps}):
        found[(message.enrollment_id, message.step)].append(message)
    outcomes = {}
    for message_id, (enrollment_id, step_id, occurrence) in wanted.items():
        earlier = [x for x in found[(enrollment_id, step_id)] if x.occurrence <= occurrence]
        if earlier:
            last = max(earlier, key=lambda x: x.occurrence)
            sent_at = last.sent_at if last.status in COUNTING_STATUSES else None
            outcomes[message_id] = previous_view(last.status, sent_at, last.reason)
    return outcomes


# The messages of the steps listed before those asking (of their enrolments): read for a
# batch at once, built once.
_OUTCOMES = sa.select(
    messages_t.c.enrollment_id,
    messages_t.c.step,
    messages_t.c.occurrence,
    messages_t.c.status,
    messages_t.c.sent_at,
    messages_t.c.reason,
).where(id_in(messages_t.c.enrollment_id), id_in(messages_t.c.step, "steps"))


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


def complete_each(conn: Connection, ends: Mapping[str, datetime]) -> None:
    """:func:`complete_enrollments`, each enrolment at its own time."""
    if ends:
        executemany(
            conn, COMPLETE_ONE, [{"enrollment": eid, "now": t} for eid, t in sorted(ends.items())]
        )

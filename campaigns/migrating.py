"""Moving running enrolments to a journey's current version.

Editing a journey adds a version; enrolments that were running keep theirs, so a changed
offer date reaches only customers enrolled after the edit. :func:`migrate` moves the
active enrolments of older versions to the current one:

1. the enrolment's timetable is worked out again with the current definition, from its own
   anchors (its trigger event, the purchase and the item's warranty end, in the customer's
   calendar) — the same planning a new enrolment gets;
2. what already went out (any message no longer ``planned``) stays as it is; the next
   message is the first timetable entry after the last step that went out (by step and
   occurrence, else by due time) that has not gone out itself; one due in the past is due
   now, one already expired is passed over;
3. its planned message moves to that entry: kept and re-timed when it is the same step and
   occurrence (only while still ``planned``), else cancelled (reason ``migrated:v<N>``,
   through :mod:`campaigns.transitions`) and the new one planned;
4. the enrolment records the current version and its new timetable; one with nothing left
   to send is completed.

A dry run works everything out and writes nothing. An enrolment whose trigger event or
customer is gone is reported and left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.journeys import Journey, Step
from campaigns.models import CANCELLED, PLANNED
from campaigns.planning import complete_enrollments, event_context, message_row
from campaigns.store import (
    _insert_ignore,
    enrollments_t,
    events_t,
    journeys_t,
    load_customers,
    load_version,
    messages_t,
    versions_t,
)
from campaigns.timetable import plan_steps, to_micros, waits_for_previous
from campaigns.transitions import move

__all__ = ["EnrolmentMove", "Migration", "active_by_version", "migrate"]


@dataclass
class EnrolmentMove:
    """What happens to one enrolment: its next message before and after."""

    enrollment_id: str
    customer_id: str
    from_version: int
    before: list[tuple[str, int, datetime]] = field(default_factory=list)
    after: tuple[str, int, datetime] | None = None
    problem: str | None = None


@dataclass
class Migration:
    """The outcome of :func:`migrate` (or what it would do, on a dry run)."""

    journey_id: str
    to_version: int
    moves: list[EnrolmentMove] = field(default_factory=list)
    dry_run: bool = False

    @property
    def moved(self) -> int:
        return sum(1 for m in self.moves if m.problem is None)


def active_by_version(conn: Connection, journey_id: str) -> list[tuple[int, int, bool]]:
    """(version, active enrolments, is current) for each version of a journey."""
    e, v = enrollments_t.c, versions_t.c
    current = _current(conn, journey_id)
    counts = dict(
        conn.execute(
            sa.select(v.version, sa.func.count(e.id))
            .join(enrollments_t, e.journey_version_id == v.id)
            .where(v.journey_id == journey_id, e.status == "active")
            .group_by(v.version)
        ).all()
    )
    versions = conn.execute(
        sa.select(v.version).where(v.journey_id == journey_id).order_by(v.version)
    ).scalars()
    return [(n, counts.get(n, 0), current is not None and n == current[1]) for n in versions]


def _current(conn: Connection, journey_id: str) -> tuple[int, int] | None:
    """(version id, version number) of the journey's current version."""
    row = conn.execute(
        sa.select(versions_t.c.id, versions_t.c.version)
        .join(journeys_t, journeys_t.c.current_version_id == versions_t.c.id)
        .where(journeys_t.c.journey_id == journey_id)
    ).first()
    return (row[0], row[1]) if row else None


def migrate(
    conn: Connection,
    journey_id: str,
    now: datetime,
    *,
    default_zone: tzinfo,
    from_version: int | None = None,
    dry_run: bool = False,
) -> Migration:
    """Move the active enrolments of older versions (or of ``from_version`` only) of a
    journey to its current version; see the module docstring."""
    current = _current(conn, journey_id)
    if current is None:
        raise LookupError(f"no journey {journey_id!r} in the database yet")
    version_id, number = current
    journey = load_version(conn, version_id)
    report = Migration(journey_id, number, dry_run=dry_run)
    rows = _enrolments(conn, journey_id, version_id, from_version)
    customers = load_customers(conn, {r.customer_id for r in rows})
    triggers = _trigger_events(conn, [r.trigger_event_id for r in rows])
    messages = _messages(conn, [r.id for r in rows])
    for row in rows:
        moved = EnrolmentMove(row.id, row.customer_id, row.version)
        report.moves.append(moved)
        customer, trigger = customers.get(row.customer_id), triggers.get(row.trigger_event_id)
        if customer is None or trigger is None:
            moved.problem = "its customer or trigger event is gone; left on its version"
            continue
        plan = _timetable(journey, row, customer, trigger, default_zone)
        own = messages.get(row.id, [])
        moved.before = [(m.step, m.occurrence, m.due_at) for m in own if m.status == PLANNED]
        entry = _next_entry(plan, own, now)
        moved.after = None if entry is None else (entry[0].id, entry[1], entry[2])
        if not dry_run:
            _apply(conn, row, journey, number, version_id, plan, own, entry, now)
    return report


def _enrolments(conn: Connection, journey_id: str, version_id: int, from_version: int | None):
    e, v = enrollments_t.c, versions_t.c
    query = (
        sa.select(
            e.id,
            e.customer_id,
            e.order_id,
            e.item_position,
            e.trigger_event_id,
            e.enrolled_at,
            v.version,
        )  # fmt: skip
        .join(versions_t, e.journey_version_id == v.id)
        .where(e.journey_id == journey_id, e.status == "active", e.journey_version_id != version_id)
        .order_by(e.id)
        .with_for_update(of=enrollments_t)  # two migrations at once: one waits for the other
    )
    if from_version is not None:
        query = query.where(v.version == from_version)
    return conn.execute(query).all()


def _trigger_events(conn: Connection, ids: Sequence[str | None]) -> dict[str, Any]:
    wanted = sorted({i for i in ids if i})
    found: dict[str, Any] = {}
    ev = events_t.c
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = sa.select(ev.id, ev.type, ev.at, ev.payload).where(ev.id.in_(chunk))
        found.update((r.id, r) for r in conn.execute(query))
    return found


def _messages(conn: Connection, ids: Sequence[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    m = messages_t.c
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        query = sa.select(m.id, m.enrollment_id, m.step, m.occurrence, m.status, m.due_at).where(
            m.enrollment_id.in_(chunk)
        )
        for r in conn.execute(query):
            found.setdefault(r.enrollment_id, []).append(r)
    return found


def _timetable(journey: Journey, row: Any, customer: Any, trigger: Any, zone: tzinfo):
    """The enrolment's timetable under ``journey``, in due order, from its own anchors."""
    base, order, items = event_context(customer, trigger, zone)
    item = None
    if journey.trigger.for_each == "item" and row.item_position is not None:
        item = next((i for i in items if i["position"] == row.item_position), None)
    plan = plan_steps(journey, trigger.at, order, item, {**base, "item": item})
    plan.sort(key=lambda entry: entry[2])
    return plan, (item or {}).get("warranty_end")


def _next_entry(timetable: Any, own: list[Any], now: datetime):
    """The first entry after what went out that has not gone out itself, due no earlier
    than ``now``; None when nothing is left."""
    plan, _ = timetable
    done = {(m.step, m.occurrence) for m in own if m.status != PLANNED}
    last_due = max((m.due_at for m in own if m.status != PLANNED), default=None)
    start = 0
    for index, (step, k, _, _) in enumerate(plan):
        if (step.id, k) in done:
            start = index + 1
    for step, k, due, expires in plan[start:]:
        if (step.id, k) in done or (last_due is not None and due <= last_due):
            continue
        due = max(due, now)
        if expires is not None and expires <= due:
            continue
        return step, k, due, expires
    return None


def _apply(conn, row, journey, number, version_id, timetable, own, entry, now) -> None:
    planned = [m for m in own if m.status == PLANNED]
    kept = next(
        (m for m in planned if entry and (m.step, m.occurrence) == (entry[0].id, entry[1])),
        None,
    )
    cancelled = [{"_id": m.id, "reason": f"migrated:v{number}"} for m in planned if m is not kept]
    move(conn, CANCELLED, cancelled, now)
    if entry is not None:
        step, k, due, expires = entry
        fresh = message_row(row.id, row.customer_id, row.order_id, journey.id, number, step, k,
                            due, expires, now)  # fmt: skip
        if kept is not None:
            # Re-timed, not moved: the status stays planned, and a message a dispatcher has
            # claimed meanwhile (sending) is left alone, not put back (transitions allows
            # sending -> planned for retries, which this is not).
            values = {key: fresh[key] for key in _REPLANNED}
            conn.execute(
                messages_t.update()
                .where(messages_t.c.id == kept.id, messages_t.c.status == PLANNED)
                .values(updated_at=now, **values)
            )
        else:
            _insert_ignore(conn, messages_t, [fresh], ["enrollment_id", "step", "occurrence"])
    conn.execute(
        enrollments_t.update()
        .where(enrollments_t.c.id == row.id)
        .values(journey_version_id=version_id, schedule=_schedule(journey, timetable))
    )
    if entry is None:
        complete_enrollments(conn, [row.id], now)


# What a re-timed planned message takes from the current version's step.
_REPLANNED = ("journey_version", "channel", "category", "template", "priority", "due_at",
              "expires_at")  # fmt: skip


def _schedule(journey: Journey, timetable: Any) -> list[list[Any]] | None:
    """The timetable as an enrolment stores it (see ``Enrollment.schedule``)."""
    plan, warranty_end = timetable
    if not journey.has_several_messages:
        return None
    return [_stored(journey, step, k, due, expires, warranty_end) for step, k, due, expires in plan]


def _stored(journey: Journey, step: Step, k: int, due, expires, warranty_end) -> list[Any]:
    entry = [step.id, k, to_micros(due), None if expires is None else to_micros(expires)]
    expires_with_warranty = step.send.expires_at == "warranty_end" and warranty_end is not None
    if expires_with_warranty and waits_for_previous(journey, step):
        entry.append(to_micros(warranty_end))
    return entry

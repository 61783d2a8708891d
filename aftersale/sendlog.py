"""Reading the send log: filtered, keyset-paginated queries, export rows, customer timelines."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import (
    DECIDED,
    PLANNED,
    Customer,
    Enrollment,
    Event,
    Message,
    MessageDecision,
    NotEnrolled,
    PurchaseItem,
    Suppression,
)

messages_t = Message.__table__
decisions_t = MessageDecision.__table__
customers_t = Customer.__table__
events_t = Event.__table__
enrollments_t = Enrollment.__table__
suppressions_t = Suppression.__table__
items_t = PurchaseItem.__table__
not_enrolled_t = NotEnrolled.__table__

EXPORT_FIELDS = (
    "message_id", "customer", "order", "journey", "step", "occurrence", "channel", "category",
    "template", "locale", "status", "reason", "due_at", "sent_at", "provider",
    "provider_message_id", "item", "bundled_into", "variant",
)  # fmt: skip
# A message with the item its enrolment is about (per-item journeys; else NULLs), as
# ``item_sku`` and ``item_name``: through the enrolment's order and item position.
_ABOUT = messages_t.outerjoin(
    enrollments_t, enrollments_t.c.id == messages_t.c.enrollment_id
).outerjoin(
    items_t,
    sa.and_(
        items_t.c.order_id == enrollments_t.c.order_id,
        items_t.c.position == enrollments_t.c.item_position,
    ),
)


def logged() -> sa.Select:
    """Messages as the log shows them: every column, and ``item_sku``/``item_name``."""
    return sa.select(
        messages_t, items_t.c.sku.label("item_sku"), items_t.c.name.label("item_name")
    ).select_from(_ABOUT)


@dataclass(frozen=True)
class LogFilter:
    """What an admin narrows the send log down to; every field is optional."""

    customer: str | None = None
    contact: str | None = None  # e-mail address or phone number
    journey: str | None = None
    step: str | None = None
    channel: str | None = None
    status: str | None = None
    reason: str | None = None  # a prefix: "frequency_cap" matches every cap
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[Any]:
        m = messages_t.c
        clauses: list[Any] = []
        for column, value in (
            (m.customer_id, self.customer),
            (m.journey_id, self.journey),
            (m.step, self.step),
            (m.channel, self.channel),
            (m.status, self.status),
        ):
            if value:
                clauses.append(column == value)
        if self.reason:  # the final reason, or the reason of any deferral on the way
            deferred = sa.select(decisions_t.c.message_id).where(
                decisions_t.c.reason.startswith(self.reason, autoescape=True)
            )
            clauses.append(
                sa.or_(m.reason.startswith(self.reason, autoescape=True), m.id.in_(deferred))
            )
        if self.since:
            clauses.append(m.due_at >= self.since)
        if self.until:
            clauses.append(m.due_at < self.until)
        if self.contact:
            matching = sa.select(customers_t.c.id).where(
                sa.or_(
                    customers_t.c.email == self.contact.lower(), customers_t.c.phone == self.contact
                )
            )
            clauses.append(m.customer_id.in_(matching))
        return clauses


def query_log(
    conn: Connection, flt: LogFilter, *, limit: int = 50, before_id: int | None = None
) -> list[Any]:
    """Newest first; pass the last id seen as ``before_id`` for the next page (keyset)."""
    query = logged().where(*flt.where())
    if before_id is not None:
        query = query.where(messages_t.c.id < before_id)
    return list(conn.execute(query.order_by(messages_t.c.id.desc()).limit(limit)))


def customer_timezone(conn: Connection, customer_id: str) -> str | None:
    return conn.execute(
        sa.select(customers_t.c.timezone).where(customers_t.c.id == customer_id)
    ).scalar()


Position = tuple[datetime | None, int]  # where a page ended: (its last row's time, id)


def decided_log(
    conn: Connection, flt: LogFilter, *, limit: int = 50, after: Position | None = None
) -> list[Any]:
    """Messages that have an outcome (or are being sent), newest decision first.

    ``after`` is the (``updated_at``, id) of the last row of the previous page (keyset):
    rows without a decision time come last, newest id first."""
    m = messages_t.c
    query = decided_query(flt)
    if after is not None:
        at, last_id = after
        older = sa.and_(m.updated_at.is_(None), m.id < last_id)
        if at is not None:
            older = sa.or_(m.updated_at < at, sa.and_(m.updated_at == at, m.id < last_id),
                           m.updated_at.is_(None))  # fmt: skip
        query = query.where(older)
    return list(conn.execute(query.limit(limit)))


def decided_query(flt: LogFilter) -> sa.Select:
    """The decided messages of ``flt``, newest decision first (no decision time: last)."""
    m = messages_t.c
    query = logged().where(*flt.where(), DECIDED)  # the condition of ix_messages_decided
    return query.order_by(sa.nulls_last(m.updated_at.desc()), m.id.desc())


def upcoming_log(
    conn: Connection, flt: LogFilter, *, limit: int = 50, after: Position | None = None
) -> list[Any]:
    """Planned messages, the soonest due first; ``after``: the (due time, id) of the last
    row of the previous page."""
    m = messages_t.c
    query = logged().where(*flt.where(), m.status == PLANNED)
    if after is not None and after[0] is not None:
        due, last_id = after
        query = query.where(sa.or_(m.due_at > due, sa.and_(m.due_at == due, m.id > last_id)))
    return list(conn.execute(query.order_by(m.due_at, m.id).limit(limit)))


def iter_log(conn: Connection, flt: LogFilter, *, chunk: int = 5000) -> Iterator[Any]:
    """Every matching message, oldest first, streamed in keyset chunks."""
    last = 0
    while True:
        rows = list(
            conn.execute(
                logged()
                .where(*flt.where(), messages_t.c.id > last)
                .order_by(messages_t.c.id)
                .limit(chunk)
            )
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_record(row: Any) -> dict[str, Any]:
    """One send-log row in the export contract (times in UTC ISO 8601)."""
    return {
        "message_id": row.id,
        "customer": row.customer_id,
        "order": row.order_id,
        "journey": row.journey_id,
        "step": row.step,
        "occurrence": row.occurrence,
        "channel": row.channel,
        "category": row.category,
        "template": row.template,
        "locale": row.locale,
        "status": row.status,
        "reason": row.reason,
        "due_at": iso(row.due_at),
        "sent_at": iso(row.sent_at),
        "provider": row.provider,
        "provider_message_id": row.provider_message_id,
        "item": row.item_sku,
        "bundled_into": row.bundled_into,
        "variant": row.variant,
    }


def reason_text(row: Any) -> str:
    """A message's reason as the log shows it: a bundled one names its carrier."""
    if row.bundled_into is not None:
        return f"{row.reason or 'bundled'} into #{row.bundled_into}"
    return row.reason or ""


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_writer(out: IO[str], shown: Callable[[Any], Any] | None = None) -> Callable[[Any], None]:
    """Writes the header to ``out`` and returns the function that writes one log row.

    ``shown`` transforms each record first (masking, for a viewer's download).
    """
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    shown = shown or (lambda record: record)
    return lambda row: writer.writerow(
        {key: csv_cell(value) for key, value in shown(export_record(row)).items()}
    )


def write_export(conn: Connection, flt: LogFilter, out: IO[str], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        write_row = csv_writer(out)
        for row in iter_log(conn, flt):
            write_row(row)
            count += 1
    else:
        for row in iter_log(conn, flt):
            out.write(json.dumps(export_record(row), ensure_ascii=False) + "\n")
            count += 1
    return count


@dataclass
class Timeline:
    customer: Any
    suppressions: list[Any]
    events: list[Any]
    enrollments: list[Any]
    messages: list[Any]
    decisions: dict[int, list[Any]]
    not_enrolled: list[Any] = field(default_factory=list)  # events that started nothing, and why


def customer_timeline(conn: Connection, customer_id: str) -> Timeline | None:
    customer = conn.execute(sa.select(customers_t).where(customers_t.c.id == customer_id)).first()
    if customer is None:
        return None
    messages = list(
        conn.execute(
            logged()
            .where(messages_t.c.customer_id == customer_id)
            .order_by(messages_t.c.due_at, messages_t.c.id)
        )
    )
    decisions: dict[int, list[Any]] = {}
    ids = [m.id for m in messages]
    for start in range(0, len(ids), 500):
        for d in conn.execute(
            sa.select(decisions_t)
            .where(decisions_t.c.message_id.in_(ids[start : start + 500]))
            .order_by(decisions_t.c.id)
        ):
            decisions.setdefault(d.message_id, []).append(d)
    return Timeline(
        customer=customer,
        suppressions=list(
            conn.execute(
                sa.select(suppressions_t).where(suppressions_t.c.customer_id == customer_id)
            )
        ),
        events=list(
            conn.execute(
                sa.select(events_t)
                .where(events_t.c.customer_id == customer_id)
                .order_by(events_t.c.at)
            )
        ),
        enrollments=list(
            conn.execute(
                sa.select(enrollments_t)
                .where(enrollments_t.c.customer_id == customer_id)
                .order_by(enrollments_t.c.enrolled_at)
            )
        ),
        messages=messages,
        decisions=decisions,
        not_enrolled=list(
            conn.execute(
                sa.select(not_enrolled_t)
                .where(not_enrolled_t.c.customer_id == customer_id)
                .order_by(not_enrolled_t.c.at, not_enrolled_t.c.journey_id)
            )
        ),
    )


def summary(conn: Connection) -> dict[str, Any]:
    """Counts for the demo summary and `aftersale stats`."""
    m = messages_t.c
    by_journey = conn.execute(
        sa.select(m.journey_id, m.channel, m.status, sa.func.count())
        .group_by(m.journey_id, m.channel, m.status)
        .order_by(m.journey_id, m.channel, m.status)
    ).all()
    skip_reasons = conn.execute(
        sa.select(m.reason, sa.func.count())
        .where(m.status.in_(["skipped", "cancelled", "failed", "unknown"]))
        .group_by(m.reason)
        .order_by(sa.func.count().desc())
    ).all()
    d = decisions_t.c
    deferrals = conn.execute(
        sa.select(d.reason, sa.func.count())
        .where(d.action == "deferred")
        .group_by(d.reason)
        .order_by(sa.func.count().desc())
    ).all()
    reached = conn.execute(
        sa.select(sa.func.count(sa.distinct(m.customer_id))).where(
            m.status.in_(["sent", "delivered"])
        )
    ).scalar()
    customers = conn.execute(sa.select(sa.func.count()).select_from(customers_t)).scalar()
    bundled, bundles = conn.execute(
        sa.select(sa.func.count(), sa.func.count(sa.distinct(m.bundled_into))).where(
            m.bundled_into.is_not(None)
        )
    ).one()
    return {
        "bundled": bundled,
        "bundles": bundles,
        "by_journey": by_journey,
        "skip_reasons": skip_reasons,
        "deferrals": deferrals,
        "reached": reached,
        "customers": customers,
    }

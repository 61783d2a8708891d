"""The event log: imported and received events, and which of them failed to apply.

An event is ``pending`` until the clock reaches its ``at``, then ``applied``; one whose
application raised is ``failed`` (with ``error:<kind>`` and the detail) until it is
retried (:func:`campaigns.engine.retry_events`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import Event

events_t = Event.__table__
EVENT_STATUSES = ("pending", "applied", "failed")


def event_status(row: Any) -> str:
    if row.failed_at is not None:
        return "failed"
    return "applied" if row.applied else "pending"


def query_events(
    conn: Connection,
    *,
    status: str | None = None,
    customer: str | None = None,
    limit: int = 50,
) -> list[Any]:
    """Events, newest first (failed ones by when they failed), filtered by status and customer."""
    e = events_t.c
    query = sa.select(events_t)
    if status == "failed":
        query = query.where(e.failed_at.is_not(None)).order_by(e.failed_at.desc(), e.id)
    else:
        if status == "pending":
            query = query.where(e.applied.is_(False))
        elif status == "applied":
            query = query.where(e.applied.is_(True), e.failed_at.is_(None))
        elif status is not None:
            raise ValueError(f"status must be one of {', '.join(EVENT_STATUSES)}, not {status!r}")
        query = query.order_by(e.at.desc(), e.id)
    if customer:
        query = query.where(e.customer_id == customer)
    return list(conn.execute(query.limit(limit)))


def count_failed(conn: Connection) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(events_t).where(events_t.c.failed_at.is_not(None))
    ).scalar_one()

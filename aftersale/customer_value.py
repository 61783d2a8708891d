"""A customer's value, complaints and satisfaction as the console and ``aftersale customer``
show them: the same figures conditions read (:mod:`campaigns.value`), at the project's time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.app import Project
from campaigns.models import Complaint
from campaigns.policy import Recipient
from campaigns.value import rating_of, value_view

__all__ = ["CustomerValue", "customer_value"]

complaints_t = Complaint.__table__


@dataclass
class CustomerValue:
    """``figures`` as conditions see them; the complaints with their subject; and whether,
    and until when, offers are held (``unsatisfied`` or ``fatigue``)."""

    figures: dict[str, Any]
    complaints: list[Any]
    held: tuple[datetime, str] | None


def customer_value(project: Project, conn: Connection, row: Any, now: datetime) -> CustomerValue:
    """What ``row`` (a customers row) is worth at ``now``, and what holds their offers."""
    figures = value_view(row, now, project.settings.segment_rules())
    k = complaints_t.c
    complaints = list(
        conn.execute(
            sa.select(complaints_t).where(k.customer_id == row.id).order_by(k.opened_at.desc())
        )
    )
    policy = project.policy
    unanswered: list[datetime] = []
    if policy.rules.fatigue is not None:
        from campaigns.fatigue import unanswered_emails

        unanswered = unanswered_emails(conn, {row.id: row.last_purchase_at}, now)[row.id]
    recipient = Recipient(None, {}, {}, last_rating=rating_of(row), unanswered=unanswered)
    return CustomerValue(figures, complaints, policy.held(recipient, now))


def value_lines(value: CustomerValue) -> list[str]:
    """The figures as short lines of plain text, for a terminal."""
    f = value.figures
    first, last = f["first_purchase_at"], f["last_purchase_at"]
    lines = [
        f"  value: segment {f['segment']} · {f['orders']} order(s) · revenue "
        f"{f['revenue']} {f['revenue'].currency or ''}".rstrip(),
        "    purchases: "
        + (f"{first:%Y-%m-%d} – {last:%Y-%m-%d}" if first and last else "none yet"),
        f"    complaints: {f['complaints']['total']} ({f['complaints']['open']} open)"
        + (f" · last satisfaction rating {f['satisfaction']} of 5" if f["satisfaction"] else ""),
    ]
    if value.held is not None:
        until, why = value.held
        lines.append(f"    offers held until {until:%Y-%m-%d %H:%M} UTC ({why})")
    for c in value.complaints:
        subject = " · ".join(x for x in (c.order_id, c.sku, c.reason) if x) or "no subject"
        state = f"resolved {c.resolved_at:%Y-%m-%d}" if c.resolved_at else "open"
        lines.append(f"    complaint {c.opened_at:%Y-%m-%d}: {subject} ({state})")
    return lines


def resting(
    project: Project, conn: Connection, now: datetime, owns: Callable[[str], bool] | None = None
) -> dict[str, int]:
    """How many customers' marketing is held at ``now``, by reason (``unsatisfied``,
    ``fatigue``): the contact policy's own holds, asked customer by customer (of those
    ``owns`` names, or of all)."""
    from campaigns.fatigue import LOOKBACK, unanswered_emails
    from campaigns.models import Message
    from campaigns.store import customers_t

    policy = project.policy
    c, m = customers_t.c, Message.__table__.c
    rated = sa.select(c.id).where(c.satisfaction.is_not(None))
    mailed = sa.select(m.customer_id).where(
        m.category == "marketing", m.channel == "email", m.sent_at >= now - LOOKBACK
    )
    ids = set(conn.execute(rated).scalars())
    if policy.rules.fatigue is not None:
        ids |= set(conn.execute(mailed.distinct()).scalars())
    if owns is not None:
        ids = {customer for customer in ids if owns(customer)}
    counts = {"unsatisfied": 0, "fatigue": 0}
    for start in range(0, len(ids), 500):
        chunk = sorted(ids)[start : start + 500]
        rows = list(conn.execute(sa.select(customers_t).where(c.id.in_(chunk))))
        streaks: dict[str, list[datetime]] = {}
        if policy.rules.fatigue is not None:
            streaks = unanswered_emails(conn, {r.id: r.last_purchase_at for r in rows}, now)
        for row in rows:
            recipient = Recipient(None, {}, {}, last_rating=rating_of(row),
                                  unanswered=streaks.get(row.id, ()))  # fmt: skip
            held = policy.held(recipient, now)
            if held is not None:
                counts[held[1]] += 1
    return counts

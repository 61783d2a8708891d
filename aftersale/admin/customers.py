"""What an admin may do to one customer: suppress, lift, withdraw consent, export, erase.

Every change is written into the customer's history as an already-applied event with the
source ``admin:<user>``, so the timeline shows who did what and when.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.sendlog import customer_timeline, iso
from campaigns.engine import end_enrollments
from campaigns.models import Customer, Enrollment, Event, Purchase, PurchaseItem, Suppression

customers_t = Customer.__table__
suppressions_t = Suppression.__table__
events_t = Event.__table__
enrollments_t = Enrollment.__table__
purchases_t = Purchase.__table__
items_t = PurchaseItem.__table__
CHANNELS = ("email", "sms")


class CustomerActionError(ValueError):
    """The action does not apply (unknown channel, nothing to lift)."""


def _note(conn: Connection, customer_id: str, kind: str, actor: str, now: datetime, **data: Any):
    conn.execute(
        events_t.insert().values(
            id=f"admin-{uuid.uuid4().hex}",
            type=kind,
            customer_id=customer_id,
            at=now,
            payload=data,
            applied=True,
            applied_at=now,
            source=f"admin:{actor}",
        )
    )


def exists(conn: Connection, customer_id: str) -> bool:
    """Whether the customer is known (an action on an unknown id is a 404, not a 500)."""
    found = conn.execute(sa.select(customers_t.c.id).where(customers_t.c.id == customer_id))
    return found.first() is not None


def _channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise CustomerActionError(f"channel must be email or sms, not {channel!r}")
    return channel


def suppress(
    conn: Connection, customer_id: str, channel: str, reason: str, actor: str, now: datetime
) -> None:
    """Forbid a channel for the customer (replacing the reason of an existing suppression)."""
    channel = _channel(channel)
    reason = reason.strip() or "admin"
    existing = suppressions_t.c.customer_id == customer_id, suppressions_t.c.channel == channel
    conn.execute(suppressions_t.delete().where(*existing))
    conn.execute(
        suppressions_t.insert().values(
            customer_id=customer_id,
            channel=channel,
            reason=reason,
            source=f"admin:{actor}",
            created_at=now,
        )
    )
    _note(conn, customer_id, "admin_suppressed", actor, now, channel=channel, reason=reason)


def lift_suppression(
    conn: Connection, customer_id: str, channel: str, actor: str, now: datetime
) -> None:
    """Allow a suppressed channel again; consent still decides whether it is used."""
    channel = _channel(channel)
    removed = conn.execute(
        suppressions_t.delete().where(
            suppressions_t.c.customer_id == customer_id, suppressions_t.c.channel == channel
        )
    ).rowcount
    if not removed:
        raise CustomerActionError(f"{channel} is not suppressed for {customer_id}")
    _note(conn, customer_id, "admin_suppression_lifted", actor, now, channel=channel)


def withdraw_consent(
    conn: Connection, customer_id: str, channel: str, actor: str, now: datetime
) -> None:
    """Record that the customer no longer agrees to marketing on ``channel``."""
    column = f"{_channel(channel)}_consent"
    conn.execute(
        customers_t.update()
        .where(customers_t.c.id == customer_id)
        .values({column: False, f"{column}_source": f"admin:{actor}", "updated_at": now})
    )
    _note(conn, customer_id, "admin_consent_withdrawn", actor, now, channel=channel)


def gdpr_export(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """Everything stored about a customer, as JSON-ready data (None if unknown)."""
    t = customer_timeline(conn, customer_id)
    if t is None:
        return None
    orders = list(
        conn.execute(sa.select(purchases_t).where(purchases_t.c.customer_id == customer_id))
    )
    items = (
        list(conn.execute(sa.select(items_t).where(items_t.c.order_id.in_([o.id for o in orders]))))
        if orders
        else []
    )
    return {
        "customer": _plain(t.customer),
        "suppressions": [_plain(s) for s in t.suppressions],
        "events": [_plain(e) for e in t.events],
        "purchases": [_plain(o) for o in orders],
        "purchase_items": [_plain(i) for i in items],
        "enrollments": [_plain(e) for e in t.enrollments],
        "messages": [
            {**_plain(m), "decisions": [_plain(d) for d in t.decisions.get(m.id, [])]}
            for m in t.messages
        ],
    }


def _plain(row: Any) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}


def erase(conn: Connection, customer_id: str, actor: str, now: datetime) -> bool:
    """Anonymise a customer: contact data and attributes blanked, consent withdrawn.

    Messages, purchases and counts stay (they hold no contact data), so aggregates remain
    true; active enrolments end so nothing more is planned. False if the customer is unknown.
    """
    updated = conn.execute(
        customers_t.update()
        .where(customers_t.c.id == customer_id)
        .values(
            email=None,
            phone=None,
            first_name="",
            last_name="",
            attributes={},
            email_consent=False,
            sms_consent=False,
            email_consent_source=f"erased:{actor}",
            sms_consent_source=f"erased:{actor}",
            updated_at=now,
        )
    ).rowcount
    if not updated:
        return False
    active = conn.execute(
        sa.select(enrollments_t.c.id).where(
            enrollments_t.c.customer_id == customer_id, enrollments_t.c.status == "active"
        )
    ).scalars()
    end_enrollments(conn, dict.fromkeys(active, now), "erased")
    # Event payloads may carry contact data (a shop's raw webhook); keep only their type.
    conn.execute(
        events_t.update()
        .where(events_t.c.customer_id == customer_id, events_t.c.applied.is_(True))
        .values(payload={})
    )
    _note(conn, customer_id, "admin_erased", actor, now)
    return True

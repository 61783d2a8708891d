"""What an admin may do to one customer: suppress, lift, withdraw consent, export, erase.

Every change is written into the customer's history as an already-applied event with the
source ``admin:<user>``, so the timeline shows who did what and when.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.errors import ConfigurationError
from aftersale.sendlog import customer_timeline, iso
from campaigns.engine import end_enrollments
from campaigns.models import (
    Customer,
    DeliveryEventRecord,
    Enrollment,
    Event,
    Message,
    MessageDecision,
    NotEnrolled,
    Purchase,
    PurchaseItem,
    Suppression,
)
from campaigns.policy import ContactPolicy

customers_t = Customer.__table__
suppressions_t = Suppression.__table__
events_t = Event.__table__
enrollments_t = Enrollment.__table__
purchases_t = Purchase.__table__
items_t = PurchaseItem.__table__
messages_t = Message.__table__
decisions_t = MessageDecision.__table__
delivery_t = DeliveryEventRecord.__table__
not_enrolled_t = NotEnrolled.__table__
CHANNELS = ("email", "sms")


class CustomerActionError(ValueError):
    """The action does not apply (unknown channel, nothing to lift)."""


def holiday_calendar(policy: Callable[[], ContactPolicy], customer: Any) -> str:
    """The public holidays that hold this customer's messages and where they come from:
    "US (from country)", "DE (from phone)", "DE (default region)".

    ``policy`` builds the project's policy; broken settings leave the rest of the customer's
    view readable.
    """
    try:
        rules = policy()
    except ConfigurationError:
        return "unknown: the [policy] settings are invalid"
    country = (customer.attributes or {}).get("country")
    return rules.holiday_calendar(country if isinstance(country, str) else None, customer.phone)


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
        "not_enrolled": [_plain(n) for n in t.not_enrolled],
        "messages": [
            {**_plain(m), "decisions": [_plain(d) for d in t.decisions.get(m.id, [])]}
            for m in t.messages
        ],
        "delivery_events": [
            _plain(d)
            for d in conn.execute(_delivery_events(t.customer, [m.id for m in t.messages]))
        ],
    }


def _delivery_events(customer: Any, message_ids: list[int]) -> sa.Select:
    """Provider reports about the customer: on their messages, or naming their address."""
    raw_text = sa.cast(delivery_t.c.raw, sa.Text)
    mentions = [raw_text.contains(a) for a in (customer.email, customer.phone) if a]
    return (
        sa.select(delivery_t)
        .where(sa.or_(delivery_t.c.message_id.in_(message_ids), *mentions))
        .order_by(delivery_t.c.id)
    )


def _plain(row: Any) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}


def erase(conn: Connection, customer_id: str, actor: str, now: datetime) -> str | None:
    """Anonymise a customer: contact data and attributes blanked, consent withdrawn.

    Messages, purchases and counts stay (they hold no contact data; the subjects they kept,
    which may greet the customer by name, are blanked), so aggregates remain true; active
    enrolments end so nothing more is planned. The records of why a journey did not start
    for them go (they name the events and conditions about the customer). Event payloads are emptied (pending events
    discarded), provider reports lose their raw text, and the address is
    replaced in reasons that quote it. An id that is itself the address (a guest's, from
    before guest ids were pseudonyms) is replaced by a random one wherever it is used.

    Returns the customer's id after the erasure, or None if the customer is unknown.
    """
    customer = conn.execute(sa.select(customers_t).where(customers_t.c.id == customer_id)).first()
    if customer is None:
        return None
    if any(a and a in customer_id for a in (customer.email, customer.phone)):
        customer_id = _new_id(conn, customer_id, f"erased:{uuid.uuid4().hex[:20]}")
    messages = list(
        conn.execute(
            sa.select(messages_t.c.id).where(messages_t.c.customer_id == customer_id)
        ).scalars()
    )
    _forget_delivery_events(conn, customer, messages)
    _forget_addresses_in_reasons(conn, customer, customer_id, messages)
    # Subjects as rendered may greet the customer by name.
    conn.execute(messages_t.update().where(messages_t.c.id.in_(messages)).values(subject=None))
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
        return None
    active = conn.execute(
        sa.select(enrollments_t.c.id).where(
            enrollments_t.c.customer_id == customer_id, enrollments_t.c.status == "active"
        )
    ).scalars()
    end_enrollments(conn, dict.fromkeys(active, now), "erased")
    # Event payloads may carry contact data (a shop's raw webhook); keep only their type.
    # Events not applied yet are discarded: nothing new starts for an erased customer.
    conn.execute(
        events_t.update()
        .where(events_t.c.customer_id == customer_id, events_t.c.applied.is_(True))
        .values(payload={})
    )
    conn.execute(
        events_t.update()
        .where(events_t.c.customer_id == customer_id, events_t.c.applied.is_(False))
        .values(payload={}, applied=True, applied_at=now)
    )
    conn.execute(not_enrolled_t.delete().where(not_enrolled_t.c.customer_id == customer_id))
    _note(conn, customer_id, "admin_erased", actor, now)
    return customer_id


def _new_id(conn: Connection, old: str, new: str) -> str:
    """Give customer ``old`` the id ``new`` in every table; enrolment ids embed it too."""
    row = conn.execute(sa.select(customers_t).where(customers_t.c.id == old)).mappings().one()
    conn.execute(customers_t.insert().values({**row, "id": new}))
    for table in (suppressions_t, purchases_t, events_t, not_enrolled_t):
        conn.execute(table.update().where(table.c.customer_id == old).values(customer_id=new))
    enrolments = conn.execute(
        sa.select(enrollments_t).where(enrollments_t.c.customer_id == old)
    ).mappings()
    for e in list(enrolments):
        renamed = f"{e['journey_id']}:{new}:{e['entry_key']}"
        conn.execute(enrollments_t.insert().values({**e, "id": renamed, "customer_id": new}))
        conn.execute(
            messages_t.update()
            .where(messages_t.c.enrollment_id == e["id"])
            .values(enrollment_id=renamed)
        )
        conn.execute(enrollments_t.delete().where(enrollments_t.c.id == e["id"]))
    conn.execute(messages_t.update().where(messages_t.c.customer_id == old).values(customer_id=new))
    conn.execute(customers_t.delete().where(customers_t.c.id == old))
    return new


def _forget_delivery_events(conn: Connection, customer: Any, message_ids: list[int]) -> None:
    """Provider reports keep their type and time; their raw text (addresses) goes."""
    ids = conn.execute(
        sa.select(delivery_t.c.id).where(
            _delivery_events(customer, message_ids).whereclause  # type: ignore[arg-type]
        )
    ).scalars()
    conn.execute(delivery_t.update().where(delivery_t.c.id.in_(list(ids))).values(raw={}))


def _forget_addresses_in_reasons(
    conn: Connection, customer: Any, customer_id: str, message_ids: list[int]
) -> None:
    """Bounce texts quote the address (``550 <a@b.example>``): it is replaced in reasons."""
    addresses = [a for a in (customer.email, customer.phone) if a]

    def scrub(table: sa.Table, columns: tuple[str, ...], where: Any) -> None:
        for row in conn.execute(sa.select(table.c.id, *(table.c[c] for c in columns)).where(where)):
            values = {}
            for column in columns:
                text = getattr(row, column)
                if text and any(a in text for a in addresses):
                    for address in addresses:
                        text = text.replace(address, "[erased]")
                    values[column] = text
            if values:
                conn.execute(table.update().where(table.c.id == row.id).values(values))

    scrub(messages_t, ("reason",), messages_t.c.id.in_(message_ids))
    scrub(decisions_t, ("reason", "detail"), decisions_t.c.message_id.in_(message_ids))
    scrub(suppressions_t, ("reason", "source"), suppressions_t.c.customer_id == customer_id)
    scrub(enrollments_t, ("reason",), enrollments_t.c.customer_id == customer_id)

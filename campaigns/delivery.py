"""Applying what providers report back: delivered, bounced, opened, STOP, unsubscribe.

Webhooks arrive at least once and in any order, so every event is first recorded in
``delivery_events`` under its provider's event id: the unique index turns a replay into a
no-op. An applied event then changes the message it names (found by our message id, else by
the provider's message id), the customer's consent or the suppression list, and is written
into the message's decision history as ``delivery:<type>``.

Statuses only move forward, through :mod:`campaigns.transitions`: a late ``delivered``
never turns a ``bounced`` or ``failed`` message back into a delivered one, and a report
about a message whose send is still being recorded (``sending``) moves it all the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns import transitions
from campaigns.models import (
    BOUNCED,
    DELIVERED,
    FAILED,
    Customer,
    DeliveryEventRecord,
    Message,
    MessageDecision,
    Suppression,
)

messages_t = Message.__table__
customers_t = Customer.__table__
decisions_t = MessageDecision.__table__
records_t = DeliveryEventRecord.__table__
suppressions_t = Suppression.__table__


class DeliveryEvent(Protocol):
    """What a provider reported, normalised (``channels.DeliveryEvent`` has this shape).

    Declared here rather than imported: the domain does not depend on the delivery
    package; ``event_type`` compares equal to the plain names below.
    """

    @property
    def event_type(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def provider_message_id(self) -> str | None: ...
    @property
    def recipient(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def description(self) -> str: ...
    @property
    def raw(self) -> dict[str, Any]: ...


@dataclass
class ApplyResult:
    """What happened to a batch of provider events."""

    applied: int = 0
    duplicates: int = 0
    unmatched: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def count(self, event: DeliveryEvent) -> None:
        self.applied += 1
        self.by_type[str(event.event_type)] = self.by_type.get(str(event.event_type), 0) + 1


@dataclass(frozen=True)
class _Target:
    """The message an event concerns (if any) and the customers it names."""

    message: Any | None
    customer_ids: tuple[str, ...]


def apply_delivery_events(
    conn: Connection, events: Iterable[DeliveryEvent], now: datetime
) -> ApplyResult:
    """Apply provider events in order inside the caller's transaction; replays are no-ops."""
    result = ApplyResult()
    for event in events:
        target = _find_target(conn, event)
        if not _record_once(conn, event, target, now):
            result.duplicates += 1
            continue
        if target.message is None and not target.customer_ids:
            result.unmatched += 1
            continue
        _HANDLERS.get(str(event.event_type), _note_only)(conn, event, target, _when(event, now))
        if target.message is not None:
            _decide(conn, target.message.id, event, now)
        result.count(event)
    return result


def stable_event_id(event: DeliveryEvent) -> str:
    """The provider's event id, or a digest of the raw event for providers without one."""
    if event.event_id:
        return event.event_id
    raw = json.dumps(event.raw, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------------- finding


def _find_target(conn: Connection, event: DeliveryEvent) -> _Target:
    message = _find_message(conn, event)
    if message is not None:
        return _Target(message, (message.customer_id,))
    return _Target(None, _customers_by_address(conn, event))


def _find_message(conn: Connection, event: DeliveryEvent) -> Any | None:
    if event.message_id and event.message_id.isdigit() and len(event.message_id) < 19:
        row = conn.execute(
            sa.select(messages_t).where(messages_t.c.id == int(event.message_id))
        ).first()
        if row is not None:
            return row
    if event.provider_message_id:
        return conn.execute(
            sa.select(messages_t)
            .where(messages_t.c.provider_message_id == event.provider_message_id)
            .limit(1)
        ).first()
    return None


def _customers_by_address(conn: Connection, event: DeliveryEvent) -> tuple[str, ...]:
    """Inbound SMS and message-less reports name a phone number or an e-mail address."""
    if not event.recipient:
        return ()
    if "@" in event.recipient:
        column, value = customers_t.c.email, event.recipient.strip().lower()
        condition = sa.func.lower(column) == value
    else:
        value = normalise_phone(event.recipient)
        if value is None:
            return ()
        condition = customers_t.c.phone == value
    return tuple(r[0] for r in conn.execute(sa.select(customers_t.c.id).where(condition)))


def normalise_phone(number: str) -> str | None:
    """E.164 for a number as providers send it (``+4915…``), or None if it is not one."""
    try:
        parsed = phonenumbers.parse(number.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# ------------------------------------------------------------------------ recording


def _record_once(conn: Connection, event: DeliveryEvent, target: _Target, now: datetime) -> bool:
    """Insert the event's record; False when the provider already sent this event."""
    row = {
        "provider": event.provider,
        "event_id": stable_event_id(event)[:255],
        "message_id": target.message.id if target.message is not None else None,
        "event_type": str(event.event_type),
        "at": _when(event, now),
        "raw": _jsonable(event.raw),
    }
    stmt = _insert(conn)(records_t).values(row).on_conflict_do_nothing()
    # Not ``rowcount``: psycopg reports -1 for an insert SQLAlchemy gives a RETURNING.
    return conn.execute(stmt.returning(records_t.c.id)).first() is not None


def _decide(conn: Connection, message_id: int, event: DeliveryEvent, now: datetime) -> None:
    conn.execute(
        decisions_t.insert().values(
            message_id=message_id,
            at=now,
            action=f"delivery:{str(event.event_type)}",
            reason=f"provider:{event.provider}",
            detail=event.description[:1000] or None,
        )
    )


def _when(event: DeliveryEvent, now: datetime) -> datetime:
    return event.timestamp or now


def _jsonable(raw: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(raw, default=str))


def _insert(conn: Connection) -> Callable[..., Any]:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# ------------------------------------------------------------------------- handlers

Handler = Callable[[Connection, DeliveryEvent, _Target, datetime], None]


def _set_message(conn: Connection, target: _Target, to: str, at: datetime, **values) -> None:
    """Move the event's message to ``to`` where the transition table allows it."""
    if target.message is None:
        return
    transitions.move(conn, to, [{"_id": target.message.id, **values}], at)


def _first_time(conn: Connection, target: _Target, column: str, at: datetime) -> None:
    """Set ``opened_at``/``clicked_at``/``delivered_at`` only the first time it happens."""
    if target.message is None:
        return
    conn.execute(
        messages_t.update()
        .where(messages_t.c.id == target.message.id, messages_t.c[column].is_(None))
        .values({column: at})
    )


def _delivered(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    _set_message(conn, target, DELIVERED, at)
    _first_time(conn, target, "delivered_at", at)


def _bounced(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    # A bounce can follow a "delivered" (the receiving server accepted, then bounced).
    reason = f"bounce:{event.description}"[:500]
    _set_message(conn, target, BOUNCED, at, reason=reason)
    _suppress_all(conn, target, _channel(event, target), "bounce", f"provider:{event.provider}", at)


def _dropped(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    reason = f"dropped:{event.description}"[:500]
    _set_message(conn, target, FAILED, at, reason=reason)


def _failed(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    reason = f"undelivered:{event.description}"[:500]
    _set_message(conn, target, FAILED, at, reason=reason)


def _complained(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    _suppress_all(conn, target, "email", "spamreport", f"provider:{event.provider}", at)


def _unsubscribed(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    channel = _channel(event, target)
    source = "sms:STOP" if channel == "sms" else f"provider:{event.provider}"
    set_consent(conn, target.customer_ids, channel, False, source, at)


def _subscribed(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    channel = _channel(event, target)
    source = "sms:START" if channel == "sms" else f"provider:{event.provider}"
    set_consent(conn, target.customer_ids, channel, True, source, at)
    if channel == "sms":
        # The provider lifts its own block on START; so do we for the one it caused.
        conn.execute(
            suppressions_t.delete().where(
                suppressions_t.c.customer_id.in_(target.customer_ids),
                suppressions_t.c.channel == "sms",
                suppressions_t.c.reason == "sms_stop",
            )
        )


def _opened(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    _first_time(conn, target, "opened_at", at)


def _clicked(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    _first_time(conn, target, "clicked_at", at)
    _first_time(conn, target, "opened_at", at)  # a click proves the open the pixel missed


def _note_only(conn: Connection, event: DeliveryEvent, target: _Target, at: datetime) -> None:
    """Queued, deferred and unknown reports change nothing but the history."""


_HANDLERS: dict[str, Handler] = {
    "delivered": _delivered,
    "bounced": _bounced,
    "dropped": _dropped,
    "failed": _failed,
    "complained": _complained,
    "unsubscribed": _unsubscribed,
    "opted_out": _unsubscribed,
    "opted_in": _subscribed,
    "opened": _opened,
    "clicked": _clicked,
}


def _channel(event: DeliveryEvent, target: _Target) -> str:
    if target.message is not None:
        return str(target.message.channel)
    return "sms" if event.provider == "twilio" else "email"


# ------------------------------------------------------------------ customer changes


def set_consent(
    conn: Connection,
    customer_ids: Iterable[str],
    channel: str,
    consent: bool,
    source: str,
    at: datetime,
) -> int:
    """Set e-mail or SMS marketing consent for customers; returns how many rows changed."""
    column = {"email": "email_consent", "sms": "sms_consent"}[channel]
    ids = list(customer_ids)
    if not ids:
        return 0
    return conn.execute(
        customers_t.update()
        .where(customers_t.c.id.in_(ids))
        .values({column: consent, f"{column}_source": source, "updated_at": at})
    ).rowcount


def suppress(
    conn: Connection, customer_id: str, channel: str, reason: str, source: str, at: datetime
) -> None:
    """Put a customer's channel on the suppression list; an existing entry is kept."""
    row = {
        "customer_id": customer_id,
        "channel": channel,
        "reason": reason,
        "source": source,
        "created_at": at,
    }
    conn.execute(_insert(conn)(suppressions_t).values(row).on_conflict_do_nothing())


def _suppress_all(
    conn: Connection, target: _Target, channel: str, reason: str, source: str, at: datetime
) -> None:
    for customer_id in target.customer_ids:
        suppress(conn, customer_id, channel, reason, source, at)

"""Events arriving over HTTP: the events API and shop order webhooks.

Both end in the same ``events`` table as a file import, through the same validation
(:func:`campaigns.importing.event_row`), so an event means the same thing however it came.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaigns import bounds
from campaigns.bounds import RowInvalid
from campaigns.importing import (
    dialect_insert,
    event_row,
    known_skus,
    parse_email,
    parse_locale,
    parse_phone,
    skus_named,
    unknown_sku,
)
from campaigns.models import Customer, Event

customers_t = Customer.__table__
events_t = Event.__table__
# Consent set by a file or the shop itself; any other source is the customer's own choice.
FEED_SOURCES = ("import", "shopify")
GUEST_PREFIX = "shopify:guest:"
MAX_EVENTS = 10_000  # one request; larger feeds belong in `aftersale import events`


class BodyInvalid(ValueError):
    """The request body cannot be read as events at all."""


@dataclass
class EventOutcome:
    """The answer for one event of a request."""

    index: int
    status: str  # accepted | duplicate | error
    id: str | None = None
    field: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class IngestReport:
    """Per-event outcomes of one events API request."""

    outcomes: list[EventOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "errors": self.count("error"),
            "results": [o.as_dict() for o in self.outcomes],
        }


# --------------------------------------------------------------------- events API


def decode_events(body: bytes, content_type: str) -> list[Any]:
    """One JSON object, a JSON array, or JSON lines (``application/x-ndjson``).

    In JSON lines a line that is not JSON (or nested too deeply) becomes a
    :class:`RowInvalid` in its place, so the other lines still land; a JSON body that does
    not parse raises :class:`BodyInvalid`. An event holding a string nothing can store (a NUL,
    a lone surrogate: :func:`campaigns.bounds.unstorable_path`) becomes a
    :class:`RowInvalid` naming the field.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyInvalid(f"the body is not UTF-8: {exc}") from exc
    if content_type.split(";", 1)[0].strip().lower() in (
        "application/x-ndjson",
        "application/jsonl",
    ):
        items = [_json_line(line) for line in text.splitlines() if line.strip()]
    else:
        try:
            # One level more than an event may have: the array around the events.
            data = bounds.json_value(text, nul=False, depth=bounds.MAX_JSON_DEPTH + 1)
        except RowInvalid as exc:
            raise BodyInvalid(f"the body is not JSON: {exc.reason}") from None
        items = data if isinstance(data, list) else [data]
    if len(items) > MAX_EVENTS:
        raise BodyInvalid(f"at most {MAX_EVENTS} events a request")
    if bounds.may_be_unstorable(text):
        items = [_storable(item) for item in items]
    return items


def _json_line(line: str) -> Any:
    try:
        return bounds.json_value(line)
    except RowInvalid as exc:
        return exc


def _storable(item: Any) -> Any:
    found = bounds.unstorable_path(item)
    return item if found is None else RowInvalid(found[0] or "json", found[1])


def ingest_events(db: Engine, items: list[Any], *, source: str = "api") -> IngestReport:
    """Validate and store events; known ids are duplicates, bad ones errors with the field."""
    report = IngestReport()
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(items):
        try:
            if isinstance(item, RowInvalid):
                raise item
            rows.append((index, event_row(item, source=source)))
        except RowInvalid as exc:
            report.outcomes.append(_error(index, item, exc))
    with db.begin() as conn:
        report.outcomes.extend(_store(conn, rows))
    report.outcomes.sort(key=lambda o: o.index)
    return report


def _error(index: int, item: Any, exc: RowInvalid) -> EventOutcome:
    event_id = item.get("id") if isinstance(item, dict) else None
    if not (isinstance(event_id, str) and 0 < len(event_id) <= bounds.MAX_ID):
        event_id = None  # an answer names the event, it does not echo what it carried
    return EventOutcome(index, "error", event_id, exc.field, exc.reason)


def _store(conn: Connection, rows: list[tuple[int, dict[str, Any]]]) -> list[EventOutcome]:
    outcomes: list[EventOutcome] = []
    customer_ids = {row["customer_id"] for _, row in rows}
    event_ids = [row["id"] for _, row in rows]
    known_customers = _existing(conn, customers_t.c.id, customer_ids)
    seen = _existing(conn, events_t.c.id, event_ids)
    bought, named = skus_named(row for _, row in rows)
    skus = bought | known_skus(conn, named - bought, customer_ids)
    fresh = []
    for index, row in rows:
        bad_sku = unknown_sku(row, skus)
        if row["customer_id"] not in known_customers:
            reason = f"unknown customer {row['customer_id']!r}"
            outcomes.append(EventOutcome(index, "error", row["id"], "customer", reason))
        elif bad_sku is not None:
            outcomes.append(EventOutcome(index, "error", row["id"], "sku", bad_sku.reason))
        elif row["id"] in seen:
            outcomes.append(EventOutcome(index, "duplicate", row["id"]))
        else:
            seen.add(row["id"])
            fresh.append(row)
            outcomes.append(EventOutcome(index, "accepted", row["id"]))
    insert_ignoring(conn, events_t, fresh)
    return outcomes


def _existing(conn: Connection, column: sa.Column, values: Iterable[str]) -> set[str]:
    values = list(set(values))
    if not values:
        return set()
    return {r[0] for r in conn.execute(sa.select(column).where(column.in_(values)))}


def insert_ignoring(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows, leaving alone any whose key exists (a concurrent request won)."""
    if not rows:
        return 0
    insert = dialect_insert(conn)
    return conn.execute(insert(table).on_conflict_do_nothing(), rows).rowcount


# ------------------------------------------------------------------ Shopify orders


@dataclass(frozen=True)
class ShopOrderResult:
    """What became of one shop order."""

    status: str  # accepted | duplicate | ignored
    event_id: str | None = None
    customer_id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def ingest_shopify_order(
    db: Engine,
    order: Mapping[str, Any],
    webhook_id: str | None,
    *,
    region: str,
    default_locale: str,
    now: datetime,
    guest_key: str,
) -> ShopOrderResult:
    """Upsert the order's customer and store the order as a purchase event.

    The event id is ``shopify:<webhook id>``, so Shopify's retries of one delivery are
    no-ops. Raises :class:`RowInvalid` for an order that cannot be a purchase.
    """
    customer = shopify_customer(
        order, region=region, default_locale=default_locale, now=now, guest_key=guest_key
    )
    if customer is None:
        return ShopOrderResult("ignored", reason="the order names no customer, e-mail or phone")
    event_id = f"shopify:{webhook_id}" if webhook_id else f"shopify:order:{order.get('id')}"
    shopify_purchase(order, event_id, customer["id"])  # an invalid order fails before writing
    with db.begin() as conn:
        if customer["id"].startswith(GUEST_PREFIX):
            customer["id"] = _known_guest(conn, customer) or customer["id"]
        row = event_row(shopify_purchase(order, event_id, customer["id"]), source="shopify")
        upsert_shop_customer(conn, customer)
        stored = insert_ignoring(conn, events_t, [row])
    status = "accepted" if stored else "duplicate"
    return ShopOrderResult(status, event_id, customer["id"])


def shopify_purchase(order: Mapping[str, Any], event_id: str, customer_id: str) -> dict:
    """The contract's purchase event for a Shopify order."""
    if not order.get("id"):
        raise RowInvalid("id", "the order has no id")
    if not isinstance(order.get("line_items") or [], list):
        raise RowInvalid("line_items", "must be a list")
    items = [
        {
            "sku": bounds.text(line.get("sku") or "", "line_items.sku", bounds.MAX_ID),
            "name": bounds.text(line.get("title") or line.get("name") or "", "line_items.title"),
            "price": line.get("price") or "0",
            "quantity": line.get("quantity") or 1,
            "product_id": line.get("product_id"),
        }
        for line in order.get("line_items") or []
        if isinstance(line, dict)
    ]
    return {
        "id": event_id,
        "type": "purchase",
        "customer": customer_id,
        "at": order.get("created_at"),
        "order": {
            "id": f"shopify:{order['id']}",
            "total": order.get("total_price") or "0",
            "currency": order.get("currency") or "EUR",
            "items": items,
        },
    }


def guest_id(key: str, address: str) -> str:
    """A guest's customer id: a keyed hash of the address, which stays in the contact field."""
    digest = hmac.new(key.encode(), address.casefold().encode(), hashlib.sha256).hexdigest()
    return GUEST_PREFIX + digest[:24]


def _known_guest(conn: Connection, customer: Mapping[str, Any]) -> str | None:
    """The id of the guest with this address already (made with an earlier key, say)."""
    c = customers_t.c
    column, value = (
        (c.email, customer["email"]) if customer["email"] else (c.phone, customer["phone"])
    )
    return conn.execute(
        sa.select(c.id).where(column == value, c.id.startswith(GUEST_PREFIX)).order_by(c.id)
    ).scalar()


def shopify_customer(
    order: Mapping[str, Any], *, region: str, default_locale: str, now: datetime, guest_key: str
) -> dict[str, Any] | None:
    """A customers row for the order's customer, a guest row, or None without any contact."""
    person = order.get("customer") if isinstance(order.get("customer"), dict) else None
    email = _clean(parse_email, (person or {}).get("email") or order.get("email") or "")
    phone = _clean(
        lambda v: parse_phone(v, region), (person or {}).get("phone") or order.get("phone") or ""
    )
    if person and person.get("id"):
        customer_id = f"shopify:{person['id']}"
    elif email or phone:
        customer_id = guest_id(guest_key, email or phone)
    else:
        return None
    bounds.identifier(customer_id, "customer.id")
    locale = _clean(lambda v: parse_locale(v, default_locale), order.get("customer_locale") or "")
    return {
        "id": customer_id,
        "email": email,
        "phone": phone,
        "first_name": bounds.text((person or {}).get("first_name"), "customer.first_name"),
        "last_name": bounds.text((person or {}).get("last_name"), "customer.last_name"),
        "locale": locale or default_locale,
        "email_consent": _subscribed(person, "email_marketing_consent", "accepts_marketing"),
        "sms_consent": _subscribed(person, "sms_marketing_consent", None),
        "email_consent_source": "shopify",
        "sms_consent_source": "shopify",
        "created_at": now,
        "updated_at": now,
    }


def _clean(parse: Any, value: str) -> str | None:
    """A parsed value, or None: a malformed address must not lose the whole order."""
    try:
        return parse(str(value)) or None
    except RowInvalid:
        return None


def _subscribed(person: Mapping[str, Any] | None, key: str, legacy: str | None) -> bool:
    if not person:
        return False  # a guest checkout is no marketing consent
    consent = person.get(key)
    if isinstance(consent, dict):
        return consent.get("state") == "subscribed"
    return bool(legacy and person.get(legacy) is True)


def upsert_shop_customer(conn: Connection, row: dict[str, Any]) -> None:
    """Insert or update a shop customer without undoing an opt-out made here."""
    existing = conn.execute(sa.select(customers_t).where(customers_t.c.id == row["id"])).first()
    if existing is None:
        conn.execute(customers_t.insert().values(**row, attributes={}, open_complaints=0))
        return
    changes: dict[str, Any] = {"updated_at": row["updated_at"]}
    for column in ("email", "phone", "first_name", "last_name", "locale"):
        if row[column]:
            changes[column] = row[column]
    for column in ("email_consent", "sms_consent"):
        changes.update(_merged_consent(existing, row, column))
    conn.execute(customers_t.update().where(customers_t.c.id == row["id"]).values(changes))


def _merged_consent(existing: Any, row: Mapping[str, Any], column: str) -> dict[str, Any]:
    """The shop may withdraw consent, but not restore one the customer withdrew with us."""
    source = getattr(existing, f"{column}_source")
    if row[column] and not getattr(existing, column) and source not in FEED_SOURCES:
        return {}
    return {column: row[column], f"{column}_source": row[f"{column}_source"]}

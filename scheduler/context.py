"""A message's template context: loaded by the dispatcher, built where it is rendered.

The dispatcher reads, inside its reservation, what a batch's templates will need: the
customers, orders, items and enrolment positions. :class:`ContextLoader` keeps them as
plain tuples and hands each message a :class:`ContextParts`. The context itself (customer
view, order with its decimals and warranty ends, links, personal offer) is built from
those parts by whoever renders: a render process, or a sending thread when there is none.
That keeps the dispatching process, the busier of the two, to reading and deciding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.consent import preferences_url, unsubscribe_url
from campaigns.engine import (
    CustomerRow,
    customer_context,
    enrollments_t,
    items_t,
    purchases_t,
    select_fields,
)
from campaigns.fatigue import unanswered_of
from campaigns.idlists import id_in
from campaigns.ratings import RatingLinks
from campaigns.timetable import warranty_end
from campaigns.timewindows import resolve_zone
from campaigns.value import DEFAULT_SEGMENTS, SegmentRules
from campaigns.warning import alert_skus
from channels import pickled_by_fields
from templates import coupon_code
from templates.links import short_link_base
from templates.signing import purpose_key

UTC_ZONE = ZoneInfo("UTC")  # a customer without a time zone sees dates in UTC

__all__ = ["ContextLoader", "ContextParts", "LinkSettings", "render_context"]


class Order(NamedTuple):
    id: str
    total: str
    currency: str
    purchased_at: datetime


class Item(NamedTuple):
    order_id: str
    position: int
    sku: str
    name: str
    category: str
    price: str
    quantity: int
    warranty_months: int | None
    inspection_interval_days: int | None


ORDERS = select_fields(purchases_t, Order).where(id_in(purchases_t.c.id))
ITEMS = select_fields(items_t, Item).where(id_in(items_t.c.order_id)).order_by(items_t.c.position)
POSITIONS = sa.select(enrollments_t.c.id, enrollments_t.c.item_position).where(
    id_in(enrollments_t.c.id)
)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class LinkSettings:
    """What a message's links and offer are made from (see :func:`render_context`)."""

    public_url: str
    secret_key: str
    short_links: bool


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ContextParts:
    """Plain data a message's template context is built from; cheap to send to a process.

    The attributes named like a message row's (``id``, ``customer_id``...) let it stand for
    the row in :func:`render_context`.
    """

    id: int
    customer_id: str
    enrollment_id: str
    channel: str | None
    journey_id: str
    step: str
    occurrence: int
    now: datetime
    customer: CustomerRow
    order: Order | None
    items: tuple[Item, ...]
    position: int | None
    # The items of the messages this one carries (campaigns.bundling), each with its order.
    bundled: tuple[tuple[Order, Item], ...] = ()
    # The ``[segments]`` thresholds ``customer.segment`` is scored by (campaigns.value).
    segments: SegmentRules = DEFAULT_SEGMENTS
    # The SKUs under alert (campaigns.warning) when the batch was read.
    alerts: frozenset[str] = frozenset()

    @property
    def locale(self) -> str | None:
        return self.customer.locale

    def base(self) -> dict[str, Any]:
        """The context without links and offer (what journey conditions see).

        ``item`` is the message's own item (None for a journey per order); ``items`` is it
        followed by the items of the messages it carries, so a bundle names every one.
        """
        order = self.order
        zone = resolve_zone(self.customer.timezone, UTC_ZONE)  # the calendar dates show in
        items = [_item_context(order, i, zone) for i in (self.items if order is not None else ())]
        order_ctx = None
        if order is not None:
            order_ctx = {
                "id": order.id,
                "total": _decimal(order.total),
                "currency": order.currency,
                "purchased_at": order.purchased_at,
                "items": items,
            }
        item = next((i for i in items if i["position"] == self.position), None)
        carried = [_item_context(o, i, zone) for o, i in self.bundled] if item is not None else []
        return {
            "customer": customer_context(self.customer, self.now.year, self.now, self.segments),
            "order": order_ctx,
            "item": item,
            "items": [item, *carried] if item is not None else [],
            "journey": {"id": self.journey_id, "name": self.journey_id.replace("_", " ")},
            "step": {"id": self.step, "occurrence": self.occurrence},
            "occurrence": self.occurrence,
            "now": self.now,
            "alerts": self.alerts,
        }

    def context(self, links: LinkSettings) -> dict[str, Any]:
        """The whole template context: :meth:`base`, links and the personal offer."""
        return render_context(
            self, self.base(), links.public_url, links.secret_key, short_links=links.short_links
        )


class ContextLoader:
    """Loads, once per batch, the orders and items the batch's templates will need."""

    def __init__(
        self, conn: Connection, rows: list[Any], segments: SegmentRules = DEFAULT_SEGMENTS
    ) -> None:
        self.conn = conn
        self.segments = segments
        self.alerts: frozenset[str] = frozenset()
        self.orders: dict[str, Order] = {}
        self.items: dict[str, list[Item]] = defaultdict(list)
        self.positions: dict[str, int | None] = {}
        self._bases: dict[int, dict[str, Any]] = {}
        # Loaded when first needed: a batch of deferrals needs no context at all.
        self._rows: list[Any] | None = rows
        self.rows = rows
        # How the previous step's message of each row ended (message id → ``previous``),
        # loaded by the journey engine when a condition first asks.
        self.previous: dict[int, dict[str, Any]] | None = None
        # The batch's customers' unanswered marketing e-mails (campaigns.fatigue), loaded
        # when the policy first asks: only with fatigue on.
        self._unanswered: dict[str, list[datetime]] | None = None

    def unanswered(self, customer_id: str, now: datetime) -> list[datetime]:
        """When the marketing e-mails ``customer_id`` left unanswered went out."""
        if self._unanswered is None:
            ids = {r.customer_id for r in self.rows}
            self._unanswered = unanswered_of(self.conn, ids, now)
        return self._unanswered.get(customer_id, [])

    def _load(self, rows: list[Any]) -> None:
        conn = self.conn
        order_ids = sorted({r.order_id for r in rows if r.order_id})
        if order_ids:
            for o in conn.execute(ORDERS, {"ids": order_ids}).all():
                self.orders[o.id] = Order._make(o)
            items = self.items
            for i in conn.execute(ITEMS, {"ids": order_ids}).all():
                items[i.order_id].append(Item._make(i))
        self.alerts = alert_skus(conn)
        enrollment_ids = sorted({r.enrollment_id for r in rows})
        for eid, position in conn.execute(POSITIONS, {"ids": enrollment_ids}).all():
            self.positions[eid] = position

    def parts_for(
        self, row: Any, customer: Any, now: datetime, bundled: Sequence[Any] = ()
    ) -> ContextParts:
        """What ``row``'s context is built from; ``customer`` as :data:`CUSTOMERS` reads it.

        ``bundled`` are the messages ``row`` carries; they must have been among the rows
        this loader was given.
        """
        if self._rows is not None:
            rows, self._rows = self._rows, None
            self._load(rows)
        return ContextParts(
            id=row.id,
            customer_id=row.customer_id,
            enrollment_id=row.enrollment_id,
            channel=row.channel,
            journey_id=row.journey_id,
            step=row.step,
            occurrence=row.occurrence,
            now=now,
            customer=customer if isinstance(customer, CustomerRow) else _customer(customer),
            order=self.orders.get(row.order_id),
            items=tuple(self.items.get(row.order_id, ())),
            position=self.positions.get(row.enrollment_id),
            bundled=tuple(self._items_of(bundled)) if bundled else (),
            segments=self.segments,
            alerts=self.alerts,
        )

    def _items_of(self, messages: Sequence[Any]) -> Iterator[tuple[Order, Item]]:
        for message in messages:
            order = self.orders.get(message.order_id)
            position = self.positions.get(message.enrollment_id)
            found = [i for i in self.items.get(message.order_id, ()) if i.position == position]
            if order is not None and found:
                yield order, found[0]

    def context_for(self, row: Any, customer: Any, now: datetime) -> dict[str, Any]:
        """``row``'s context without links and offer, as journey conditions see it."""
        if row.id not in self._bases:
            self._bases[row.id] = self.parts_for(row, customer, now).base()
        return self._bases[row.id]


def _item_context(order: Order, i: Item, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "position": i.position,
        "sku": i.sku,
        "name": i.name,
        "category": i.category,
        "price": _decimal(i.price),
        "quantity": i.quantity,
        "warranty_months": i.warranty_months,
        "inspection_interval_days": i.inspection_interval_days,
        "warranty_end": (
            warranty_end(order.purchased_at, i.warranty_months, zone) if i.warranty_months else None
        ),
    }


def _customer(row: Any) -> CustomerRow:
    return CustomerRow(*(getattr(row, name) for name in CustomerRow._fields))


def render_context(
    row: Any, base: Mapping[str, Any], public_url: str, secret_key: str, *, short_links: bool
) -> dict[str, Any]:
    """The template context: the message's data plus its links and the personal offer."""
    order = base.get("order") or {}
    total = order.get("total") or 0
    # One secret, a derived key per purpose (templates.signing).
    unsubscribe_key = purpose_key(secret_key, "unsubscribe")
    links = {
        "unsubscribe": unsubscribe_url(public_url, unsubscribe_key, row.customer_id),
        "preferences": preferences_url(public_url, unsubscribe_key, row.customer_id),
        # Signed only when a template uses one (campaigns.ratings).
        "rate": RatingLinks(
            public_url, purpose_key(secret_key, "ratings"), row.id, row.customer_id
        ),
    }
    if short_links and row.channel != "email":  # SMS, or a preview of either
        links["short"] = short_link_base(public_url, purpose_key(secret_key, "links"), row.id)
    return {
        **base,
        "links": links,
        "offer": {
            "coupon_code": coupon_code(purpose_key(secret_key, "coupons"), row.enrollment_id),
            "bonus_points": max(100, int(total) // 10 * 10),
            "discount_percent": 10,
        },
    }


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError):
        return Decimal(0)

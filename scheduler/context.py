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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.consent import unsubscribe_url
from campaigns.engine import (
    CustomerRow,
    add_months,
    customer_context,
    enrollments_t,
    items_t,
    purchases_t,
    select_fields,
)
from channels import pickled_by_fields
from templates import coupon_code
from templates.links import short_link_base

__all__ = ["ContextLoader", "ContextParts", "LinkSettings", "render_context"]


def _ids() -> Any:
    return sa.bindparam("ids", expanding=True)


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


ORDERS = select_fields(purchases_t, Order).where(purchases_t.c.id.in_(_ids()))
ITEMS = (
    select_fields(items_t, Item).where(items_t.c.order_id.in_(_ids())).order_by(items_t.c.position)
)
POSITIONS = sa.select(enrollments_t.c.id, enrollments_t.c.item_position).where(
    enrollments_t.c.id.in_(_ids())
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

    @property
    def locale(self) -> str | None:
        return self.customer.locale

    def base(self) -> dict[str, Any]:
        """The context without links and offer (what journey conditions see)."""
        order = self.order
        items = [
            {
                "position": i.position,
                "sku": i.sku,
                "name": i.name,
                "category": i.category,
                "price": _decimal(i.price),
                "quantity": i.quantity,
                "warranty_months": i.warranty_months,
                "inspection_interval_days": i.inspection_interval_days,
                "warranty_end": (
                    add_months(order.purchased_at, i.warranty_months) if i.warranty_months else None
                ),
            }
            for i in (self.items if order is not None else ())
        ]
        order_ctx = None
        if order is not None:
            order_ctx = {
                "id": order.id,
                "total": _decimal(order.total),
                "currency": order.currency,
                "purchased_at": order.purchased_at,
                "items": items,
            }
        return {
            "customer": customer_context(self.customer, self.now.year),
            "order": order_ctx,
            "item": next((i for i in items if i["position"] == self.position), None),
            "journey": {"id": self.journey_id, "name": self.journey_id.replace("_", " ")},
            "step": {"id": self.step, "occurrence": self.occurrence},
            "occurrence": self.occurrence,
            "now": self.now,
        }

    def context(self, links: LinkSettings) -> dict[str, Any]:
        """The whole template context: :meth:`base`, links and the personal offer."""
        return render_context(
            self, self.base(), links.public_url, links.secret_key, short_links=links.short_links
        )


class ContextLoader:
    """Loads, once per batch, the orders and items the batch's templates will need."""

    def __init__(self, conn: Connection, rows: list[Any]) -> None:
        self.conn = conn
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

    def _load(self, rows: list[Any]) -> None:
        conn = self.conn
        order_ids = sorted({r.order_id for r in rows if r.order_id})
        if order_ids:
            for o in conn.execute(ORDERS, {"ids": order_ids}).all():
                self.orders[o.id] = Order._make(o)
            items = self.items
            for i in conn.execute(ITEMS, {"ids": order_ids}).all():
                items[i.order_id].append(Item._make(i))
        enrollment_ids = sorted({r.enrollment_id for r in rows})
        for eid, position in conn.execute(POSITIONS, {"ids": enrollment_ids}).all():
            self.positions[eid] = position

    def parts_for(self, row: Any, customer: Any, now: datetime) -> ContextParts:
        """What ``row``'s context is built from; ``customer`` as :data:`CUSTOMERS` reads it."""
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
        )

    def context_for(self, row: Any, customer: Any, now: datetime) -> dict[str, Any]:
        """``row``'s context without links and offer, as journey conditions see it."""
        if row.id not in self._bases:
            self._bases[row.id] = self.parts_for(row, customer, now).base()
        return self._bases[row.id]


def _customer(row: Any) -> CustomerRow:
    return CustomerRow(*(getattr(row, name) for name in CustomerRow._fields))


def render_context(
    row: Any, base: Mapping[str, Any], public_url: str, secret_key: str, *, short_links: bool
) -> dict[str, Any]:
    """The template context: the message's data plus its links and the personal offer."""
    order = base.get("order") or {}
    total = order.get("total") or 0
    links = {"unsubscribe": unsubscribe_url(public_url, secret_key, row.customer_id)}
    if short_links and row.channel != "email":  # SMS, or a preview of either
        links["short"] = short_link_base(public_url, secret_key, row.id)
    return {
        **base,
        "links": links,
        "offer": {
            "coupon_code": coupon_code(secret_key, row.enrollment_id),
            "bonus_points": max(100, int(total) // 10 * 10),
            "discount_percent": 10,
        },
    }


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError):
        return Decimal(0)

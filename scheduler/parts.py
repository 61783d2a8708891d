"""What a message's template context is built from, and the building.

:class:`ContextParts` is plain data, read by the dispatcher (:mod:`scheduler.context`)
and sent to whoever renders: a render process, or a sending thread when there is none.
:meth:`ContextParts.context` builds the context there (customer view, order with its
decimals and warranty ends, links, personal offer). This module imports neither
SQLAlchemy nor the journey engine, so that a render process starts with the templates
and this alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from campaigns.consent import preferences_url, unsubscribe_url
from campaigns.customers import CustomerRow, customer_context
from campaigns.durations import warranty_end
from campaigns.ratings import RatingLinks
from campaigns.timewindows import resolve_zone
from campaigns.value import DEFAULT_SEGMENTS, SegmentRules
from channels import pickled_by_fields
from templates.coupons import coupon_code
from templates.links import short_link_base
from templates.signing import purpose_key

UTC_ZONE = ZoneInfo("UTC")  # a customer without a time zone sees dates in UTC

__all__ = ["ContextParts", "Item", "LinkSettings", "Order", "render_context"]


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

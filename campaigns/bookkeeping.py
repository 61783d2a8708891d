"""Keeps each customer's figures current as their events are applied.

The engine calls these inside its transaction, for the events it applies:

- a purchase adds an order and its total to ``orders`` and ``revenue`` and moves
  ``first_purchase_at`` / ``last_purchase_at`` (an order id already stored counts once);
- a return takes its order back out of ``orders`` and ``revenue`` (once per order);
- ``complaint_opened`` adds a row to ``complaints`` with its order, SKU (and the SKU's
  category, from the order or the customer's purchases) and reason, and one to the
  customer's ``complaints``; ``complaint_resolved`` closes their oldest open complaint
  (of the order or SKU it names, when it names one);
- ``satisfaction_rated`` sets ``satisfaction`` and ``satisfaction_at`` unless a later
  rating is already stored.

Revenue is kept in the currency of the customer's first order; an order in another
currency adds to ``orders`` but not to ``revenue`` (there is no rate to convert with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.bulk import executemany
from campaigns.models import Complaint
from campaigns.store import customers_t, items_t, purchases_t

__all__ = [
    "close_complaint",
    "complaints_t",
    "count_purchases",
    "count_return",
    "open_complaint",
    "rate",
    "store_figures",
    "stored_orders",
]

complaints_t = Complaint.__table__
_c = customers_t.c


# One statement for a batch's customers (campaigns.bulk): built once.
SET_FIGURES = (
    customers_t.update()
    .where(_c.id == sa.bindparam("_id"))
    .values(
        {
            name: sa.bindparam(f"v_{name}", type_=_c[name].type)
            for name in ("orders", "revenue", "revenue_currency", "first_purchase_at",
                         "last_purchase_at")
        }
    )
)  # fmt: skip


def stored_orders(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of these order ids are already stored (they count once)."""
    query = sa.select(purchases_t.c.id).where(purchases_t.c.id.in_(ids))
    return {r[0] for r in conn.execute(query)}


def count_purchases(
    customers: Mapping[str, Any],
    orders: Sequence[Mapping[str, Any]],
    stored: set[str],
    *,
    each: bool = True,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Add ``orders`` (purchase rows about to be stored; ``stored``, those whose id is
    already stored, count once) to their customers' figures: one row per customer, whatever
    their orders in it, for :func:`store_figures`.

    Also returns each counted order's customer figures as they stand with it (and the
    orders before it in ``orders``), for the conditions its purchase is planned with; with
    ``each=False`` (no journey reads them) nothing. Reads and writes nothing itself, so a
    batch can be counted while the last one commits (:mod:`campaigns.engine`).
    """
    after: dict[str, dict[str, Any]] = {}
    stored = set(stored)
    figures: dict[str, dict[str, Any]] = {}
    for order in orders:
        customer = customers.get(order["customer_id"])
        if customer is None or order["id"] in stored:
            continue
        stored.add(order["id"])
        now = figures.setdefault(customer.id, _figures(customer))
        now["orders"] += 1
        currency = now["revenue_currency"] or order["currency"]
        if currency == order["currency"]:
            now["revenue_currency"] = currency
            now["revenue"] = str(_decimal(now["revenue"]) + _decimal(order["total"]))
        at = order["purchased_at"]
        now["first_purchase_at"] = min(filter(None, (now["first_purchase_at"], at)))
        now["last_purchase_at"] = max(filter(None, (now["last_purchase_at"], at)))
        if each:
            after[order["id"]] = dict(now)
    rows = [
        {"_id": cid, **{f"v_{k}": v for k, v in values.items()}} for cid, values in figures.items()
    ]
    return after, sorted(rows, key=lambda r: r["_id"])


def store_figures(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write the figures :func:`count_purchases` worked out, in one statement."""
    executemany(conn, SET_FIGURES, rows)


def _figures(customer: Any) -> dict[str, Any]:
    return {
        "orders": customer.orders,
        "revenue": customer.revenue,
        "revenue_currency": customer.revenue_currency,
        "first_purchase_at": customer.first_purchase_at,
        "last_purchase_at": customer.last_purchase_at,
    }


def count_return(conn: Connection, customer_id: str, order_id: str, at: datetime) -> None:
    """Take a returned order out of its customer's figures, once."""
    p = purchases_t.c
    order = conn.execute(
        sa.select(p.total, p.currency).where(
            p.id == order_id, p.customer_id == customer_id, p.returned_at.is_(None)
        )
    ).first()
    conn.execute(purchases_t.update().where(p.id == order_id).values(returned_at=at))
    if order is None:
        return
    row = conn.execute(
        sa.select(_c.orders, _c.revenue, _c.revenue_currency).where(_c.id == customer_id)
    ).first()
    if row is None:
        return
    values: dict[str, Any] = {"orders": max(0, row.orders - 1)}
    if row.revenue_currency == order.currency:
        values["revenue"] = str(max(Decimal(0), _decimal(row.revenue) - _decimal(order.total)))
    conn.execute(customers_t.update().where(_c.id == customer_id).values(**values))


def open_complaint(conn: Connection, row: Any) -> None:
    """Store a ``complaint_opened`` event's complaint and count it."""
    payload = row.payload or {}
    order_id = _text(payload.get("order"))
    sku = _text(payload.get("sku"))
    values = {
        "id": row.id,
        "customer_id": row.customer_id,
        "order_id": order_id,
        "sku": sku,
        "category": _category(conn, row.customer_id, order_id, sku),
        "reason": _text(payload.get("reason")),
        "opened_at": row.at,
    }
    if conn.execute(_COMPLAINT_KNOWN, {"id": row.id}).first() is not None:
        return
    conn.execute(complaints_t.insert(), values)
    conn.execute(_COUNT_COMPLAINT, {"customer": row.customer_id})


# Built once: every complaint runs them.
_COMPLAINT_KNOWN = sa.select(complaints_t.c.id).where(complaints_t.c.id == sa.bindparam("id"))
_COUNT_COMPLAINT = (
    customers_t.update()
    .where(_c.id == sa.bindparam("customer"))
    .values(open_complaints=_c.open_complaints + 1, complaints=_c.complaints + 1)
)


def close_complaint(conn: Connection, row: Any) -> None:
    """Mark the customer's oldest open complaint (of the order or SKU named) resolved."""
    payload = row.payload or {}
    k = complaints_t.c
    where = [k.customer_id == row.customer_id, k.resolved_at.is_(None)]
    for column, key in ((k.order_id, "order"), (k.sku, "sku")):
        if _text(payload.get(key)):
            where.append(column == _text(payload.get(key)))
    oldest = conn.execute(sa.select(k.id).where(*where).order_by(k.opened_at).limit(1)).scalar()
    if oldest is None and len(where) > 2:  # named a subject it was not opened with
        oldest = conn.execute(
            sa.select(k.id).where(*where[:2]).order_by(k.opened_at).limit(1)
        ).scalar()
    if oldest is not None:
        conn.execute(complaints_t.update().where(k.id == oldest).values(resolved_at=row.at))


def rate(conn: Connection, row: Any) -> None:
    """Store a ``satisfaction_rated`` event's value as the customer's latest rating."""
    value = (row.payload or {}).get("value")
    if not isinstance(value, int) or isinstance(value, bool):
        return
    conn.execute(_RATE, {"customer": row.customer_id, "value": value, "at": row.at})


# The customer's latest rating, unless a later one is already stored.
_RATED_AT = sa.bindparam("at", type_=_c.satisfaction_at.type)
_RATE = (
    customers_t.update()
    .where(
        _c.id == sa.bindparam("customer"),
        sa.or_(
            _c.satisfaction_at.is_(None),
            _c.satisfaction_at <= _RATED_AT,
        ),
    )
    .values(
        satisfaction=sa.bindparam("value"),
        satisfaction_at=_RATED_AT,
    )
)


def _category(conn: Connection, customer_id: str, order_id: str | None, sku: str | None):
    if not sku:
        return None
    i, p = items_t.c, purchases_t.c
    query = sa.select(i.category).where(i.sku == sku)
    if order_id:
        query = query.where(i.order_id == order_id)
    else:
        query = query.join(purchases_t, p.id == i.order_id).where(p.customer_id == customer_id)
    found = conn.execute(query.limit(1)).scalar()
    if found is None:
        found = conn.execute(sa.select(i.category).where(i.sku == sku).limit(1)).scalar()
    return found or None


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value not in (None, "") else None


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(value or 0)
    except (InvalidOperation, TypeError, ValueError):
        return Decimal(0)

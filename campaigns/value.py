"""What a customer is worth to the shop: the figures conditions read, and their segment.

Pure logic — no database, no clock. The engine keeps a customer's figures current as it
applies their events (:func:`purchase_values`, :func:`return_values`); this module turns
them into what ``audience``, ``item_condition`` and step conditions see as ``customer.*``:

============================  ==========================================================
``customer.orders``           orders not returned
``customer.revenue``          their totals, net of returns: a :class:`Money` (compares as
                              a number; ``.currency`` is the shop's currency for it)
``customer.first_purchase_at``  the first purchase (UTC), None before any
``customer.last_purchase_at``   the latest purchase (UTC), None before any
``customer.complaints``       ``{"total": …, "open": …}``
``customer.satisfaction``     the last rating after a complaint (1–5), None without one
``customer.segment``          one of :data:`SEGMENTS`, see below
============================  ==========================================================

The segment is a recency/frequency/monetary scoring with thresholds from ``[segments]``
(:class:`SegmentRules`), decided in this order (first match wins):

1. ``lost`` — the last purchase is more than ``lost_after`` days ago;
2. ``at_risk`` — more than ``at_risk_after`` days ago;
3. ``champion`` — at least ``champion_orders`` orders *and* ``champion_revenue`` revenue;
4. ``loyal`` — at least ``loyal_orders`` orders;
5. ``new`` — everyone else (one recent order, or none yet).

Recency is measured at the moment of the decision (the event's time when enrolling, the
dispatch time at send), so a segment is always current without anything rewriting it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "SEGMENTS",
    "VALUE_FIELDS",
    "Money",
    "SegmentRules",
    "names_value",
    "rating_of",
    "segment_of",
    "value_view",
]

SEGMENTS = ("new", "loyal", "champion", "at_risk", "lost")
# The ``customer.*`` names :func:`value_view` adds.
VALUE_FIELDS = (
    "orders", "revenue", "first_purchase_at", "last_purchase_at", "complaints",
    "satisfaction", "segment",
)  # fmt: skip
_VALUE_NAMED = re.compile(r"\b(?:" + "|".join(VALUE_FIELDS) + r")\b")


def names_value(definition: str) -> bool:
    """Whether a journey's definition (its text, every expression in it) names any of
    :data:`VALUE_FIELDS`. A journey that names none cannot read them, so the engine need
    not score its customers when it plans: a conservative test by name, that a description
    or a step id using one of these words only makes it score them needlessly."""
    return _VALUE_NAMED.search(definition) is not None


class Money(Decimal):
    """An amount that compares and adds as a Decimal and knows its currency."""

    currency: str = ""

    def __new__(cls, value: Any = "0", currency: str = "") -> Money:
        money = super().__new__(cls, value)
        money.currency = currency
        return money

    def __reduce__(self) -> Any:
        return (Money, (str(self), self.currency))


@dataclass(frozen=True, slots=True)
class SegmentRules:
    """The validated ``[segments]`` settings: the thresholds of the scoring above."""

    lost_after: int = 365
    at_risk_after: int = 180
    champion_orders: int = 4
    champion_revenue: Decimal = Decimal(1000)
    loyal_orders: int = 2

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SegmentRules:
        """Rules from ``[segments]``; raises ``ValueError`` naming the offending key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"segments.{unknown[0]}: unknown setting")
        values: dict[str, Any] = {}
        for key, raw in cfg.items():
            if key == "champion_revenue":
                values[key] = _amount(raw, key)
            elif isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                raise ValueError(f"segments.{key}: must be a whole number >= 1, got {raw!r}")
            else:
                values[key] = raw
        rules = cls(**values)
        if rules.at_risk_after >= rules.lost_after:
            raise ValueError("segments.at_risk_after: must be less than lost_after")
        return rules


def _amount(raw: Any, key: str) -> Decimal:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        value = Decimal(-1)
    if isinstance(raw, bool) or not value.is_finite() or value < 0:
        raise ValueError(f"segments.{key}: must be an amount >= 0, got {raw!r}")
    return value


DEFAULT_SEGMENTS = SegmentRules()


def segment_of(
    orders: int, revenue: Decimal, last_purchase_at: datetime | None, now: datetime,
    rules: SegmentRules = DEFAULT_SEGMENTS,
) -> str:  # fmt: skip
    """The customer's segment at ``now`` (see the module docstring)."""
    if last_purchase_at is not None:
        days = (now - last_purchase_at).days
        if days > rules.lost_after:
            return "lost"
        if days > rules.at_risk_after:
            return "at_risk"
    if orders >= rules.champion_orders and revenue >= rules.champion_revenue:
        return "champion"
    if orders >= rules.loyal_orders:
        return "loyal"
    return "new"


def value_view(row: Any, now: datetime, rules: SegmentRules = DEFAULT_SEGMENTS) -> dict[str, Any]:
    """The ``customer.*`` figures of a customer row (see the module docstring)."""
    revenue = _money(row.revenue, row.revenue_currency or "")
    return {
        "orders": row.orders,
        "revenue": revenue,
        "first_purchase_at": row.first_purchase_at,
        "last_purchase_at": row.last_purchase_at,
        "complaints": {"total": row.complaints, "open": row.open_complaints},
        "satisfaction": row.satisfaction,
        "segment": segment_of(row.orders, revenue, row.last_purchase_at, now, rules),
    }


_MONEY: dict[tuple[Any, str], Money] = {}


def _money(revenue: Any, currency: str) -> Money:
    """``revenue`` as :class:`Money`, made once per distinct amount and currency: a batch
    of messages or events reads the same few amounts many times over."""
    key = (revenue, currency)
    money = _MONEY.get(key)
    if money is None:
        if len(_MONEY) >= 4096:
            _MONEY.clear()
        money = _MONEY[key] = Money(_decimal(revenue), currency)
    return money


def rating_of(row: Any) -> tuple[int, datetime] | None:
    """The customer's last satisfaction rating and its time, for the contact policy."""
    if row.satisfaction is None or row.satisfaction_at is None:
        return None
    return row.satisfaction, row.satisfaction_at


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(value or 0)
    except (InvalidOperation, TypeError, ValueError):
        return Decimal(0)

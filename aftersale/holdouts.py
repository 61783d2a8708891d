"""A journey's experiments read from the send log: holdout against treated, and variants.

Who is in which group is what the log says, not a recomputed hash: a customer whose
marketing messages of the journey ended ``skipped`` with reason ``holdout`` is in the control
group; every other customer with a marketing message of the journey that has come due is
treated, whatever then became of the message (intention to treat: a treated customer whose
e-mail bounced or who gave no consent still counts as treated). A message cancelled before
its time (the journey's exit, a return) never came due, in either group, and counts for
nothing.

A customer converts when the journey's goal event happens between their first message's
due time and ``attribution_days`` after their last one, the same window for both groups:

- ``goal: purchase`` (the default): any order of theirs that was not returned; its value is
  the order total;
- another event type (``inspection_booked``, ``warranty_extended``, ``coupon_redeemed``, …):
  its value is the event's ``value``, else the total of the order it names (``order``: an
  order id or an order object), else 0.

Each conversion of a treated customer costs the journey's ``offer_cost`` (a number, or an
expression over ``offer``, ``event``, ``order`` and ``value``), and every message sent to
them its price; control customers were given and sent nothing. Revenue times ``[stats]
margin``, less those costs, is profit; :mod:`aftersale.uplift` turns the groups into
intervals and a verdict.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.stats import SENT_STATUSES, Prices, _money
from aftersale.uplift import HoldoutResult, Outcome, VariantFigures, compare, compare_variants
from campaigns.experiments import HOLDOUT
from campaigns.journeys import Journey, conversion_context, offer_cost
from campaigns.models import Event, Message, Purchase

messages_t = Message.__table__
events_t = Event.__table__
purchases_t = Purchase.__table__
CHUNK = 500


@dataclass
class _Customer:
    control: bool = False
    start: datetime | None = None
    end: datetime | None = None
    cost: Decimal = Decimal("0")
    variants: set[tuple[str, str]] = field(default_factory=set)  # (step, variant) sent
    converted: bool = False
    revenue: Decimal = Decimal("0")
    offer_cost: Decimal = Decimal("0")


@dataclass(frozen=True)
class ExperimentReport:
    """What ``stats`` and the journey page show of a journey's experiments."""

    journey_id: str
    goal: str
    holdout: HoldoutResult | None
    variants: list[tuple[str, VariantFigures]]  # (step, figures), in the definition's order

    def to_dict(self) -> dict[str, Any]:
        return {
            "goal": self.goal,
            "holdout": self.holdout.to_dict() if self.holdout else None,
            "variants": [{"step": step, **v.to_dict()} for step, v in self.variants],
        }


def experiment_report(conn: Connection, journey: Journey, prices: Prices) -> ExperimentReport:
    """Holdout and variant figures of ``journey`` (its current definition) from the log."""
    customers = _customers(conn, journey.id, prices)
    span = timedelta(days=prices.attribution_days)
    _conversions(conn, journey, customers, span)
    margin = float(prices.margin)
    treated = [_outcome(c) for c in customers.values() if not c.control]
    control = [_outcome(c) for c in customers.values() if c.control]
    holdout = None
    if control or journey.holdout_share > 0:
        holdout = compare(treated, control, share=journey.holdout_share, margin=margin)
    return ExperimentReport(journey.id, journey.goal_event, holdout, _variants(journey, customers))


def _outcome(c: _Customer) -> Outcome:
    return Outcome(c.converted, float(c.revenue), float(c.cost + c.offer_cost))


def _customers(conn: Connection, journey_id: str, prices: Prices) -> dict[str, _Customer]:
    m = messages_t.c
    query = sa.select(
        m.customer_id, m.step, m.status, m.reason, m.due_at, m.sent_at, m.channel, m.details,
        m.variant,
    ).where(
        m.journey_id == journey_id,
        m.category == "marketing",
        m.status.not_in(("planned", "sending", "cancelled")),
    )  # fmt: skip
    customers: dict[str, _Customer] = defaultdict(_Customer)
    for row in conn.execute(query):
        c = customers[row.customer_id]
        c.control = c.control or row.reason == HOLDOUT
        last = row.sent_at or row.due_at
        c.start = row.due_at if c.start is None else min(c.start, row.due_at)
        c.end = last if c.end is None else max(c.end, last)
        if row.sent_at is not None and row.status in SENT_STATUSES:
            c.cost += prices.message_cost(row.channel, row.details)
            if row.variant:
                c.variants.add((row.step, row.variant))
    return dict(customers)


def _conversions(
    conn: Connection, journey: Journey, customers: dict[str, _Customer], span: timedelta
) -> None:
    for customer_id, at, value, conversion in _goal_events(conn, journey.goal_event, customers):
        c = customers[customer_id]
        if c.start is None or c.end is None or not c.start < at <= c.end + span:
            continue
        c.converted = True
        c.revenue += value
        if not c.control:
            c.offer_cost += _offer_cost(journey, conversion)


def _offer_cost(journey: Journey, conversion: dict[str, Any]) -> Decimal:
    try:
        return offer_cost(journey, conversion_context(conversion))
    except Exception:  # noqa: BLE001 - an event without the field costs nothing, not the report
        return Decimal("0")


def _goal_events(conn: Connection, goal: str, customers: dict[str, _Customer]):
    """``(customer, at, value, event fields)`` of every goal event of these customers."""
    ids = list(customers)
    p, e = purchases_t.c, events_t.c
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if goal == "purchase":
            query = sa.select(p.id, p.customer_id, p.purchased_at, p.total).where(
                p.customer_id.in_(chunk), p.returned_at.is_(None)
            )
            for order in conn.execute(query):
                total = _money(order.total)
                event = {"type": "purchase", "value": total,
                         "order": {"id": order.id, "total": total}}  # fmt: skip
                yield order.customer_id, order.purchased_at, total, event
            continue
        query = sa.select(e.customer_id, e.at, e.payload).where(
            e.customer_id.in_(chunk), e.type == goal
        )
        rows = list(conn.execute(query))
        totals = _order_totals(conn, rows)
        for row in rows:
            payload = dict(row.payload or {})
            order = payload.get("order")
            value = payload.get("value")
            if value is None and isinstance(order, dict):
                value = order.get("total")
            elif value is None and order is not None:
                value = totals.get(str(order))
            amount = _money(None if value is None else str(value))
            yield row.customer_id, row.at, amount, {"type": goal, **payload, "value": amount}


def _order_totals(conn: Connection, rows: list[Any]) -> dict[str, str]:
    named = {
        str(r.payload["order"]) for r in rows if isinstance((r.payload or {}).get("order"), str)
    }
    if not named:
        return {}
    p = purchases_t.c
    query = sa.select(p.id, p.total).where(p.id.in_(sorted(named)))
    return {r.id: r.total for r in conn.execute(query)}


def _variants(
    journey: Journey, customers: dict[str, _Customer]
) -> list[tuple[str, VariantFigures]]:
    found: list[tuple[str, VariantFigures]] = []
    for step in journey.steps:
        if not step.variants:
            continue
        counts = []
        for variant in step.variants:
            got = [c for c in customers.values() if (step.id, variant.id) in c.variants]
            counts.append((variant.id, len(got), sum(c.converted for c in got)))
        found.extend((step.id, figures) for figures in compare_variants(counts))
    return found

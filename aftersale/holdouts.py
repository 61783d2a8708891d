"""A journey's experiments read from the send log: holdout against treated, and variants.

Who is in which group is what the log says, not a recomputed hash: a customer whose
marketing messages of the journey ended ``skipped`` with reason ``holdout`` is in the control
group; every other customer with a marketing message of the journey that has come due is
treated, whatever then became of the message (intention to treat: a treated customer whose
e-mail bounced or who gave no consent still counts as treated). A message cancelled before
its time (the journey's exit, a return) never came due, in either group, and counts for
nothing; but one the policy deferred had come due, and counts from its first due time even
when the journey's exit cancelled it later. A held-out message is never deferred, so without
this a treated customer who bought while their offer waited (and so left the journey) would
drop out of the treated group with their purchase, and the offer would look worse than it is.

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

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.stats import SENT_STATUSES, Prices, _money, priced_units
from aftersale.uplift import HoldoutResult, Outcome, VariantFigures, compare, compare_variants
from campaigns.conditions import condition_names
from campaigns.experiments import HOLDOUT
from campaigns.journeys import Journey, conversion_context, offer_cost
from campaigns.models import FIGURED, Event, Message, MessageDecision, Purchase

messages_t = Message.__table__
decisions_t = MessageDecision.__table__
events_t = Event.__table__
purchases_t = Purchase.__table__
CHUNK = 500
# What has not come due (or, while sending, not yet reached an outcome).
NOT_DUE = ("planned", "sending", "cancelled")


@dataclass
class _Customer:
    control: bool = False
    start: Any = None  # the first due time and the last, as _raw gives them
    end: Any = None
    cost: Decimal = Decimal("0")
    first: tuple[str, str] = ("", "")  # the first step and channel it was found in
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
    """Holdout and variant figures of ``journey`` (its current definition) from the log.

    A journey whose definition has neither a holdout nor variants has nothing to report.
    """
    variants = any(step.variants for step in journey.steps)
    if journey.holdout_share == 0 and not variants:
        return ExperimentReport(journey.id, journey.goal_event, None, [])
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


def _raw(moment: Any) -> Any:
    """A time as the driver reads it, without :class:`campaigns.models.UTCDateTime`'s
    conversion of every value: text on SQLite (UTC, in the one stored format, which sorts
    as time does and as SQL compares it), an aware datetime on PostgreSQL. Merged as they
    come; :func:`_moment` turns one into a time where a window needs it."""
    return sa.type_coerce(moment, sa.String())


def _moment(value: Any) -> datetime:
    """A time from :func:`_raw`, in UTC."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _outcome(c: _Customer) -> Outcome:
    return Outcome(c.converted, float(c.revenue), float(c.cost + c.offer_cost))


def _customers(conn: Connection, journey_id: str, prices: Prices) -> dict[str, _Customer]:
    """Each exposed customer's group, window, message cost and variants.

    Two passes. The first reads the journey's marketing messages that reached an outcome,
    grouped by step, channel and customer, the order of ix_messages_journey_figures: one
    pass over the journey's part of that index, no sort. The second reads the deferrals
    of the journey's messages, whatever became of those: each deferred message came due
    at its first due time (module docstring). A message's due time only moves later once
    it has come due, so its first due time is the earliest of its deferrals' and merging
    the second pass into the first (earliest start, latest end) gives each customer's
    window as one pass over both would.
    """
    m = messages_t.c
    sent = sa.and_(m.sent_at.is_not(None), m.status.in_(SENT_STATUSES))
    marketing = sa.and_(m.journey_id == journey_id, m.category == "marketing")
    query = (
        sa.select(
            m.customer_id,
            m.step,
            m.channel,
            sa.func.max(sa.case((m.reason == HOLDOUT, 1), else_=0)),
            _raw(sa.func.min(m.due_at)),
            _raw(sa.func.max(sa.func.coalesce(m.sent_at, m.due_at))),
            sa.func.sum(sa.case((sent, priced_units(m)), else_=0)),
            sa.func.max(sa.case((sent, m.variant))),
        )
        .where(marketing, FIGURED, m.status.not_in(NOT_DUE))  # FIGURED: the index
        .group_by(m.step, m.channel, m.customer_id)
    )
    customers: dict[str, _Customer] = {}
    email, segment = prices.email, prices.sms_segment
    costs: dict[tuple[bool, Any], Decimal] = {}  # cost per number of e-mails or segments
    for cid, step, channel, control, start, end, units, variant in conn.execute(query):
        key = (channel == "sms", units)
        cost = costs.get(key)
        if cost is None:
            cost = costs[key] = int(units or 0) * (segment if key[0] else email)
        c = customers.get(cid)
        if c is None:
            customers[cid] = c = _Customer(bool(control), start, end, cost, (step, channel))
        else:
            c.control = c.control or bool(control)
            c.start, c.end, c.cost = min(c.start, start), max(c.end, end), c.cost + cost
        if variant is not None:
            c.variants.add((step, variant))
    _merge_deferred(conn, marketing, customers)
    return customers


def _merge_deferred(conn: Connection, marketing: Any, customers: dict[str, _Customer]) -> None:
    """Add the windows of the journey's deferred messages (see :func:`_customers`)."""
    m, d = messages_t.c, decisions_t.c
    query = (
        sa.select(
            m.customer_id,
            m.step,
            m.channel,
            sa.func.max(sa.case((m.reason == HOLDOUT, 1), else_=0)),
            _raw(sa.func.min(sa.func.coalesce(d.due_before, m.due_at))),
            _raw(sa.func.max(sa.func.coalesce(m.sent_at, m.due_at))),
        )
        .select_from(decisions_t.join(messages_t, m.id == d.message_id))
        .where(d.action == "deferred", marketing)
        .group_by(m.step, m.channel, m.customer_id)
    )
    rows = conn.execute(query).all()
    if not rows:
        return
    for cid, step, channel, control, start, end in rows:
        c = customers.get(cid)
        if c is None:
            customers[cid] = _Customer(bool(control), start, end, Decimal("0"), (step, channel))
        else:
            c.control = c.control or bool(control)
            c.start, c.end = min(c.start, start), max(c.end, end)
            c.first = min(c.first, (step, channel))
    # In the order one pass over both would have found them: by the first step and
    # channel they were found in, then by customer.
    ordered = sorted(customers.items(), key=lambda item: (item[1].first, item[0]))
    customers.clear()
    customers.update(ordered)


def _conversions(
    conn: Connection, journey: Journey, customers: dict[str, _Customer], span: timedelta
) -> None:
    costs: dict[tuple[Any, ...], Decimal] = {}
    known: dict[Any, Decimal] = {}  # the cost per the fields of a conversion it reads
    windows: dict[str, tuple[datetime, datetime]] = {}
    names = condition_names(journey.offer_cost or "")
    by_fields = _fixed_cost(journey.offer_cost) is None
    raw = _raw_key if by_fields and names <= {"value", "offer"} else None
    for customer_id, at, value, conversion in _goal_events(conn, journey, customers):
        c = customers.get(customer_id)
        if c is None or c.start is None or c.end is None:
            continue
        window = windows.get(customer_id)
        if window is None:
            window = windows[customer_id] = (_moment(c.start), _moment(c.end) + span)
        if not window[0] < _moment(at) <= window[1]:
            continue
        c.converted = True
        c.revenue += value
        if not c.control:
            key = raw(conversion) if raw else None
            if key is None:
                c.offer_cost += _offer_cost(journey, conversion, costs)
                continue
            cost = known.get(key)
            if cost is None:
                cost = known[key] = _offer_cost(journey, conversion, costs)
            c.offer_cost += cost


def _raw_key(conversion: dict[str, Any]) -> tuple[Any, ...] | None:
    """Every field of a conversion that an ``offer_cost`` over ``value`` and ``offer``
    reads (see campaigns.journeys.conversion_context), as it came; None when unhashable."""
    order, offer, value = conversion.get("order"), conversion.get("offer"), conversion.get("value")
    total = order.get("total") if isinstance(order, Mapping) else None
    key = (
        type(value),
        value,
        type(total),
        total,  # True == 1, but not as an amount
        tuple((k, type(v), v) for k, v in offer.items()) if isinstance(offer, Mapping) else None,
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _offer_cost(
    journey: Journey, conversion: dict[str, Any], costs: dict[tuple[Any, ...], Decimal]
) -> Decimal:
    """What one conversion gave away; ``costs`` keeps an expression's result per distinct
    value of what it reads, so that it is evaluated once per value, not per conversion."""
    fixed = _fixed_cost(journey.offer_cost)
    if fixed is not None:
        return fixed
    try:
        context = conversion_context(conversion)
        key = _cost_key(journey.offer_cost, context)
        if key is None:
            return offer_cost(journey, context)
        if key not in costs:
            costs[key] = offer_cost(journey, context)
        return costs[key]
    except Exception:  # noqa: BLE001 - an event without the field costs nothing, not the report
        return Decimal("0")


@lru_cache(maxsize=64)
def _fixed_cost(spec: str | None) -> Decimal | None:
    """``offer_cost`` when it is a plain amount (or absent: 0), else None."""
    if spec is None:
        return Decimal("0")
    try:
        return Decimal(spec).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None


def _cost_key(spec: str | None, context: dict[str, Any]) -> tuple[Any, ...] | None:
    """What an ``offer_cost`` expression's result depends on: the values of the names it
    reads (``value * 0.10`` reads only the value); None when those are not plain values."""
    names = condition_names(spec or "")  # {'*'} when it does not parse
    if not names <= {"value", "offer"}:
        return None
    offer = context["offer"]
    key = (context["value"] if "value" in names else None,
           tuple(sorted(dict(offer).items())) if "offer" in names else ())  # fmt: skip
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _goal_events(conn: Connection, journey: Journey, customers: dict[str, _Customer]):
    """``(customer, at, value, event fields)`` of every goal event of exposed customers."""
    if not customers:
        return
    p, e = purchases_t.c, events_t.c
    exposed = _listed(conn, customers)
    goal = journey.goal_event
    if goal == "purchase":
        query = sa.select(p.id, p.customer_id, _raw(p.purchased_at), p.total).where(
            p.customer_id.in_(exposed), p.returned_at.is_(None)
        )
        costed = journey.offer_cost is not None
        for order_id, customer_id, at, text in conn.execute(query):
            total = _money(text)
            event = ({"type": "purchase", "value": total, "order": {"id": order_id, "total": total}}
                     if costed else {})  # fmt: skip
            yield customer_id, at, total, event
        return
    query = sa.select(e.customer_id, _raw(e.at).label("at"), e.payload).where(
        e.customer_id.in_(exposed), e.type == goal
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


def _listed(conn: Connection, ids: Iterable[str]) -> Any:
    """The given ids as a subquery, passed as one JSON array that the database unpacks
    (rather than reading the journey's messages again to find its customers)."""
    array = sa.literal(json.dumps(list(ids)), sa.Text())
    if conn.dialect.name == "sqlite":
        values = sa.func.json_each(array).table_valued("value")
    else:
        values = sa.func.json_array_elements_text(sa.cast(array, sa.JSON)).table_valued("value")
    return sa.select(values.c.value)


def _order_totals(conn: Connection, rows: list[Any]) -> dict[str, str]:
    named = {
        str(r.payload["order"]) for r in rows if isinstance((r.payload or {}).get("order"), str)
    }
    if not named:
        return {}
    p = purchases_t.c
    found: dict[str, str] = {}
    ordered = sorted(named)
    for start in range(0, len(ordered), CHUNK):
        query = sa.select(p.id, p.total).where(p.id.in_(ordered[start : start + CHUNK]))
        found.update({r.id: r.total for r in conn.execute(query)})
    return found


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

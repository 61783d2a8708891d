"""A message's template context: loaded by the dispatcher, built where it is rendered.

The dispatcher reads, inside its reservation, what a batch's templates will need: the
customers, orders, items and enrolment positions. :class:`ContextLoader` keeps them as
plain tuples and hands each message a :class:`ContextParts`. The context itself (customer
view, order with its decimals and warranty ends, links, personal offer) is built from
those parts by whoever renders (:mod:`scheduler.parts`): a render process, or a sending
thread when there is none. That keeps the dispatching process, the busier of the two, to
reading and deciding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.customers import CustomerRow
from campaigns.engine import enrollments_t, items_t, purchases_t, select_fields
from campaigns.fatigue import unanswered_of
from campaigns.idlists import id_in
from campaigns.value import DEFAULT_SEGMENTS, SegmentRules
from campaigns.warning import alert_skus
from scheduler.parts import ContextParts, Item, Order

__all__ = ["ContextLoader"]


ORDERS = select_fields(purchases_t, Order).where(id_in(purchases_t.c.id))
ITEMS = select_fields(items_t, Item).where(id_in(items_t.c.order_id)).order_by(items_t.c.position)
POSITIONS = sa.select(enrollments_t.c.id, enrollments_t.c.item_position).where(
    id_in(enrollments_t.c.id)
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


def _customer(row: Any) -> CustomerRow:
    return CustomerRow(*(getattr(row, name) for name in CustomerRow._fields))

"""`aftersale preview` and `send-test`: a template rendered for a real customer, order and
item, or for the sample ones, saying so.

The context is the one the dispatcher would build for that customer's order and item
(:mod:`scheduler.context`). Whatever is missing is filled from the sample context
(:func:`templates.sample_context`), and each such fallback is one of the ``notes`` shown
beside the preview: a customer whose purchases are imported but not applied yet sees the
sample washing machine, and the marketer is told so, and how to see the real order.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from aftersale.app import Project
from aftersale.errors import InputError
from campaigns.models import Customer, Event, Purchase, reading
from scheduler.context import ContextLoader
from scheduler.parts import render_context
from templates import PreviewResult, TemplateError, preview, sample_context, write_preview

customers_t = Customer.__table__
purchases_t = Purchase.__table__
events_t = Event.__table__


@dataclass
class Preview:
    result: PreviewResult
    notes: list[str] = field(default_factory=list)

    @property
    def sms_body(self) -> str | None:
        return self.result.sms_body

    @property
    def text(self) -> str | None:
        return self.result.text

    def summary(self) -> dict[str, Any]:
        r = self.result
        rows: dict[str, Any] = {"template": r.template, "channel": r.channel, "locale": r.locale}
        if r.channel == "email":
            rows |= {"subject": r.subject, "preheader": r.preheader,
                     "html size": f"{r.html_bytes:,} bytes", "text size": f"{r.text_bytes:,} bytes"}  # fmt: skip
        else:
            rows |= {"encoding": r.sms_encoding, "segments": r.sms_segments,
                     "length": len(r.sms_body or "")}  # fmt: skip
        for issue in r.issues:
            rows[issue.level] = issue.message
        return rows

    def write(self, out: Path) -> list[Path]:
        return write_preview(self.result, out)


@dataclass
class PreviewContext:
    """A template context and what in it is sample data rather than the customer's."""

    context: dict[str, Any]
    locale: str
    notes: list[str] = field(default_factory=list)


def preview_template(
    project: Project,
    template: str,
    customer_id: str | None,
    locale: str | None,
    channel: str | None,
    *,
    order_id: str | None = None,
    item_sku: str | None = None,
) -> Preview:
    """``template`` rendered for a customer's order and item (or samples, with notes)."""
    found = preview_context(project, customer_id, order_id, item_sku, locale)
    try:
        result = preview(project.renderer, template, locale=found.locale,
                         context=found.context, channel=channel)  # fmt: skip
    except TemplateError as exc:
        raise InputError(str(exc)) from exc
    return Preview(result, found.notes)


def preview_context(
    project: Project,
    customer_id: str | None,
    order_id: str | None,
    item_sku: str | None,
    locale: str | None,
    *,
    secret: str | None = None,
) -> PreviewContext:
    """The context of a message to a customer about an order and one of its items.

    Without ``customer_id`` the order's customer, else the first imported customer, else
    the sample customer; without ``order_id`` the customer's latest order; without
    ``item_sku`` the order's first item. An unknown customer, order or item is an
    :class:`InputError`. Links are signed with ``secret`` (a throwaway key by default: a
    preview's unsubscribe link must not act on the real customer).
    """
    secret = secret or secrets.token_urlsafe(32)
    default = project.settings.default_locale
    with reading(project.db) as conn:
        customer_id = customer_id or _order_customer(conn, order_id) or _first_customer(conn)
        if customer_id is None:
            if item_sku:
                raise InputError("no customers imported: --item needs a customer's order")
            note = "no customers imported: showing the sample customer, order and item"
            chosen = locale or default
            return PreviewContext(dict(sample_context(chosen)), chosen, [note])
        customer = conn.execute(
            sa.select(customers_t).where(customers_t.c.id == customer_id)
        ).first()
        if customer is None:
            raise InputError(f"--customer {customer_id!r}: no such customer")
        order_id, notes = _order_of(conn, customer_id, order_id)
        row = SimpleNamespace(
            id=0, customer_id=customer_id, order_id=order_id, enrollment_id=f"preview:{customer_id}",
            journey_id="preview", step="preview", occurrence=1,
            channel=None,  # the template previewed decides
        )  # fmt: skip
        base = dict(ContextLoader(conn, [row]).context_for(row, customer, project.now()))
    chosen = locale or customer.locale or default
    notes += _fill(base, order_id, item_sku, sample_context(chosen))
    settings = project.settings
    context = render_context(row, base, settings.public_url, secret,
                             short_links=settings.sms_short_links)  # fmt: skip
    return PreviewContext(context, chosen, notes)


def _first_customer(conn: Any) -> str | None:
    return conn.execute(sa.select(customers_t.c.id).order_by(customers_t.c.id).limit(1)).scalar()


def _order_customer(conn: Any, order_id: str | None) -> str | None:
    if order_id is None:
        return None
    found = conn.execute(
        sa.select(purchases_t.c.customer_id).where(purchases_t.c.id == order_id)
    ).scalar()
    if found is None:
        raise InputError(f"--order {order_id!r}: no such order{_not_applied_hint(conn, None)}")
    return found


def _order_of(conn: Any, customer_id: str, order_id: str | None) -> tuple[str | None, list[str]]:
    """The order to show (the given one, else the latest) and a note when there is none."""
    p = purchases_t.c
    if order_id is not None:
        owner = conn.execute(sa.select(p.customer_id).where(p.id == order_id)).scalar()
        if owner is None:
            hint = _not_applied_hint(conn, customer_id)
            raise InputError(f"--order {order_id!r}: no such order{hint}")
        if owner != customer_id:
            raise InputError(f"--order {order_id!r} is not an order of customer {customer_id!r}")
        return order_id, []
    latest = conn.execute(
        sa.select(p.id).where(p.customer_id == customer_id)
        .order_by(p.purchased_at.desc()).limit(1)
    ).scalar()  # fmt: skip
    if latest is not None:
        return latest, []
    why = f"customer {customer_id} has no order yet" + _not_applied_hint(conn, customer_id)
    return None, [f"{why}: showing the sample order and item"]


def _not_applied_hint(conn: Any, customer_id: str | None) -> str:
    """Why an order may be missing: purchases imported, but not applied yet."""
    e = events_t.c
    query = sa.select(sa.func.count()).where(e.type == "purchase", e.applied.is_(False))
    if customer_id is not None:
        query = query.where(e.customer_id == customer_id)
    waiting = conn.execute(query).scalar() or 0
    if not waiting:
        return ""
    return (
        f" ({waiting} imported purchase(s) not applied yet: `aftersale simulate` or "
        "`run --once` applies them)"
    )


def _fill(base: dict[str, Any], order_id: str | None, sku: str | None, sample: dict) -> list[str]:
    """Choose the item; fill what the customer has not from the sample, saying so."""
    order = base.get("order")
    if order is None:
        if sku:
            raise InputError(f"--item {sku!r}: the customer has no order to take it from")
        base["order"], base["item"], base["items"] = (
            sample["order"],
            sample["item"],
            sample["items"],
        )
        return []
    items = order.get("items") or []
    if sku is not None:
        match = [i for i in items if i["sku"] == sku]
        if not match:
            known = ", ".join(sorted({str(i["sku"]) for i in items})) or "none"
            raise InputError(f"--item {sku!r}: order {order_id} has no such item (it has {known})")
        base["item"] = match[0]
    elif base.get("item") is None and items:
        base["item"] = items[0]
    if base.get("item") is None:
        base["item"] = sample["item"]
        base["items"] = [sample["item"]]
        return [f"order {order_id} has no items: showing the sample item"]
    base["items"] = [base["item"]]
    if sku is None and len(items) > 1:
        others = ", ".join(str(i["sku"]) for i in items[1:])
        return [f"order {order_id}: showing its first item ({items[0]['sku']}); "
                f"--item picks another ({others})"]  # fmt: skip
    return []

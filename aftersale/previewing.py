"""`aftersale preview`: a template rendered for a real customer (or a sample one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from aftersale.app import Project
from aftersale.errors import InputError
from campaigns.models import Customer, Enrollment, Purchase, reading
from scheduler.context import ContextLoader, render_context
from templates import PreviewResult, TemplateError, preview, sample_context, write_preview

customers_t = Customer.__table__
purchases_t = Purchase.__table__
enrollments_t = Enrollment.__table__


@dataclass
class Preview:
    result: PreviewResult

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


def preview_template(
    project: Project,
    template: str,
    customer_id: str | None,
    locale: str | None,
    channel: str | None,
) -> Preview:
    context = _context(project, customer_id, locale)
    locale = locale or context["customer"].get("locale") or project.settings.default_locale
    try:
        result = preview(
            project.renderer, template, locale=locale, context=context, channel=channel
        )
    except TemplateError as exc:
        raise InputError(str(exc)) from exc
    return Preview(result)


def _context(project: Project, customer_id: str | None, locale: str | None) -> dict[str, Any]:
    secret = project.settings.secret_key or "preview"
    if customer_id is None:
        with reading(project.db) as conn:
            customer_id = conn.execute(sa.select(customers_t.c.id).limit(1)).scalar()
    if customer_id is None:
        return dict(sample_context(locale or project.settings.default_locale))
    with reading(project.db) as conn:
        customer = conn.execute(
            sa.select(customers_t).where(customers_t.c.id == customer_id)
        ).first()
        if customer is None:
            raise InputError(f"no customer {customer_id!r}")
        order_id = conn.execute(
            sa.select(purchases_t.c.id)
            .where(purchases_t.c.customer_id == customer_id)
            .order_by(purchases_t.c.purchased_at.desc())
            .limit(1)
        ).scalar()
        row = SimpleNamespace(
            id=0, customer_id=customer_id, order_id=order_id, enrollment_id=f"preview:{customer_id}",
            journey_id="preview", step="preview", occurrence=1,
            channel=None,  # the template previewed decides
        )  # fmt: skip
        loader = ContextLoader(conn, [row])
        base = loader.context_for(row, customer, project.now())
    if base["item"] is None and base["order"] and base["order"]["items"]:
        base["item"] = base["order"]["items"][0]
    sample = sample_context(locale or customer.locale or project.settings.default_locale)
    if base["order"] is None:
        base["order"], base["item"] = sample["order"], sample["item"]
    base["items"] = [base["item"]]
    settings = project.settings
    return render_context(
        row, base, settings.public_url, secret, short_links=settings.sms_short_links
    )

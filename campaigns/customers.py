"""What planning, policy and templates read of a customer, and the ``customer`` they see.

Kept apart from the database code: a render process builds customer views from these
rows without importing SQLAlchemy or the journey engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from campaigns.conditions import customer_view
from campaigns.value import DEFAULT_SEGMENTS, SegmentRules, value_view

__all__ = ["CustomerRow", "customer_context"]


class CustomerRow(NamedTuple):
    """What planning, policy and templates read of a customer: not the bookkeeping times
    and sources."""

    id: str
    email: str | None
    phone: str | None
    first_name: str
    last_name: str
    locale: str
    timezone: str | None
    email_consent: bool
    sms_consent: bool
    open_complaints: int
    attributes: dict[str, Any]
    topic_consent: dict[str, bool] | None = None
    # What the customer is worth (campaigns.value), kept current by the engine.
    orders: int = 0
    revenue: str = "0"
    revenue_currency: str = ""
    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    complaints: int = 0
    satisfaction: int | None = None
    satisfaction_at: datetime | None = None


def customer_context(
    row: Any, today_year: int, now: datetime | None = None, segments: SegmentRules | None = None
) -> dict[str, Any]:
    """The ``customer`` conditions and templates see: fields, attributes, ``age`` and, with
    ``now``, what the customer is worth (:func:`campaigns.value.value_view`)."""
    base = {
        "id": row.id,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "email": row.email,
        "phone": row.phone,
        "locale": row.locale,
        "timezone": row.timezone,
        "email_consent": row.email_consent,
        "sms_consent": row.sms_consent,
    }
    if now is not None:
        base.update(value_view(row, now, segments or DEFAULT_SEGMENTS))
    return customer_view(base, row.attributes or {}, today_year)

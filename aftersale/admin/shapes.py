"""Shared by pages and the JSON API: reading filters from a request, rows into dicts.

Contact data passes through :func:`contact_view`, which masks it for viewers; nothing else
in the console shows an e-mail address or phone number.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query
from pydantic import BeforeValidator

from aftersale.admin.auth import CurrentUser
from aftersale.admin.masking import mask_email, mask_phone
from aftersale.sendlog import LogFilter, export_record, iso

STATUSES = ("planned", "sending", "sent", "delivered", "bounced", "failed", "skipped",
            "cancelled", "unknown")  # fmt: skip
PAGE_SIZE = 50
# The largest row id a request may name: the databases' integers end at 2**63, and a
# number past that would make the driver raise instead of finding no row.
MAX_ROW_ID = 2**62


def _start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


def _blank_is_none(value: Any) -> Any:
    # An HTML form sends every field, empty ones as "": that means "no filter".
    return None if value == "" else value


Day = Annotated[date | None, BeforeValidator(_blank_is_none)]


def log_filter(
    customer: Annotated[str | None, Query(max_length=200, description="Customer id.")] = None,
    contact: Annotated[str | None, Query(max_length=320, description="E-mail or phone.")] = None,
    journey: Annotated[str | None, Query(max_length=200)] = None,
    step: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=10, description="email or sms.")] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    reason: Annotated[str | None, Query(max_length=200, description="A reason prefix.")] = None,
    since: Annotated[Day, Query(description="Due on or after this day (UTC).")] = None,
    until: Annotated[Day, Query(description="Due on or before this day (UTC).")] = None,
) -> LogFilter:
    """The send-log filter from query parameters; empty ones are ignored."""
    return LogFilter(
        customer=customer or None,
        contact=(contact or "").strip() or None,
        journey=journey or None,
        step=step or None,
        channel=channel or None,
        status=status or None,
        reason=reason or None,
        since=_start(since),
        until=_start(until + timedelta(days=1)) if until and until < date.max else None,
    )


def filter_query(flt: LogFilter, **extra: Any) -> str:
    """The query string that reproduces ``flt`` (for links: next page, CSV export)."""
    params = {
        "customer": flt.customer,
        "contact": flt.contact,
        "journey": flt.journey,
        "step": flt.step,
        "channel": flt.channel,
        "status": flt.status,
        "reason": flt.reason,
        "since": f"{flt.since:%Y-%m-%d}" if flt.since else None,
        "until": f"{flt.until - timedelta(days=1):%Y-%m-%d}" if flt.until else None,
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def contact_view(user: CurrentUser, customer: Any) -> dict[str, Any]:
    """Name and contact data of a customer; the contacts masked unless the user is an admin
    (a viewer answering the phone must be able to confirm who is calling)."""
    plain = user.is_admin
    return {
        "email": customer.email if plain else mask_email(customer.email),
        "phone": customer.phone if plain else mask_phone(customer.phone),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
    }


def message_dict(row: Any) -> dict[str, Any]:
    """One send-log row for the JSON API: the export record plus delivery tracking."""
    record = export_record(row)
    return {
        "id": record.pop("message_id"),
        **record,
        "item_name": row.item_name,
        "subject": row.subject,
        "delivered_at": iso(row.delivered_at),
        "opened_at": iso(row.opened_at),
        "clicked_at": iso(row.clicked_at),
    }


def customer_dict(user: CurrentUser, row: Any) -> dict[str, Any]:
    """A customer with consent and its sources; contacts masked for viewers."""
    return {
        "id": row.id,
        **contact_view(user, row),
        "locale": row.locale,
        "timezone": row.timezone,
        "email_consent": row.email_consent,
        "email_consent_source": row.email_consent_source,
        "sms_consent": row.sms_consent,
        "sms_consent_source": row.sms_consent_source,
        "open_complaints": row.open_complaints,
    }


def decision_dict(row: Any) -> dict[str, Any]:
    return {
        "at": iso(row.at),
        "action": row.action,
        "reason": row.reason,
        "due_before": iso(row.due_before),
        "due_after": iso(row.due_after),
        "detail": row.detail,
    }

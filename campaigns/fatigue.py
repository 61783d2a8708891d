"""Fatigue: which marketing e-mails a customer left unanswered, read once per batch.

The decision itself is the contact policy's (rule 4b in :mod:`campaigns.policy`); this
module only reads what it decides on. A marketing e-mail is *unanswered* when it went out
(``sent`` or ``delivered``) after the customer's last open, click and purchase: an open or
click of any later e-mail, or a purchase after it, answers it and every one before it.
Nothing is stored: the streak is read from the send log as it stands, so a reset needs no
writer and a provider's late open report counts as soon as it is applied.

Only e-mails within :data:`LOOKBACK` are read; a streak older than that has long rested.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import DELIVERED, SENT, UTCDateTime
from campaigns.store import customers_t, messages_t

__all__ = ["LOOKBACK", "unanswered_emails", "unanswered_of"]

LOOKBACK = timedelta(days=365)
_m = messages_t.c
RECENT_EMAILS = (
    sa.select(_m.customer_id, _m.sent_at, _m.opened_at, _m.clicked_at)
    .where(
        _m.customer_id.in_(sa.bindparam("ids", expanding=True)),
        _m.sent_at >= sa.bindparam("since", type_=UTCDateTime()),
        _m.category == "marketing",
        _m.channel == "email",
        _m.status.in_((SENT, DELIVERED)),
    )
    .order_by(_m.customer_id, _m.sent_at)
)


def unanswered_of(conn: Connection, customer_ids: Iterable[str], now: datetime):
    """:func:`unanswered_emails` for these customers, their last purchases read here."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    c = customers_t.c
    purchases = conn.execute(sa.select(c.id, c.last_purchase_at).where(c.id.in_(ids)))
    return unanswered_emails(conn, dict(purchases.all()), now)


def unanswered_emails(
    conn: Connection, customers: Mapping[str, datetime | None], now: datetime
) -> dict[str, list[datetime]]:
    """For each customer id (mapped to their last purchase, or None): when the marketing
    e-mails they left unanswered went out, oldest first."""
    if not customers:
        return {}
    sent: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    rows = conn.execute(RECENT_EMAILS, {"ids": sorted(customers), "since": now - LOOKBACK})
    for cid, sent_at, opened_at, clicked_at in rows:
        sent[cid].append((sent_at, opened_at is not None or clicked_at is not None))
    return {cid: _streak(sent.get(cid, ()), customers[cid]) for cid in customers}


def _streak(emails: Iterable[tuple[datetime, bool]], purchased: datetime | None) -> list[datetime]:
    streak: list[datetime] = []
    for sent_at, answered in emails:
        if answered:
            streak = []
        elif purchased is None or sent_at > purchased:
            streak.append(sent_at)
    return streak

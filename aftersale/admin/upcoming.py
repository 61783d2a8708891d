"""What the dispatcher will send: planned messages per day, by journey and channel.

Read through the (status, due_at) index the dispatcher claims with, so it costs one range
scan of the planned messages in the window, however long the log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import PLANNED, Message

messages_t = Message.__table__
PERIODS = (7, 30, 90)  # the dashboard's choices, in days


def upcoming_sends(conn: Connection, now: datetime, *, days: int = 30) -> dict[str, Any]:
    """Planned messages due in the next ``days`` days (from ``now``'s day, UTC), per day
    by "journey · channel": ``{"days": [...], "series": {name: [count per day]}}``."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    labels = [(start + timedelta(days=i)).date().isoformat() for i in range(days)]
    index = {label: i for i, label in enumerate(labels)}
    m = messages_t.c
    day = sa.func.date(m.due_at)
    query = (
        sa.select(day, m.journey_id, m.channel, sa.func.count())
        .where(m.status == PLANNED, m.due_at >= start, m.due_at < start + timedelta(days=days))
        .group_by(day, m.journey_id, m.channel)
    )
    series: dict[str, list[int]] = {}
    for when, journey, channel, count in conn.execute(query):
        position = index.get(str(when)[:10])
        if position is not None:
            series.setdefault(f"{journey} · {channel}", [0] * days)[position] += count
    return {"days": labels, "series": dict(sorted(series.items()))}

"""Filter values that name nothing known, told apart from filters that match nothing.

``--status sennt`` or ``--journey nope`` must not print an empty table that reads as "no
messages": each value is checked against what the project knows, and the first unknown one
is named with the valid choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.sendlog import LogFilter
from campaigns.models import (
    FIGURED,
    PLANNED,
    SENDING,
    TERMINAL_STATUSES,
    Customer,
    JourneyState,
    Message,
)

STATUSES = (PLANNED, SENDING, *TERMINAL_STATUSES)
CHANNELS = ("email", "sms")
customers_t = Customer.__table__
journeys_t = JourneyState.__table__
messages_t = Message.__table__


def known_steps(conn: Connection, defined: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Every journey with its steps: the project's definitions and the journeys it has run."""
    found = {journey: list(steps) for journey, steps in defined.items()}
    for journey_id in conn.execute(sa.select(journeys_t.c.journey_id)).scalars():
        found.setdefault(journey_id, [])
    return found


def unknown_journey(journey: str | None, journeys: Mapping[str, Sequence[str]]) -> str | None:
    if journey is None or journey in journeys:
        return None
    return f"no journey {journey!r}; choose one of: {', '.join(sorted(journeys))}"


def unknown_value(
    conn: Connection, flt: LogFilter, journeys: Mapping[str, Sequence[str]]
) -> str | None:
    """The first value of ``flt`` that names nothing known, as an error naming the valid
    choices; None when every value is known."""
    if flt.status and flt.status not in STATUSES:
        return f"no status {flt.status!r}; choose one of: {', '.join(STATUSES)}"
    if flt.channel and flt.channel not in CHANNELS:
        return f"no channel {flt.channel!r}; choose one of: {', '.join(CHANNELS)}"
    if problem := unknown_journey(flt.journey, journeys):
        return problem
    if flt.step and not _step_known(conn, flt, journeys):
        where = [flt.journey] if flt.journey else sorted(journeys)
        steps = sorted({s for j in where for s in journeys.get(j, [])})
        return f"no step {flt.step!r}; choose one of: {', '.join(steps)}"
    c = customers_t.c
    if flt.customer and not _exists(conn, sa.select(c.id).where(c.id == flt.customer)):
        return f"no customer {flt.customer!r}"
    if flt.contact:
        match = sa.or_(c.email == flt.contact.lower(), c.phone == flt.contact)
        if not _exists(conn, sa.select(c.id).where(match)):
            return f"no customer with the e-mail address or phone number {flt.contact!r}"
    return None


def _step_known(conn: Connection, flt: LogFilter, journeys: Mapping[str, Sequence[str]]) -> bool:
    where = [flt.journey] if flt.journey else list(journeys)
    if any(flt.step in journeys.get(j, ()) for j in where):
        return True
    if not flt.journey:
        return False
    m = messages_t.c  # a step of an earlier version: decided messages are found through
    # the figures' index (journey_id, step, …), planned ones among the planned.
    step = sa.and_(m.journey_id == flt.journey, m.step == flt.step)
    return _exists(conn, sa.select(m.id).where(step, FIGURED)) or _exists(
        conn, sa.select(m.id).where(step, m.status.in_((PLANNED, SENDING)))
    )


def _exists(conn: Connection, query: sa.Select) -> bool:
    return conn.execute(query.limit(1)).first() is not None

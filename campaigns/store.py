"""What the engine reads and writes: its tables, the rows it reads on hot paths, the
statements it runs every batch, and the journey versions it keeps.

Everything here works on a SQLAlchemy connection inside the caller's transaction.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.bulk import executemany, unjournaled
from campaigns.customers import CustomerRow
from campaigns.idlists import id_in
from campaigns.importing import insert_ignore_statement
from campaigns.journeys import Journey
from campaigns.models import (
    IN_FLIGHT,
    PLANNED,
    Customer,
    Enrollment,
    Event,
    JourneyState,
    JourneyVersion,
    Message,
    MessageDecision,
    NotEnrolled,
    Purchase,
    PurchaseItem,
    UTCDateTime,
)
from campaigns.transitions import PLANNED_UNSENT

customers_t = Customer.__table__
events_t = Event.__table__
purchases_t = Purchase.__table__
items_t = PurchaseItem.__table__
versions_t = JourneyVersion.__table__
journeys_t = JourneyState.__table__
enrollments_t = Enrollment.__table__
messages_t = Message.__table__
decisions_t = MessageDecision.__table__
not_enrolled_t = NotEnrolled.__table__


def select_fields(table: sa.Table, row: type[tuple]) -> sa.Select:
    """A select of ``table``'s columns named by the tuple type ``row``, in its order.

    Rows read on hot paths come back as plain named tuples: a SQLAlchemy Row's attribute
    costs ten times a tuple's, and planning and dispatching read dozens per event or message.
    """
    return sa.select(*(table.c[name] for name in row._fields))  # type: ignore[attr-defined]


class DueEvent(NamedTuple):
    """What applying an event reads of it."""

    id: str
    type: str
    customer_id: str
    at: datetime
    payload: dict[str, Any]


# An enrolment's planned messages, next to a condition on messages.enrollment_id. They are
# found through the first column of the unique key (enrollment_id, step, occurrence): an
# enrolment has a few messages. Compared as text (`status || ''`), the status cannot draw
# SQLite's planner, which knows nothing of those counts, to ix_messages_due (status,
# due_at) and through every planned message of every customer instead.
ENROLMENT_PLANNED = messages_t.c.status.concat("") == PLANNED

# Statements run every tick or batch, built once: building one costs more than running it.
CUSTOMERS = select_fields(customers_t, CustomerRow).where(id_in(customers_t.c.id))
DUE_EVENTS = (
    select_fields(events_t, DueEvent)
    .where(events_t.c.applied.is_(False), events_t.c.at <= sa.bindparam("now", type_=UTCDateTime()))
    .order_by(events_t.c.at, events_t.c.id)
    .limit(sa.bindparam("limit"))
)
_e, _m = enrollments_t.c, messages_t.c
TIMETABLES = sa.select(_e.id, _e.customer_id, _e.order_id, _e.schedule).where(
    id_in(_e.id),
    _e.status == "active",
    _e.schedule.is_not(None),
)
_COMPLETABLE = (
    _e.status == "active",
    # Nothing planned, read through the customer's index at its unsent messages (not the
    # enrolment's key, which reads its whole history), the status compared as text as in
    # ENROLMENT_PLANNED: PostgreSQL's planner, its statistics not yet current after a bulk
    # import, otherwise compared every enrolment with every planned message (0.5 s a batch
    # at 3,000 messages).
    ~sa.select(_m.id)
    .where(_m.customer_id == _e.customer_id, _m.enrollment_id == _e.id, *PLANNED_UNSENT)
    .exists(),
    # Nothing being sent: the partial index of in-flight messages, a few rows.
    ~sa.select(_m.id).where(_m.enrollment_id == _e.id, IN_FLIGHT).exists(),
)
_COMPLETED = {"status": "completed", "ended_at": sa.bindparam("now", type_=UTCDateTime())}
COMPLETE = unjournaled(enrollments_t.update().where(id_in(_e.id), *_COMPLETABLE).values(_COMPLETED))
# The same for one enrolment (``enrollment``): a batch of them, each at its own time.
COMPLETE_ONE = unjournaled(
    enrollments_t.update()
    .where(_e.id == sa.bindparam("enrollment"), *_COMPLETABLE)
    .values(_COMPLETED)
)


@dataclass(frozen=True)
class ActiveJourney:
    """A journey's current version as the engine uses it."""

    journey: Journey
    version_id: int
    version: int
    paused: bool = False


def sync_journeys(
    conn: Connection, loaded: Iterable[tuple[Journey, str]], now: datetime
) -> dict[str, ActiveJourney]:
    """Store each definition, adding a version when it changed; running enrolments keep theirs."""
    active: dict[str, ActiveJourney] = {}
    for journey, source in loaded:
        digest = journey.digest()
        row = conn.execute(
            sa.select(versions_t.c.id, versions_t.c.version).where(
                versions_t.c.journey_id == journey.id, versions_t.c.digest == digest
            )
        ).first()
        if row is None:
            latest = conn.execute(
                sa.select(sa.func.max(versions_t.c.version)).where(
                    versions_t.c.journey_id == journey.id
                )
            ).scalar()
            version = (latest or 0) + 1
            version_id = conn.execute(
                versions_t.insert()
                .values(
                    journey_id=journey.id,
                    version=version,
                    digest=digest,
                    name=journey.name,
                    definition=journey.model_dump(mode="json", by_alias=True),
                    source_file=source,
                    created_at=now,
                )
                .returning(versions_t.c.id)
            ).scalar_one()
        else:
            version_id, version = row
        _set_current(conn, journey.id, version_id)
        paused = conn.execute(
            sa.select(journeys_t.c.paused).where(journeys_t.c.journey_id == journey.id)
        ).scalar()
        active[journey.id] = ActiveJourney(journey, version_id, version, bool(paused))
    known = set(active)
    conn.execute(
        journeys_t.update().where(journeys_t.c.journey_id.not_in(known)).values(active=False)
    )
    return active


def _set_current(conn: Connection, journey_id: str, version_id: int) -> None:
    updated = conn.execute(
        journeys_t.update()
        .where(journeys_t.c.journey_id == journey_id)
        .values(current_version_id=version_id, active=True)
    ).rowcount
    if not updated:
        conn.execute(
            journeys_t.insert().values(
                journey_id=journey_id, current_version_id=version_id, paused=False, active=True
            )
        )


def load_version(conn: Connection, version_id: int) -> Journey:
    definition = conn.execute(
        sa.select(versions_t.c.definition).where(versions_t.c.id == version_id)
    ).scalar_one()
    return Journey.model_validate(definition, context={"stored": True})


def load_customers(conn: Connection, ids: Iterable[str]) -> dict[str, CustomerRow]:
    """The customers with these ids, by id (unknown ids are left out)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    return {r.id: CustomerRow._make(r) for r in conn.execute(CUSTOMERS, {"ids": ids})}


def _insert_ignore(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]
) -> int:
    """Bulk insert that leaves rows with an existing unique key alone.

    Rows go in key order: side by side in the indexes they touch far fewer pages than
    scattered, and the sort is stable, so of two rows with one key the first still wins.
    Returns the driver's row count (see :func:`campaigns.bulk.executemany`).
    """
    if not rows:
        return 0
    rows = sorted(rows, key=operator.itemgetter(*keys))
    return executemany(conn, insert_ignore_statement(conn, table, tuple(keys)), rows)

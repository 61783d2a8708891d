"""A message's life: which status may follow which, and the one function that moves it.

The dispatcher (reserve, record), lease expiry and the provider's delivery reports move a
message's status through :func:`move`, which changes it only where this table allows the
move; the engine's cancellations (an exit, a return) go through :func:`move_where`, its
set-based form, and so touch only ``planned`` messages, as the table says. A status only moves forward:

====================  ====================================================================
from                  to (who moves it, and why)
====================  ====================================================================
``planned``           ``planned`` (dispatcher: deferred to a new ``due_at``), ``sending``
                      (dispatcher: reserved), ``skipped`` (dispatcher: the policy said
                      never), ``cancelled`` (engine: exit, return, erasure)
``sending``           ``sent`` (dispatcher: the provider accepted it; lease expiry: the
                      acceptance was journalled but the batch never recorded),
                      ``planned`` (dispatcher: a transient failure, retried later; lease
                      expiry: it was never handed over), ``skipped`` (dispatcher: consent
                      or suppression changed before the hand-off), ``unknown``
                      (dispatcher: no answer; lease expiry: handed over, no outcome),
                      ``failed`` (dispatcher: refused, render error, ``error:<kind>``;
                      report: dropped), ``delivered``, ``bounced`` (a report that arrived
                      before the dispatcher recorded the send)
``unknown``           ``sent`` (dispatcher: the answer came after the lease ran out),
                      ``delivered``, ``bounced``, ``failed`` (reports)
``sent``              ``delivered``, ``bounced``, ``failed`` (reports)
``delivered``         ``bounced``, ``failed`` (a receiving server that accepted, then
                      bounced)
``skipped``,          nothing: final
``cancelled``,
``failed``,
``bounced``
====================  ====================================================================

A move that the table does not allow leaves the status (and the columns that go with the
move, such as ``reason`` or ``due_at``) as they are; it is not an error, because writers race:
a provider's report may arrive before the dispatcher records the send it reports on.

What a send's outcome says — the provider, its message id, the details (links), the
locale, the attempts — is true whatever the status has become meanwhile. Those columns are
passed as ``always`` and written in every case: a ``delivered`` that arrived first keeps
``delivered`` and still gets its provider id and links; an ``unknown`` from lease expiry
becomes ``sent`` with them.

The marker between ``sending`` and the provider is the hand-off (:func:`hand_over`, or the
SQLite journal of :mod:`scheduler.handoff`): committed just before the provider is called,
it is what lets lease expiry tell a message that may have left (``unknown``) from one that
never did (back to ``planned``). :func:`withdrawn` is the last check of consent and
suppression before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from campaigns.bulk import executemany, unjournaled
from campaigns.consent import consents_to
from campaigns.idlists import id_in
from campaigns.models import (
    BOUNCED,
    CANCELLED,
    DELIVERED,
    FAILED,
    PLANNED,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    Customer,
    Message,
    Suppression,
    UTCDateTime,
)
from campaigns.policy import no_consent_reason

__all__ = [
    "MOVES",
    "OUTCOME_COLUMNS",
    "allowed",
    "hand_over",
    "hand_over_journalled",
    "journal_outcomes",
    "move",
    "move_where",
    "movable",
    "sources",
    "withdrawn",
]

messages_t = Message.__table__
customers_t = Customer.__table__
suppressions_t = Suppression.__table__

MOVES: Mapping[str, frozenset[str]] = {
    PLANNED: frozenset({PLANNED, SENDING, SKIPPED, CANCELLED}),
    SENDING: frozenset({SENT, PLANNED, SKIPPED, UNKNOWN, FAILED, DELIVERED, BOUNCED}),
    UNKNOWN: frozenset({SENT, DELIVERED, BOUNCED, FAILED}),
    SENT: frozenset({DELIVERED, BOUNCED, FAILED}),
    DELIVERED: frozenset({BOUNCED, FAILED}),
    SKIPPED: frozenset(),
    CANCELLED: frozenset(),
    FAILED: frozenset(),
    BOUNCED: frozenset(),
}
# What a send's outcome writes whatever the status has become (see the module docstring).
OUTCOME_COLUMNS = frozenset(
    {"provider", "provider_message_id", "details", "segments", "locale", "subject", "attempts",
     "lease_until", "handed_over_at"}
)  # fmt: skip


def allowed(current: str, to: str) -> bool:
    """May a message in status ``current`` move to ``to``?"""
    return to in MOVES.get(current, ())


@cache
def sources(to: str) -> tuple[str, ...]:
    """The statuses a message may move to ``to`` from, in a stable order."""
    return tuple(sorted(s for s, targets in MOVES.items() if to in targets))


def move(
    conn: Connection,
    to: str,
    rows: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    always: Collection[str] = (),
) -> None:
    """Move messages to ``to`` where the table allows it, setting the values given.

    Each row names its message as ``_id`` and gives the columns to set with the move;
    those named in ``always`` are written even where the status stays (a report got there
    first). Rows are grouped by the columns they set: one statement per group, its rows in
    the order of their ids. The statements that change many messages at once take them in
    that order (:func:`hand_over_journalled` too), so two of them side by side on
    PostgreSQL (a batch's record beside the hand-off journalling its answers) wait for one
    another, never deadlock.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    # Per shape of row (its keys in order): the parameters' names and the row's group,
    # worked out once rather than for every row.
    shapes: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
    cleared = _cleared(to)
    cleared_params = {f"v_{column}": value for column, value in cleared.items()}
    for row in rows:
        keys = tuple(row)
        shape = shapes.get(keys)
        if shape is None:
            if "status" in row:
                raise ValueError("the status is the move's target, not a column to set")
            names = tuple(k if k == "_id" else f"v_{k}" for k in keys)
            columns = {k for k in keys if k != "_id"} | cleared.keys()
            shape = shapes[keys] = (names, tuple(sorted(columns)))
        params = {"v_updated_at": now}
        params.update(zip(shape[0], row.values(), strict=True))
        params.update(cleared_params)
        groups[shape[1]].append(params)
    for columns, params in groups.items():
        kept = tuple(sorted(c for c in columns if c in always))
        params.sort(key=_by_id)
        executemany(conn, _move_statement(to, columns, kept), params)


def _by_id(row: Mapping[str, Any]) -> Any:
    return row["_id"]


def movable(to: str) -> Any:
    """In SQL: the message's status may move to ``to``. The status is compared as text, so
    next to a condition on an enrolment it never draws the planner to the status index."""
    status = messages_t.c.status.concat("")
    return sa.or_(*(status == source for source in sources(to)))  # no expanding IN: executemany


# In SQL, next to a condition on the customer: the message is planned, read through the
# customer's index ``(customer_id, sent_at)`` at ``sent_at IS NULL``. Every move to
# ``planned`` clears ``sent_at`` (move, move_where), so the condition leaves out nothing
# planned; it skips the customer's sent history, which a shop's log holds by the hundred
# for a customer of some years. The status is compared as text, so it never draws a
# planner to the status index (every planned message of the shop).
PLANNED_UNSENT = (messages_t.c.sent_at.is_(None), messages_t.c.status.concat("") == PLANNED)


def move_where(
    conn: Connection, to: str, where: Any, values: Mapping[str, Any], params: Any = None
) -> None:
    """Move every message matching ``where`` to ``to`` where the table allows it: the
    set-based :func:`move`, for the engine's cancellations of an enrolment's planned
    messages (an exit, a return). ``params``: one set of bind values, or a list of them."""
    stmt = move_where_statement(to, where, values)
    conn.execute(stmt, params) if params is not None else conn.execute(stmt)


def move_where_statement(to: str, where: Any, values: Mapping[str, Any]) -> Any:
    """The statement :func:`move_where` runs, for one to build once and run often (with
    its bind values as parameters)."""
    values = {**values, **_cleared(to)}
    return unjournaled(messages_t.update().where(where, movable(to)).values(status=to, **values))


def _cleared(to: str) -> dict[str, Any]:
    """What a move to ``to`` always clears: a message back to ``planned``, or skipped, was
    not sent (:data:`PLANNED_UNSENT` and the bundle candidates' query rely on it)."""
    return {"sent_at": None} if to in (PLANNED, SKIPPED) else {}


@lru_cache(maxsize=128)
def _move_statement(to: str, columns: tuple[str, ...], always: tuple[str, ...]) -> Any:
    m = messages_t.c
    may_move = sa.or_(*(m.status == s for s in sources(to)))
    stmt = messages_t.update().where(m.id == sa.bindparam("_id"))
    if not always:  # nothing to write unless it moves: a plain guard
        values = {c: sa.bindparam(f"v_{c}") for c in (*columns, "updated_at")}
        return stmt.where(may_move).values(status=to, **values)
    values: dict[str, Any] = {
        "status": sa.case((may_move, sa.literal(to)), else_=m.status),
        "updated_at": sa.bindparam("v_updated_at"),
    }
    for column in columns:
        value = sa.bindparam(f"v_{column}", type_=m[column].type)
        values[column] = value if column in always else sa.case((may_move, value), else_=m[column])
    return stmt.values(values)


def journal_outcomes(conn: Connection, rows: Iterable[Mapping[str, Any]], now: datetime) -> None:
    """Write what providers answered for messages still being sent; the status stays.

    An acceptance journals the provider's id (and details, locale); a refusal its reason
    (``retry:…`` for a transient one). A dispatcher that dies before it records its batch
    leaves these behind, so lease expiry can settle each message as its answer says, and
    only one without an answer is ``unknown``.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        params = {f"v_{k}" if k != "_id" else k: v for k, v in row.items()}
        groups[tuple(sorted(params))].append(params)
    for keys, params in groups.items():
        executemany(conn, _journal_statement(keys), params)


@lru_cache(maxsize=8)
def _journal_statement(keys: tuple[str, ...]) -> Any:
    columns = [k[2:] for k in keys if k != "_id"]
    values = {c: sa.bindparam(f"v_{c}", type_=messages_t.c[c].type) for c in columns}
    return messages_t.update().where(messages_t.c.id == sa.bindparam("_id")).values(values)


# ------------------------------------------------------------------------ hand-off


def _still_allowed() -> Any:
    """Consent and suppression as they stand: what the policy checked at reservation."""
    m, c, s = messages_t.c, customers_t.c, suppressions_t.c
    suppressed = (
        sa.exists()
        .where(s.customer_id == m.customer_id, s.channel == m.channel)
        .correlate(messages_t)
    )
    consent = (
        sa.exists()
        .where(
            c.id == m.customer_id,
            sa.or_(
                sa.and_(m.channel == "email", c.email_consent.is_(True)),
                sa.and_(m.channel == "sms", c.sms_consent.is_(True)),
            ),
        )
        .correlate(messages_t)
    )
    return sa.and_(~suppressed, sa.or_(m.category != "marketing", consent))


_m = messages_t.c
# A hand-off names its messages by id: found through the primary key, their status only
# checked. Compared as an expression, ``status`` offers no index: PostgreSQL's statistics
# see few messages ``sending`` (they are so only for moments) and otherwise chose the due
# index, reading every message being sent, by every dispatcher, at each hand-off.
_SENDING = _m.status.concat("") == SENDING
HAND_OVER = unjournaled(
    messages_t.update()
    .where(id_in(_m.id), _SENDING, _m.handed_over_at.is_(None))
    .values(handed_over_at=sa.bindparam("at", type_=UTCDateTime()))
    .returning(_m.id)
)
WITHDRAWN = (
    sa.select(_m.id, _m.channel, suppressions_t.c.reason)
    .select_from(
        messages_t.outerjoin(
            suppressions_t,
            sa.and_(
                suppressions_t.c.customer_id == _m.customer_id,
                suppressions_t.c.channel == _m.channel,
            ),
        )
    )
    .where(id_in(_m.id), ~_still_allowed())
)


def hand_over(conn: Connection, ids: Collection[int], at: datetime) -> set[int]:
    """Mark reserved messages as handed to their provider; returns those marked.

    A message is marked only while it is ``sending`` and not yet handed over (by this or
    any other dispatcher). Only a marked message may be sent: the mark is what makes a
    send happen at most once.
    """
    if not ids:
        return set()
    return set(conn.execute(HAND_OVER, {"ids": list(ids), "at": at}).scalars())


def hand_over_journalled(
    conn: Connection,
    ids: Collection[int],
    outcomes: Iterable[Mapping[str, Any]],
    at: datetime,
    *,
    wait_for_disk: bool = True,
) -> set[int]:
    """PostgreSQL: :func:`journal_outcomes` and :func:`hand_over` in one statement, the
    outcomes as data-modifying ``WITH`` clauses beside the hand-off. On a connection in
    autocommit that is one round trip where a transaction of its own takes five (BEGIN,
    a setting, the two updates, COMMIT); the sending threads wait for each of them.
    Without ``wait_for_disk`` the statement's commit does not wait for the server's disk
    (``synchronous_commit`` off for its own transaction). Returns the ids marked.

    No message may be both handed over and journalled here: one statement changes a row
    once, so the caller takes the two-statement path for such a group.
    """
    shapes: dict[tuple[str, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in sorted(outcomes, key=_by_id):  # in the order of ids, as move() takes them
        shapes[tuple(sorted(k for k in row if k != "_id"))].append(row)
    params: dict[str, Any] = {"ids": list(ids), "at": at}
    for n, (columns, rows) in enumerate(shapes.items()):
        for column in ("_id", *columns):
            params[f"o{n}_{column}"] = [row[column] for row in rows]
    return set(conn.execute(_hand_over_journalled(tuple(shapes), wait_for_disk), params).scalars())


@lru_cache(maxsize=32)
def _hand_over_journalled(shapes: tuple[tuple[str, ...], ...], wait_for_disk: bool) -> Any:
    """The statement of :func:`hand_over_journalled` for answers of these column sets."""
    m = messages_t.c
    ctes = []
    for n, columns in enumerate(shapes):
        names = ("_id", *columns)
        types = [m.id.type, *(m[c].type for c in columns)]
        # One dimension: a JSON value that is a list is one element, not a nested array.
        arrays = [
            sa.bindparam(f"o{n}_{name}", type_=ARRAY(type_, dimensions=1))
            for name, type_ in zip(names, types, strict=True)
        ]
        rows = (
            sa.func.unnest(*arrays)
            .table_valued(*(sa.column(name) for name in names))
            .render_derived(name=f"o{n}")
        )
        update = (
            messages_t.update()
            .where(m.id == rows.c["_id"])
            .values({c: rows.c[c] for c in columns})
            .returning(m.id)
        )
        ctes.append(update.cte(f"journalled_{n}"))
    where = [id_in(m.id), _SENDING, m.handed_over_at.is_(None)]
    if not wait_for_disk:  # evaluated once, for the statement's own transaction
        setting = sa.func.set_config("synchronous_commit", "off", sa.true())
        where.append(sa.select(setting).scalar_subquery().is_not(None))
    statement = (
        messages_t.update()
        .where(*where)
        .values(handed_over_at=sa.bindparam("at", type_=UTCDateTime()))
        .returning(m.id)
    )
    return statement.add_cte(*ctes) if ctes else statement


# Marketing messages whose customer decided on topics: checked against their topic.
TOPIC_CONSENT = (
    sa.select(_m.id, _m.channel, _m.journey_id, _m.journey_version, customers_t.c.topic_consent)
    .join(customers_t, customers_t.c.id == _m.customer_id)
    .where(
        id_in(_m.id),
        _m.category == "marketing",
        customers_t.c.topic_consent.is_not(None),
    )
)
TopicOf = Callable[[Connection, str, int], str | None]


def withdrawn(
    conn: Connection, ids: Collection[int], topic_of: TopicOf | None = None
) -> dict[int, str]:
    """The last check before the hand-off: of these messages, those whose customer has
    since withdrawn consent (marketing; for the channel, or for the message's topic on it)
    or whose channel has since been suppressed (any), with the reason to skip them:
    ``suppressed:<why>``, ``no_consent:<channel>`` or ``no_consent:<channel>:<topic>``.

    ``topic_of(conn, journey_id, version)`` names a journey version's consent topic;
    without it topics are not checked."""
    if not ids:
        return {}
    params = {"ids": list(ids)}
    found = {}
    for mid, channel, suppressed in conn.execute(WITHDRAWN, params):
        found[mid] = f"suppressed:{suppressed}" if suppressed else no_consent_reason(channel)
    if topic_of is None:
        return found
    for mid, channel, journey, version, chosen in conn.execute(TOPIC_CONSENT, params):
        topic = topic_of(conn, journey, version)
        if mid not in found and topic and not consents_to(True, chosen, channel, topic):
            found[mid] = no_consent_reason(channel, topic)
    return found

"""Figures for the admin console and ``aftersale stats``: funnels, returns, the dashboard.

Attributed revenue: a follow-up order is credited once, to the last marketing message the
customer was sent before it within ``attribution_days`` (so to that message's journey);
transactional messages are never credited, the order an enrolment came from never counts
for it, and returned orders never count. Attributed figures say what happened after a
message, not what it caused: causal figures come from holdouts (:mod:`aftersale.holdouts`).

Funnels count messages whose time has come: a message still planned is no baseline yet.
Delivery, open and click figures are "n/a" (None) for a step whose messages all went
through providers that report no deliveries (the outbox, SMTP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import (
    FIGURED,
    SENDING,
    DispatcherHeartbeat,
    JourneyState,
    JourneyVersion,
    Message,
    MessageDecision,
    Purchase,
)

messages_t = Message.__table__
decisions_t = MessageDecision.__table__
purchases_t = Purchase.__table__
journeys_t = JourneyState.__table__
versions_t = JourneyVersion.__table__
dispatchers_t = DispatcherHeartbeat.__table__

SENT_STATUSES = ("sent", "delivered", "bounced", "unknown")
NOT_SENT_STATUSES = ("skipped", "cancelled", "failed", "unknown", "bounced")
# Providers that never report deliveries, opens or clicks back.
SILENT_PROVIDERS = ("outbox", "smtp")
FAILURE_STATUSES = ("failed", "bounced", "unknown")
FUNNEL_STAGES = ("planned", "sent", "delivered", "opened", "clicked")
REPORTED_STAGES = ("delivered", "opened", "clicked")


@dataclass(frozen=True)
class Prices:
    """What a message costs and how long a purchase counts as its follow-up."""

    email: Decimal = Decimal("0")
    sms_segment: Decimal = Decimal("0")
    attribution_days: int = 30
    currency: str = "EUR"
    margin: Decimal = Decimal("1")  # the share of revenue that is profit ([stats] margin)

    def message_cost(self, channel: str, details: Mapping[str, Any] | None) -> Decimal:
        """What one sent message cost: an e-mail, or an SMS's segments."""
        if channel == "sms":
            return self.sms_segment * int((details or {}).get("segments") or 1)
        return self.email


@dataclass
class StepFunnel:
    """One step of a journey: how many messages reached each stage."""

    journey_id: str
    step: str
    channel: str
    planned: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    reporting: int = 0  # sent through a provider that reports deliveries

    def stages(self) -> list[tuple[str, int | None]]:
        """Each stage's count; None ("n/a") where no provider could have reported it."""
        silent = self.sent > 0 and self.reporting == 0
        return [
            (name, None if silent and name in REPORTED_STAGES and not getattr(self, name)
             else getattr(self, name))
            for name in FUNNEL_STAGES
        ]  # fmt: skip


@dataclass
class JourneyReturn:
    """A journey's cost, its follow-up revenue and the return on it."""

    journey_id: str
    emails: int = 0
    sms_segments: int = 0
    cost: Decimal = Decimal("0")
    orders: int = 0
    revenue: Decimal = Decimal("0")

    @property
    def roi(self) -> Decimal | None:
        """(revenue - cost) / cost; None while nothing has cost anything."""
        if not self.cost:
            return None
        return ((self.revenue - self.cost) / self.cost).quantize(Decimal("0.01"))


@dataclass
class JourneyStats:
    """Everything the journey page and ``aftersale stats --journey`` show."""

    journey_id: str
    steps: list[StepFunnel] = field(default_factory=list)
    skip_reasons: list[tuple[str, int]] = field(default_factory=list)
    deferral_reasons: list[tuple[str, int]] = field(default_factory=list)
    returns: JourneyReturn | None = None


def _money(text: str | None) -> Decimal:
    try:
        return Decimal(text or "0")
    except InvalidOperation:
        return Decimal("0")


@dataclass(frozen=True)
class LogGroup:
    """Messages of one journey, step and channel, counted."""

    journey_id: str
    step: str
    channel: str
    due: int  # no longer planned: their time has come
    sent: int
    delivered: int
    opened: int
    clicked: int
    reporting: int  # sent through a provider that reports deliveries
    emails: int  # sent e-mails (for the cost)
    sms_segments: int  # segments of sent SMS (for the cost)
    first_id: int


def log_groups(conn: Connection, journey_id: str | None = None) -> list[LogGroup]:
    """One pass over the log that funnels and message costs are both drawn from."""
    m = messages_t.c
    due = m.status != "planned"
    sent = sa.and_(m.sent_at.is_not(None), m.status.in_(SENT_STATUSES))
    reporting = sa.and_(m.sent_at.is_not(None), m.provider.not_in(SILENT_PROVIDERS))
    # Grouped in the order of ix_messages_journey_figures, which holds every column read
    # here but a sent SMS's segments: one pass over the index, no sort, and a row is read
    # only for those segments. A group has one channel, so what its sent messages cost
    # is one sum: e-mails, or SMS segments.
    journey = m.journey_id
    query = sa.select(
        journey, m.step, m.channel,
        sa.func.count(sa.case((due, 1))),
        sa.func.count(sa.case((due, m.sent_at))),
        sa.func.count(m.delivered_at), sa.func.count(m.opened_at), sa.func.count(m.clicked_at),
        sa.func.count(sa.case((reporting, 1))),
        sa.func.coalesce(sa.func.sum(sa.case((sent, priced_units(m)), else_=0)), 0),
        sa.func.min(m.id),
    ).group_by(journey, m.step, m.channel)  # fmt: skip
    if journey_id:
        query = query.where(m.journey_id == journey_id)
    # The index holds the messages with an outcome; those being sent (a dispatcher's batch
    # in flight) are found through ix_messages_due and added to their groups.
    found: dict[tuple[str, str, str], list[Any]] = {}
    for where in (FIGURED, m.status == SENDING):
        for journey_, step, channel, *figures in conn.execute(query.where(where)):
            known = found.setdefault((journey_, step, channel), figures)
            if known is not figures:  # counts and units add up; the first id is the least
                known[:-1] = [a + b for a, b in zip(known[:-1], figures[:-1], strict=True)]
                known[-1] = min(known[-1], figures[-1])
    groups = []
    for (journey_, step, channel), (*counts, units, first_id) in found.items():
        sms, units = channel == "sms", int(units)
        priced = (0, units) if sms else (units, 0)  # (e-mails, SMS segments)
        groups.append(LogGroup(journey_, step, channel, *counts, *priced, first_id))
    return groups


def priced_units(m: Any) -> Any:
    """What a sent message is priced by, in SQL: its segments for an SMS (one where none
    were recorded), else one e-mail."""
    return sa.case((m.channel == "sms", sa.func.coalesce(m.segments, 1)), else_=1)


def step_funnels(
    conn: Connection, journey_id: str | None = None, groups: list[LogGroup] | None = None
) -> list[StepFunnel]:
    """planned → sent → delivered → opened → clicked, per journey and step.

    "planned" counts the messages whose time has come (anything no longer ``planned``).
    """
    found = log_groups(conn, journey_id) if groups is None else groups
    return [
        StepFunnel(
            g.journey_id,
            g.step,
            g.channel,
            g.due,
            g.sent,
            g.delivered,
            g.opened,
            g.clicked,
            g.reporting,
        )  # fmt: skip
        for g in sorted(found, key=lambda g: (g.journey_id, g.first_id))
        if g.due
    ]


def skip_reasons(conn: Connection, journey_id: str | None = None) -> list[tuple[str, int]]:
    """Why messages were not sent (skipped, cancelled, failed, unknown), most frequent first."""
    m = messages_t.c
    query = (
        sa.select(sa.func.coalesce(m.reason, m.status), sa.func.count())
        .where(m.status.in_(NOT_SENT_STATUSES))
        .group_by(sa.func.coalesce(m.reason, m.status))
        .order_by(sa.func.count().desc(), sa.func.coalesce(m.reason, m.status))
    )
    if journey_id:
        query = query.where(m.journey_id == journey_id)
    return [(r[0], r[1]) for r in conn.execute(query)]


def deferral_reasons(conn: Connection, journey_id: str | None = None) -> list[tuple[str, int]]:
    """Why messages were moved to a later time, most frequent first."""
    d = decisions_t.c
    query = (
        sa.select(d.reason, sa.func.count())
        .where(d.action == "deferred")
        .group_by(d.reason)
        .order_by(sa.func.count().desc())
    )
    if journey_id:
        query = query.join(messages_t, messages_t.c.id == d.message_id).where(
            messages_t.c.journey_id == journey_id
        )
    return [(r[0] or "", r[1]) for r in conn.execute(query)]


def journey_returns(
    conn: Connection,
    prices: Prices,
    journey_id: str | None = None,
    groups: list[LogGroup] | None = None,
) -> list[JourneyReturn]:
    """Cost, attributed follow-up revenue and return per journey (see the module's rules)."""
    results: dict[str, JourneyReturn] = {}
    for g in log_groups(conn, journey_id) if groups is None else groups:
        if g.emails or g.sms_segments:
            ret = results.setdefault(g.journey_id, JourneyReturn(g.journey_id))
            ret.emails += g.emails
            ret.sms_segments += g.sms_segments
    for ret in results.values():
        ret.cost = ret.emails * prices.email + ret.sms_segments * prices.sms_segment
    for journey, total in conn.execute(_credited(conn, prices.attribution_days, journey_id)):
        if journey in results:
            results[journey].orders += 1
            results[journey].revenue += _money(total)
    return sorted(results.values(), key=lambda r: r.journey_id)


def _credited(conn: Connection, days: int, journey_id: str | None) -> sa.Select:
    """(journey, order total) of every follow-up order, credited to the last marketing
    message sent to its customer before it within ``days`` (one index probe an order)."""
    p, touch, credited = purchases_t, messages_t.alias("touch"), messages_t.alias("credited")
    t = touch.c
    last_touch = (
        sa.select(t.id)
        .where(
            t.customer_id == p.c.customer_id,
            t.sent_at < p.c.purchased_at,
            t.sent_at >= days_before(conn, p.c.purchased_at, days),
            t.category == "marketing",
            t.status.in_(SENT_STATUSES),
            sa.or_(t.order_id.is_(None), t.order_id != p.c.id),
        )
        .order_by(t.sent_at.desc())
        .limit(1)
        .correlate(p)
        .scalar_subquery()
    )
    query = (
        sa.select(credited.c.journey_id, p.c.total)
        .select_from(p.join(credited, credited.c.id == last_touch))
        .where(p.c.returned_at.is_(None))
    )
    return query.where(credited.c.journey_id == journey_id) if journey_id else query


def days_before(conn: Connection, moment: Any, days: int) -> Any:
    """``moment`` less ``days`` days, in SQL: SQLite keeps UTC as text, PostgreSQL as time."""
    if conn.dialect.name == "sqlite":  # the stored form, 'YYYY-MM-DD HH:MM:SS.ffffff'
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", moment, f"-{int(days)} days").op("||")("000")
    return moment - sa.literal_column(f"interval '{int(days)} days'")


def journey_stats(conn: Connection, journey_id: str, prices: Prices) -> JourneyStats:
    """Funnel, reasons and return of one journey."""
    groups = log_groups(conn, journey_id)
    returns = journey_returns(conn, prices, journey_id, groups)
    return JourneyStats(
        journey_id=journey_id,
        steps=step_funnels(conn, journey_id, groups),
        skip_reasons=skip_reasons(conn, journey_id),
        deferral_reasons=deferral_reasons(conn, journey_id),
        returns=returns[0] if returns else JourneyReturn(journey_id),
    )


@dataclass
class JourneyInfo:
    """A journey as the console lists it: its current definition and whether it is paused."""

    journey_id: str
    name: str
    version: int
    paused: bool
    active: bool
    definition: dict[str, Any]


def list_journeys(conn: Connection) -> list[JourneyInfo]:
    """Every journey known to the database with its current version."""
    j, v = journeys_t.c, versions_t.c
    query = (
        sa.select(j.journey_id, j.paused, j.active, v.name, v.version, v.definition)
        .join(versions_t, v.id == j.current_version_id)
        .order_by(j.journey_id)
    )
    return [
        JourneyInfo(
            r.journey_id, r.name or r.journey_id, r.version, r.paused, r.active, r.definition
        )  # fmt: skip
        for r in conn.execute(query)
    ]


def set_paused(conn: Connection, journey_id: str, paused: bool) -> bool:
    """Pause or resume a journey; False when there is no such journey."""
    updated = conn.execute(
        journeys_t.update().where(journeys_t.c.journey_id == journey_id).values(paused=paused)
    ).rowcount
    return bool(updated)


# ---------------------------------------------------------------------------- dashboard


@dataclass
class Dashboard:
    """The operational picture at one moment."""

    now: datetime
    days: list[str]
    per_day: dict[str, dict[str, list[int]]]  # channel -> status -> counts aligned with days
    deferrals_per_day: dict[str, list[int]]  # "frequency_cap" / "quiet_hours" / ... -> counts
    backlog: int
    oldest_due: datetime | None
    failures: int
    recent_failures: list[Any]
    dispatchers: list[Any]
    totals: dict[str, int]

    @property
    def oldest_age(self) -> timedelta | None:
        return self.now - self.oldest_due if self.oldest_due else None


def _day(value: Any) -> str:
    return value if isinstance(value, str) else f"{value:%Y-%m-%d}"


def _reason_family(reason: str | None) -> str:
    return (reason or "other").split(":", 1)[0]


def dashboard(
    conn: Connection,
    now: datetime,
    *,
    days: int = 30,
    heartbeat_now: datetime | None = None,
    until: datetime | None = None,
) -> Dashboard:
    """Messages and deferrals per day over ``days`` up to ``until`` (default ``now``),
    backlog and live dispatchers (those always as of ``now``).

    ``now`` is the project's clock (simulated or real); dispatcher heartbeats are always
    written in real time, so ``heartbeat_now`` may differ from it.
    """
    end = min(until, now) if until else now
    start = (end - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    labels = [_day(start + timedelta(days=i)) for i in range(days)]
    index = {label: i for i, label in enumerate(labels)}
    m, d = messages_t.c, decisions_t.c
    when = sa.func.coalesce(m.sent_at, m.due_at)
    per_day: dict[str, dict[str, list[int]]] = {}
    query = (
        sa.select(sa.func.date(when), m.channel, m.status, sa.func.count())
        .where(when >= start, when <= end, m.status != "planned")
        .group_by(sa.func.date(when), m.channel, m.status)
    )
    for day, channel, status, count in conn.execute(query):
        if _day(day) in index:
            series = per_day.setdefault(channel, {}).setdefault(status, [0] * days)
            series[index[_day(day)]] += count
    deferrals: dict[str, list[int]] = {}
    query = (
        sa.select(sa.func.date(d.at), d.reason, sa.func.count())
        .where(d.at >= start, d.at <= end, d.action.in_(["deferred", "skipped"]))
        .where(sa.or_(d.action == "deferred", d.reason.like("frequency_cap%")))
        .group_by(sa.func.date(d.at), d.reason)
    )
    for day, reason, count in conn.execute(query):
        if _day(day) in index:
            family = _reason_family(reason)
            deferrals.setdefault(family, [0] * days)[index[_day(day)]] += count
    backlog, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(m.due_at)).where(
            m.status == "planned", m.due_at <= now
        )
    ).one()
    return Dashboard(
        now=now,
        days=labels,
        per_day=per_day,
        deferrals_per_day=deferrals,
        backlog=backlog,
        oldest_due=oldest,
        failures=_failures_since(conn, now - timedelta(days=7), now),
        recent_failures=_recent_failures(conn),
        dispatchers=live_dispatchers(conn, heartbeat_now or now),
        totals=_totals(conn),
    )


def _failures_since(conn: Connection, since: datetime, now: datetime) -> int:
    m = messages_t.c
    when = sa.func.coalesce(m.updated_at, m.sent_at, m.due_at)
    return conn.execute(
        sa.select(sa.func.count()).where(m.status.in_(FAILURE_STATUSES), when >= since, when <= now)
    ).scalar_one()


def _recent_failures(conn: Connection, limit: int = 10) -> list[Any]:
    m = messages_t.c
    query = (
        sa.select(
            m.id,
            m.customer_id,
            m.journey_id,
            m.step,
            m.channel,
            m.status,
            m.reason,
            m.due_at,
            m.sent_at,
        )  # fmt: skip
        .where(m.status.in_(FAILURE_STATUSES))
        .order_by(m.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def live_dispatchers(conn: Connection, now: datetime, within: int = 60) -> list[Any]:
    """Dispatchers whose heartbeat is at most ``within`` seconds old."""
    t = dispatchers_t.c
    since = now - timedelta(seconds=within)
    return list(conn.execute(sa.select(dispatchers_t).where(t.seen_at >= since).order_by(t.id)))


def _totals(conn: Connection) -> dict[str, int]:
    m = messages_t.c
    rows = conn.execute(sa.select(m.status, sa.func.count()).group_by(m.status)).all()
    return {status: count for status, count in rows}

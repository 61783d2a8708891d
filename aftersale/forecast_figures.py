"""The figures of a forecast, read from its throwaway database once the engine has run.

Everything that happened during the forecast is told apart from what was there before by
the message history: a decision written after :func:`decision_mark` belongs to the
forecast. Contacts are messages sent (any category: the customer feels every one); the
spread per customer is over the customers contacted at least once, of the most messages
each got in any 7 (any 30) days. Percentiles are nearest-rank.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.stats import SENT_STATUSES, Prices
from campaigns.models import Message, MessageDecision

messages_t = Message.__table__
decisions_t = MessageDecision.__table__
WINDOWS = {"7d": timedelta(days=7), "30d": timedelta(days=30)}
NOT_SENT = ("skipped", "cancelled", "failed")
CAP_PREFIX = "frequency_cap"
CONTACT_BUCKETS = ("1", "2", "3", "4+")


@dataclass
class JourneyChannel:
    """What one journey did on one channel during the forecast."""

    journey: str
    channel: str
    sent: int = 0
    deferred: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "channel": self.channel,
            "sent": self.sent,
            "deferred": dict(self.deferred.most_common()),
            "skipped": dict(self.skipped.most_common()),
        }


@dataclass
class Week:
    """One week (Monday, UTC) of the forecast, for the console's charts."""

    start: date
    messages: Counter[tuple[str, str]] = field(default_factory=Counter)  # (journey, channel)
    contacts: Counter[str] = field(default_factory=Counter)  # customers by contacts: 1 … 4+
    cap_deferred: int = 0  # deferrals a cap caused this week
    cap_dropped: int = 0  # messages a cap had held that ended skipped this week


@dataclass
class Figures:
    """A forecast's figures for one set of journeys."""

    statuses: dict[str, int]
    journeys: list[JourneyChannel]
    per_customer: dict[str, Any]
    cost: dict[str, Any]
    weeks: list[Week]
    # Customers whose offers rest at the forecast's end, by reason (unsatisfied, fatigue).
    resting: dict[str, int] = field(default_factory=dict)
    # Each worker process's peak memory (MB), when the engine ran in several (else empty).
    worker_peaks_mb: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "statuses": self.statuses,
            "journeys": [j.as_json() for j in self.journeys],
            "per_customer": self.per_customer,
            "cost": self.cost,
            "resting": self.resting,
        }


def decision_mark(conn: Connection) -> int:
    """The last decision written before the forecast: later ones are the forecast's."""
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(decisions_t.c.id), 0))).scalar()


def figures(conn: Connection, mark: int, prices: Prices) -> Figures:
    """Read every figure of the forecast whose decisions come after ``mark``."""
    journeys: dict[tuple[str, str], JourneyChannel] = {}

    def row(journey: str, channel: str) -> JourneyChannel:
        return journeys.setdefault((journey, channel), JourneyChannel(journey, channel))

    weeks: dict[date, Week] = {}

    def week(moment: datetime) -> Week:
        start = moment.date() - timedelta(days=moment.weekday())
        return weeks.setdefault(start, Week(start))

    spreads, emails, segments = _sent(conn, mark, row, week)
    for journey, channel, reason, n in _deferred(conn, mark):
        row(journey, channel).deferred[reason or ""] += n
    for journey, channel, reason, n in _skipped(conn, mark):
        row(journey, channel).skipped[reason] += n
    caps = _cap_pressure(conn, mark, week)
    per_customer = {**spreads, "cap_pressure": caps}
    return Figures(
        statuses=_statuses(conn),
        journeys=sorted(journeys.values(), key=lambda j: (j.journey, j.channel)),
        per_customer=per_customer,
        cost=_cost(prices, emails, segments),
        weeks=[weeks[k] for k in sorted(weeks)],
    )


def _statuses(conn: Connection) -> dict[str, int]:
    m = messages_t.c
    counted = conn.execute(sa.select(m.status, sa.func.count()).group_by(m.status))
    return dict(sorted((status, n) for status, n in counted))


def _forecast_decisions(mark: int, *actions: str) -> Any:
    d = decisions_t.c
    return sa.and_(d.id > mark, d.action.in_(actions))


def _sent(conn: Connection, mark: int, row: Any, week: Any) -> tuple[dict[str, Any], int, int]:
    """Walk the forecast's sent messages customer by customer: the per-journey counts, the
    weeks' messages and contacts, the spread per customer, e-mails and SMS segments."""
    m, d = messages_t.c, decisions_t.c
    segments_of = sa.func.coalesce(m.details["segments"].as_integer(), 1)
    query = (
        sa.select(m.customer_id, m.sent_at, m.journey_id, m.channel, segments_of)
        .join(decisions_t, d.message_id == m.id)
        .where(_forecast_decisions(mark, "sent"), m.status.in_(SENT_STATUSES))
        .order_by(m.customer_id, m.sent_at)
    )
    peaks: dict[str, list[int]] = {name: [] for name in WINDOWS}
    emails = segments = 0
    customer: str | None = None
    times: list[datetime] = []
    for cid, sent_at, journey, channel, parts in conn.execute(query):
        if cid != customer and times:
            _add_customer(times, peaks, week)
            times = []
        customer = cid
        times.append(sent_at)
        row(journey, channel).sent += 1
        week(sent_at).messages[(journey, channel)] += 1
        if channel == "sms":
            segments += int(parts or 1)
        else:
            emails += 1
    if times:
        _add_customer(times, peaks, week)
    spreads: dict[str, Any] = {"customers": len(peaks["7d"])}
    for name, values in peaks.items():
        spreads[name] = spread(values)
    return spreads, emails, segments


def _add_customer(times: list[datetime], peaks: dict[str, list[int]], week: Any) -> None:
    for name, window in WINDOWS.items():
        peaks[name].append(most_within(times, window))
    per_week = Counter(week(t).start for t in times)
    for start, n in per_week.items():
        week_row = week(datetime.combine(start, datetime.min.time()))
        week_row.contacts[CONTACT_BUCKETS[min(n, 4) - 1]] += 1


def most_within(times: list[datetime], window: timedelta) -> int:
    """The most of the (sorted) ``times`` that fall within any ``window``."""
    best, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def spread(values: Iterable[int]) -> dict[str, int]:
    """Median, 90th and 99th percentile (nearest rank), maximum, and how many reach it."""
    ordered = sorted(values)
    if not ordered:
        return {"median": 0, "p90": 0, "p99": 0, "max": 0, "at_max": 0}

    def rank(p: float) -> int:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    top = ordered[-1]
    return {"median": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": top,
            "at_max": len(ordered) - ordered.index(top)}  # fmt: skip


def _deferred(conn: Connection, mark: int) -> list[tuple[str, str, str | None, int]]:
    m, d = messages_t.c, decisions_t.c
    query = (
        sa.select(m.journey_id, m.channel, d.reason, sa.func.count())
        .join(messages_t, m.id == d.message_id)
        .where(_forecast_decisions(mark, "deferred"))
        .group_by(m.journey_id, m.channel, d.reason)
    )
    return [tuple(r) for r in conn.execute(query)]


def _skipped(conn: Connection, mark: int) -> list[tuple[str, str, str, int]]:
    """Messages that ended skipped, cancelled or failed during the forecast, by reason."""
    m, d = messages_t.c, decisions_t.c
    ended = sa.select(d.message_id).where(d.id > mark).scalar_subquery()
    reason = sa.func.coalesce(m.reason, m.status)
    query = (
        sa.select(m.journey_id, m.channel, reason, sa.func.count())
        .where(m.status.in_(NOT_SENT), m.id.in_(ended))
        .group_by(m.journey_id, m.channel, reason)
    )
    return [tuple(r) for r in conn.execute(query)]


def _cap_pressure(conn: Connection, mark: int, week: Any) -> dict[str, Any]:
    """Per cap: the deferrals it caused, the messages it held and what became of them
    (sent in the end, skipped, still waiting at the forecast's end), and the messages it
    skipped outright (past their expiry before the cap let them through)."""
    m, d = messages_t.c, decisions_t.c
    query = (
        sa.select(d.reason, d.at, m.id, m.status, m.updated_at)
        .join(messages_t, m.id == d.message_id)
        .where(_forecast_decisions(mark, "deferred"), d.reason.like(f"{CAP_PREFIX}%"))
    )
    caps: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"deferrals": 0, "messages": set(), "skipped": 0}
    )
    outcome: dict[int, tuple[str, datetime | None]] = {}
    for reason, at, message_id, status, updated_at in conn.execute(query):
        caps[reason]["deferrals"] += 1
        caps[reason]["messages"].add(message_id)
        week(at).cap_deferred += 1
        outcome[message_id] = (status, updated_at)
    for status, updated_at in outcome.values():
        if status in NOT_SENT and updated_at is not None:
            week(updated_at).cap_dropped += 1
    skipped = (
        sa.select(m.reason, m.updated_at)
        .join(decisions_t, d.message_id == m.id)
        .where(_forecast_decisions(mark, "skipped"), m.status == "skipped")
        .where(m.reason.like(f"{CAP_PREFIX}%"))
    )
    for reason, updated_at in conn.execute(skipped):
        caps[reason]["skipped"] += 1
        week(updated_at).cap_dropped += 1
    shown = {}
    for reason in sorted(caps):
        held = caps[reason]["messages"]
        ends = Counter(_fate(outcome[i][0]) for i in held)
        shown[reason] = {"deferrals": caps[reason]["deferrals"], "messages": len(held),
                         "then_sent": ends["sent"], "then_skipped": ends["skipped"],
                         "still_planned": ends["planned"], "skipped": caps[reason]["skipped"]}  # fmt: skip
    return shown


def _fate(status: str) -> str:
    if status in SENT_STATUSES:
        return "sent"
    return "planned" if status in ("planned", "sending") else "skipped"


def _cost(prices: Prices, emails: int, segments: int) -> dict[str, Any]:
    email_cost = prices.email * emails
    sms_cost = prices.sms_segment * segments
    return {
        "currency": prices.currency,
        "email": {"messages": emails, "cost": str(email_cost)},
        "sms": {"segments": segments, "cost": str(sms_cost)},
        "total": str(email_cost + sms_cost),
    }


def differences(current: Figures, proposed: Figures) -> dict[str, Any]:
    """Proposed minus current: statuses, each journey and channel, the spreads, the cost."""
    statuses = {
        k: proposed.statuses.get(k, 0) - current.statuses.get(k, 0)
        for k in sorted({*current.statuses, *proposed.statuses})
    }
    before = {(j.journey, j.channel): j for j in current.journeys}
    after = {(j.journey, j.channel): j for j in proposed.journeys}
    journeys = []
    for key in sorted({*before, *after}):
        old = before.get(key) or JourneyChannel(*key)
        new = after.get(key) or JourneyChannel(*key)
        journeys.append({"journey": key[0], "channel": key[1],
                         "sent": new.sent - old.sent,
                         "deferred": new.deferred.total() - old.deferred.total(),
                         "skipped": new.skipped.total() - old.skipped.total()})  # fmt: skip
    per_customer: dict[str, Any] = {
        "customers": proposed.per_customer["customers"] - current.per_customer["customers"]
    }
    for name in WINDOWS:
        old_spread, new_spread = current.per_customer[name], proposed.per_customer[name]
        per_customer[name] = {k: new_spread[k] - old_spread[k] for k in old_spread}
    total = Decimal(proposed.cost["total"]) - Decimal(current.cost["total"])
    resting = {
        k: proposed.resting.get(k, 0) - current.resting.get(k, 0)
        for k in sorted({*current.resting, *proposed.resting})
    }
    return {"statuses": statuses, "journeys": journeys, "per_customer": per_customer,
            "cost": {"currency": current.cost["currency"], "total": str(total)},
            "resting": resting}  # fmt: skip

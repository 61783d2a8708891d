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
from collections.abc import Callable, Iterable
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
# What each cap's pressure shows, in this order.
CAP_FIGURES = ("deferrals", "messages", "then_sent", "then_skipped", "still_planned", "skipped")


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


@dataclass
class Tally:
    """What :class:`Figures` are made of, in a form that adds up: one forecast's rows read
    once, or the tallies of the processes that forecast a share of the customers each
    (every figure a sum, every spread a list of per-customer peaks)."""

    statuses: Counter[str] = field(default_factory=Counter)
    journeys: dict[tuple[str, str], JourneyChannel] = field(default_factory=dict)
    weeks: dict[date, Week] = field(default_factory=dict)
    peaks: dict[str, list[int]] = field(default_factory=lambda: {n: [] for n in WINDOWS})
    emails: int = 0
    segments: int = 0
    caps: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    resting: Counter[str] = field(default_factory=Counter)

    def row(self, journey: str, channel: str) -> JourneyChannel:
        return self.journeys.setdefault((journey, channel), JourneyChannel(journey, channel))

    def week(self, moment: datetime) -> Week:
        start = moment.date() - timedelta(days=moment.weekday())
        return self.weeks.setdefault(start, Week(start))

    def add(self, other: Tally) -> None:
        """Count ``other`` in (a tally of other customers)."""
        self.statuses.update(other.statuses)
        for (journey, channel), theirs in other.journeys.items():
            mine = self.row(journey, channel)
            mine.sent += theirs.sent
            mine.deferred.update(theirs.deferred)
            mine.skipped.update(theirs.skipped)
        for start, theirs_week in other.weeks.items():
            week = self.weeks.setdefault(start, Week(start))
            week.messages.update(theirs_week.messages)
            week.contacts.update(theirs_week.contacts)
            week.cap_deferred += theirs_week.cap_deferred
            week.cap_dropped += theirs_week.cap_dropped
        for name, values in other.peaks.items():
            self.peaks[name].extend(values)
        self.emails += other.emails
        self.segments += other.segments
        for reason, counts in other.caps.items():
            self.caps[reason].update(counts)
        self.resting.update(other.resting)

    def figures(self, prices: Prices) -> Figures:
        spreads: dict[str, Any] = {"customers": len(self.peaks["7d"])}
        for name, values in self.peaks.items():
            spreads[name] = spread(values)
        caps = {
            reason: {key: self.caps[reason][key] for key in CAP_FIGURES}
            for reason in sorted(self.caps)
        }
        return Figures(
            statuses=dict(sorted((s, n) for s, n in self.statuses.items() if n)),
            journeys=sorted(self.journeys.values(), key=lambda j: (j.journey, j.channel)),
            per_customer={**spreads, "cap_pressure": caps},
            cost=_cost(prices, self.emails, self.segments),
            weeks=[self.weeks[k] for k in sorted(self.weeks)],
            resting=dict(self.resting),
        )


def figures(conn: Connection, mark: int, prices: Prices) -> Figures:
    """Read every figure of the forecast whose decisions come after ``mark``."""
    return tally(conn, mark).figures(prices)


def tally(conn: Connection, mark: int, owns: Callable[[str], bool] | None = None) -> Tally:
    """The tally of the forecast whose decisions come after ``mark``. ``owns``: which
    customers' messages the statuses count (all, by default); everything else is read from
    the forecast's decisions, which only the customers it forecast have."""
    found = Tally()
    _sent(conn, mark, found)
    for journey, channel, reason, n in _deferred(conn, mark):
        found.row(journey, channel).deferred[reason or ""] += n
    for journey, channel, reason, n in _skipped(conn, mark):
        found.row(journey, channel).skipped[reason] += n
    _cap_pressure(conn, mark, found)
    found.statuses = _statuses(conn, owns)
    return found


def _statuses(conn: Connection, owns: Callable[[str], bool] | None) -> Counter[str]:
    """Messages by status, of the customers ``owns`` names (or of all)."""
    m = messages_t.c
    if owns is None:
        every = conn.execute(sa.select(m.status, sa.func.count()).group_by(m.status))
        return Counter({status: n for status, n in every})
    by_customer = sa.select(m.customer_id, m.status, sa.func.count()).group_by(
        m.customer_id, m.status
    )
    counted: Counter[str] = Counter()
    for customer_id, status, n in conn.execute(by_customer):
        if owns(customer_id):
            counted[status] += n
    return counted


def _forecast_decisions(mark: int, *actions: str) -> Any:
    d = decisions_t.c
    return sa.and_(d.id > mark, d.action.in_(actions))


def _sent(conn: Connection, mark: int, found: Tally) -> None:
    """Walk the forecast's sent messages customer by customer: the per-journey counts, the
    weeks' messages and contacts, each customer's peaks, e-mails and SMS segments."""
    m, d = messages_t.c, decisions_t.c
    segments_of = sa.func.coalesce(m.details["segments"].as_integer(), 1)
    query = (
        sa.select(m.customer_id, m.sent_at, m.journey_id, m.channel, segments_of)
        .join(decisions_t, d.message_id == m.id)
        .where(_forecast_decisions(mark, "sent"), m.status.in_(SENT_STATUSES))
        .order_by(m.customer_id, m.sent_at)
    )
    peaks, row, week = found.peaks, found.row, found.week
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
            found.segments += int(parts or 1)
        else:
            found.emails += 1
    if times:
        _add_customer(times, peaks, week)


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


def _cap_pressure(conn: Connection, mark: int, found: Tally) -> None:
    """Per cap: the deferrals it caused, the messages it held and what became of them
    (sent in the end, skipped, still waiting at the forecast's end), and the messages it
    skipped outright (past their expiry before the cap let them through)."""
    m, d = messages_t.c, decisions_t.c
    query = (
        sa.select(d.reason, d.at, m.id, m.status, m.updated_at)
        .join(messages_t, m.id == d.message_id)
        .where(_forecast_decisions(mark, "deferred"), d.reason.like(f"{CAP_PREFIX}%"))
    )
    caps, week = found.caps, found.week
    held: dict[str, set[int]] = defaultdict(set)
    outcome: dict[int, tuple[str, datetime | None]] = {}
    for reason, at, message_id, status, updated_at in conn.execute(query):
        caps[reason]["deferrals"] += 1
        held[reason].add(message_id)
        week(at).cap_deferred += 1
        outcome[message_id] = (status, updated_at)
    for status, updated_at in outcome.values():
        if status in NOT_SENT and updated_at is not None:
            week(updated_at).cap_dropped += 1
    for reason, ids in held.items():
        caps[reason]["messages"] += len(ids)
        for i in ids:
            caps[reason][_fate(outcome[i][0])] += 1
    skipped = (
        sa.select(m.reason, m.updated_at)
        .join(decisions_t, d.message_id == m.id)
        .where(_forecast_decisions(mark, "skipped"), m.status == "skipped")
        .where(m.reason.like(f"{CAP_PREFIX}%"))
    )
    for reason, updated_at in conn.execute(skipped):
        caps[reason]["skipped"] += 1
        week(updated_at).cap_dropped += 1


def _fate(status: str) -> str:
    """What became of a message a cap held, as its pressure shows it."""
    if status in SENT_STATUSES:
        return "then_sent"
    return "still_planned" if status in ("planned", "sending") else "then_skipped"


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

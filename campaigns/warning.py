"""Early warning: complaint rates that rise above their own past, or above a ceiling.

A complaint is counted against its subjects: the SKU and category it names (when it names
an item), and every journey whose marketing message reached the customer within
``journey_window_days`` (14) before it was opened. Transactional messages are left out: the
thank-you after every purchase precedes every early complaint about what was bought, and
would make it look as if the thank-you drew them. Rates are per 1,000 exposures: orders
of the SKU or category (an order line), marketing messages sent by the journey.

For each subject, the last ``window_days`` (30) are compared with its own baseline, the
``baseline_days`` (180) before them. With ``k_r`` complaints over ``n_r`` exposures recently
and ``k_b`` over ``n_b`` before, equal rates would make ``k_r`` binomial among the
``k_r + k_b`` complaints, with the share ``n_r / (n_r + n_b)`` of the exposures: the exact
conditional test for two Poisson rates. An alert is raised when

1. ``rising`` — that test (``scipy.stats.binomtest``, one-sided, greater) gives a p-value
   below ``alpha / m`` (Bonferroni over the ``m`` subjects tested at once; ``alpha`` 0.001),
   and at least ``min_complaints`` (3) complaints fell in the window; or
2. ``ceiling`` — the window's rate passes ``ceiling`` (per 1,000; off unless configured)
   over at least ``min_exposures`` (30) exposures.

:func:`find_alerts` is the pure decision over counted :class:`Subject` figures;
:func:`complaint_figures` counts them from the database, with weekly series for charts.
The SKUs under alert are kept (:func:`store_alerts`) for conditions to read as ``alerts``
(``item.sku not in alerts``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import COUNTING_STATUSES, Complaint, ProjectState
from campaigns.store import items_t, messages_t, purchases_t

__all__ = [
    "Alert",
    "AlertRules",
    "DIMENSIONS",
    "Subject",
    "alert_skus",
    "complaint_figures",
    "find_alerts",
    "store_alerts",
]

DIMENSIONS = ("sku", "category", "journey")
ALERTS_KEY = "alerts:skus"
WEEK = timedelta(days=7)
complaints_t = Complaint.__table__
state_t = ProjectState.__table__


@dataclass(frozen=True, slots=True)
class AlertRules:
    """The validated ``[alerts]`` settings."""

    alpha: float = 0.001
    window_days: int = 30
    baseline_days: int = 180
    journey_window_days: int = 14
    min_complaints: int = 3
    min_exposures: int = 30
    ceiling: float | None = None  # complaints per 1,000 exposures
    email: bool = False  # send new alerts to the shop's support address
    every_hours: int = 1  # how often the leading dispatcher of ``run`` evaluates them

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> AlertRules:
        """Rules from ``[alerts]``; raises ``ValueError`` naming the offending key."""
        kinds = {f.name: f.type for f in fields(cls)}
        for key, value in cfg.items():
            if key not in kinds:
                raise ValueError(f"alerts.{key}: unknown setting")
            if key == "email":
                if not isinstance(value, bool):
                    raise ValueError(f"alerts.email: must be true or false, got {value!r}")
            elif key in ("alpha", "ceiling"):
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError(f"alerts.{key}: must be a number > 0, got {value!r}")
                if key == "alpha" and value >= 1:
                    raise ValueError(f"alerts.alpha: must be below 1, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"alerts.{key}: must be a whole number >= 1, got {value!r}")
        return cls(**dict(cfg))


@dataclass
class Subject:
    """One SKU, category or journey: its counts in the window and its baseline, and per
    week (oldest first) for the charts."""

    dimension: str
    name: str
    recent_complaints: int = 0
    recent_exposures: int = 0
    baseline_complaints: int = 0
    baseline_exposures: int = 0
    weekly_complaints: list[int] = field(default_factory=list)
    weekly_exposures: list[int] = field(default_factory=list)

    @property
    def recent_rate(self) -> float | None:
        """Complaints per 1,000 exposures in the window; None without exposures."""
        return _per_mille(self.recent_complaints, self.recent_exposures)

    @property
    def baseline_rate(self) -> float | None:
        return _per_mille(self.baseline_complaints, self.baseline_exposures)

    def weekly_rates(self) -> list[float | None]:
        pairs = zip(self.weekly_complaints, self.weekly_exposures, strict=True)
        return [_per_mille(k, n) for k, n in pairs]


def _per_mille(complaints: int, exposures: int) -> float | None:
    return 1000 * complaints / exposures if exposures else None


@dataclass(frozen=True, slots=True)
class Alert:
    """A subject whose complaint rate needs a look, and why (``rising`` or ``ceiling``)."""

    dimension: str
    name: str
    reason: str
    recent_rate: float
    baseline_rate: float | None
    p_value: float | None
    recent_complaints: int
    recent_exposures: int

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def rise_p_value(s: Subject) -> float:
    """The one-sided p-value that the window's rate is no higher than the baseline's."""
    total = s.recent_complaints + s.baseline_complaints
    exposures = s.recent_exposures + s.baseline_exposures
    if not s.recent_exposures or not s.baseline_exposures or not total:
        return 1.0
    share = s.recent_exposures / exposures
    from scipy.stats import binomtest  # a large import, needed only when alerts are evaluated

    return float(binomtest(s.recent_complaints, total, share, alternative="greater").pvalue)


def find_alerts(subjects: Sequence[Subject], rules: AlertRules = AlertRules()) -> list[Alert]:
    """The subjects under alert (see the module docstring), most significant first."""
    tested = [s for s in subjects if s.recent_exposures and s.baseline_exposures]
    threshold = rules.alpha / max(1, len(tested))
    alerts = []
    for s in subjects:
        rate = s.recent_rate
        if rate is None:
            continue
        p = rise_p_value(s)
        if s.recent_complaints >= rules.min_complaints and p < threshold:
            reason = "rising"
        elif (
            rules.ceiling is not None
            and s.recent_exposures >= rules.min_exposures
            and rate > rules.ceiling
        ):
            reason = "ceiling"
        else:
            continue
        alerts.append(
            Alert(
                s.dimension,
                s.name,
                reason,
                rate,
                s.baseline_rate,
                p,
                s.recent_complaints,
                s.recent_exposures,
            )  # fmt: skip
        )
    return sorted(alerts, key=lambda a: (a.p_value if a.p_value is not None else 1, -a.recent_rate))


# ---------------------------------------------------------------------------- counting


def complaint_figures(conn: Connection, now: datetime, rules: AlertRules) -> list[Subject]:
    """Every subject with an exposure or a complaint in the window or its baseline."""
    start = now - timedelta(days=rules.window_days + rules.baseline_days)
    recent_from = now - timedelta(days=rules.window_days)
    weeks = -(-(rules.window_days + rules.baseline_days) // 7)
    subjects: dict[tuple[str, str], Subject] = {}

    def count(dimension: str, name: str | None, at: datetime, complaint: bool) -> None:
        if not name or at < start or at > now:
            return
        s = subjects.get((dimension, name))
        if s is None:
            s = subjects[(dimension, name)] = Subject(
                dimension, name, weekly_complaints=[0] * weeks, weekly_exposures=[0] * weeks
            )
        recent = at >= recent_from
        week = max(0, weeks - 1 - int((now - at) / WEEK))
        if complaint:
            s.weekly_complaints[week] += 1
            if recent:
                s.recent_complaints += 1
            else:
                s.baseline_complaints += 1
        else:
            s.weekly_exposures[week] += 1
            if recent:
                s.recent_exposures += 1
            else:
                s.baseline_exposures += 1

    i, p = items_t.c, purchases_t.c
    lines = sa.select(p.purchased_at, i.sku, i.category).join(purchases_t, p.id == i.order_id)
    for at, sku, category in conn.execute(lines.where(p.purchased_at >= start)):
        count("sku", sku, at, False)
        count("category", category, at, False)
    sent = _sent_by_customer(conn, start - timedelta(days=rules.journey_window_days), now)
    for customer_messages in sent.values():
        for at, journey in customer_messages:
            count("journey", journey, at, False)
    k = complaints_t.c
    complaints = sa.select(k.opened_at, k.sku, k.category, k.customer_id)
    reach = timedelta(days=rules.journey_window_days)
    for at, sku, category, customer_id in conn.execute(complaints.where(k.opened_at >= start)):
        count("sku", sku, at, True)
        count("category", category, at, True)
        preceding = {j for sent_at, j in sent.get(customer_id, ()) if at - reach <= sent_at <= at}
        for journey in sorted(preceding):
            count("journey", journey, at, True)
    return sorted(subjects.values(), key=lambda s: (DIMENSIONS.index(s.dimension), s.name))


def _sent_by_customer(conn: Connection, since: datetime, now: datetime):
    m = messages_t.c
    query = sa.select(m.customer_id, m.sent_at, m.journey_id).where(
        m.sent_at >= since,
        m.sent_at <= now,
        m.status.in_(COUNTING_STATUSES),
        m.category == "marketing",
    )
    sent: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for customer_id, sent_at, journey in conn.execute(query):
        sent[customer_id].append((sent_at, journey))
    return sent


# ------------------------------------------------------------------------ kept alerts


def store_alerts(conn: Connection, alerts: Sequence[Alert]) -> None:
    """Keep the SKUs under alert for conditions (``alerts``) until the next evaluation."""
    value = json.dumps(sorted({a.name for a in alerts if a.dimension == "sku"}))
    updated = conn.execute(state_t.update().where(state_t.c.key == ALERTS_KEY).values(value=value))
    if not updated.rowcount:
        conn.execute(state_t.insert().values(key=ALERTS_KEY, value=value))


# Read by every batch of events and of messages: built once.
_ALERTS = sa.select(state_t.c.value).where(state_t.c.key == ALERTS_KEY)


def alert_skus(conn: Connection) -> frozenset[str]:
    """The SKUs under alert at the last evaluation (empty before any)."""
    value = conn.execute(_ALERTS).scalar()
    try:
        return frozenset(json.loads(value)) if value else frozenset()
    except (TypeError, ValueError):
        return frozenset()

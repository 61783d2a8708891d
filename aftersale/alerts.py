"""Early warning in the shell: evaluate, keep the SKUs for conditions, tell support.

:func:`evaluate` runs :mod:`campaigns.warning` at the project's time (the simulated clock
when the project runs on one), keeps the SKUs under alert for ``item.sku in alerts`` and,
with ``[alerts] email = true``, writes to the shop's support address about alerts it has
not reported before. ``aftersale alerts`` and the console's alerts page both call it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from aftersale.app import Project
from aftersale.errors import ConfigurationError
from campaigns.models import ProjectState, reading
from campaigns.warning import (
    Alert,
    AlertRules,
    Subject,
    complaint_figures,
    find_alerts,
    store_alerts,
)
from channels import ChannelError, OutgoingMessage

__all__ = ["AlertReport", "alert_rules", "evaluate", "needs_attention"]

REPORTED_KEY = "alerts:reported"
state_t = ProjectState.__table__


@dataclass
class AlertReport:
    """One evaluation: when, every subject's figures, the alerts and whether mail went."""

    at: datetime
    rules: AlertRules
    subjects: list[Subject]
    alerts: list[Alert]
    mailed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "window_days": self.rules.window_days,
            "baseline_days": self.rules.baseline_days,
            "alpha": self.rules.alpha,
            "subjects_tested": len(self.subjects),
            "alerts": [a.as_dict() for a in self.alerts],
        }


def alert_rules(project: Project) -> AlertRules:
    """The validated ``[alerts]`` settings."""
    try:
        return AlertRules.from_config(project.settings.alerts)
    except ValueError as exc:
        raise ConfigurationError(f"{project.settings.config_path}: {exc}") from exc


def evaluate(project: Project, *, mail: bool = True) -> AlertReport:
    """Evaluate complaint rates now; keep the alert SKUs; mail support about new alerts."""
    from aftersale.admin.pages import clock_now  # the console's notion of the project's time

    rules = alert_rules(project)
    now = clock_now(project)
    with reading(project.db) as conn:
        subjects = complaint_figures(conn, now, rules)
    alerts = find_alerts(subjects, rules)
    report = AlertReport(now, rules, subjects, alerts)
    mailing = mail and rules.email
    with project.db.begin() as conn:
        store_alerts(conn, alerts)
        fresh = _not_reported(conn, alerts, remember=mailing)
    if mailing and fresh:
        report.mailed = _mail_support(project, fresh, now)
    return report


def _not_reported(conn: Any, alerts: list[Alert], *, remember: bool) -> list[Alert]:
    """The alerts not mailed before. Keeps the current ones (the dashboard counts them),
    remembered as mailed when ``remember``: an alert that ends and returns is new again."""
    known = conn.execute(sa.select(state_t.c.value).where(state_t.c.key == REPORTED_KEY)).scalar()
    before = json.loads(known) if known else {}
    if not isinstance(before, dict):
        before = {}
    mailed = set(before.get("mailed", ()))
    keys = sorted(f"{a.dimension}:{a.name}" for a in alerts)
    fresh = [a for a in alerts if f"{a.dimension}:{a.name}" not in mailed]
    kept = {"current": keys, "mailed": keys if remember else sorted(mailed & set(keys))}
    value = json.dumps(kept)
    if known is None:
        conn.execute(state_t.insert().values(key=REPORTED_KEY, value=value))
    else:
        conn.execute(state_t.update().where(state_t.c.key == REPORTED_KEY).values(value=value))
    return fresh


def describe(alert: Alert) -> str:
    """One line for an alert: subject, rates per 1,000 and the p-value or ceiling."""
    baseline = "—" if alert.baseline_rate is None else f"{alert.baseline_rate:.1f}"
    why = f"p = {alert.p_value:.2g}" if alert.reason == "rising" else "above the configured ceiling"
    return (
        f"{alert.dimension} {alert.name}: {alert.recent_rate:.1f} complaints per 1,000 in the "
        f"last 30 days ({alert.recent_complaints} of {alert.recent_exposures}), baseline "
        f"{baseline}; {why}"
    )


def _mail_support(project: Project, alerts: list[Alert], now: datetime) -> int:
    settings = project.settings
    body = "\n".join(
        ["Complaint rates that need a look:", "", *(f"- {describe(a)}" for a in alerts), "",
         "aftersale alerts --format json lists every figure."]
    )  # fmt: skip
    message = OutgoingMessage(
        message_id=f"alerts-{now:%Y%m%d%H%M%S}",
        kind="email",
        to=settings.shop_support_email,
        subject=f"{settings.shop_name}: {len(alerts)} complaint alert(s)",
        body_text=body,
        category="transactional",
    )
    try:
        project.channels["email"].send(message)
    except ChannelError:
        return 0
    return 1


def needs_attention(project: Project, limit: int = 100) -> list[Any]:
    """Customers whose last rating was 1 or 2, most recent first."""
    from campaigns.policy import UNSATISFIED_AT_MOST
    from campaigns.store import customers_t

    c = customers_t.c
    query = (
        sa.select(c.id, c.first_name, c.last_name, c.satisfaction, c.satisfaction_at, c.complaints)
        .where(c.satisfaction <= UNSATISFIED_AT_MOST)
        .order_by(c.satisfaction_at.desc())
        .limit(limit)
    )
    with reading(project.db) as conn:
        return list(conn.execute(query))

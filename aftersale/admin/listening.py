"""The console's listening page: complaint alerts with their trend, and the customers who
rated a complaint's handling 1 or 2 ("needs attention")."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from aftersale.admin.pages import PageUser, project_of, render
from aftersale.alerts import REPORTED_KEY, AlertReport, evaluate, needs_attention
from campaigns.models import ProjectState

router = APIRouter(prefix="/admin", include_in_schema=False)
state_t = ProjectState.__table__
CHARTED = 6  # trend charts on the page: the alerts first, then the highest recent rates


@router.get("/alerts")
def alerts_page(request: Request, user: PageUser) -> HTMLResponse:
    """Evaluate the complaint rates now and show the alerts, trends and who needs attention."""
    project = project_of(request)
    report = evaluate(project, mail=False)
    attention = needs_attention(project)
    data = json.dumps(trend_data(report)).replace("<", "\\u003c")  # safe inside <script>
    return render(request, "alerts.html", user, report=report, attention=attention,
                  chart=data, hold=project.policy.rules.unsatisfied_hold)  # fmt: skip


def trend_data(report: AlertReport) -> dict[str, Any]:
    """Weekly rates per 1,000 of the charted subjects, with each one's baseline."""
    alerted = {(a.dimension, a.name) for a in report.alerts}
    ranked = sorted(
        (s for s in report.subjects if s.recent_rate is not None),
        key=lambda s: ((s.dimension, s.name) not in alerted, -(s.recent_rate or 0)),
    )
    weeks = len(report.subjects[0].weekly_exposures) if report.subjects else 0
    labels = [f"{report.at - timedelta(weeks=weeks - 1 - n):%m-%d}" for n in range(weeks)]
    return {
        "weeks": labels,
        "charts": [
            {
                "id": f"trend-{n}",
                "title": f"{s.dimension} {s.name}",
                "alert": (s.dimension, s.name) in alerted,
                "rates": s.weekly_rates(),
                "baseline": s.baseline_rate,
            }
            for n, s in enumerate(ranked[:CHARTED])
        ],
    }


def dashboard_counts(conn: Any) -> tuple[int, int]:
    """Alerts at the last evaluation and customers needing attention, for the dashboard."""
    kept = conn.execute(sa.select(state_t.c.value).where(state_t.c.key == REPORTED_KEY)).scalar()
    from campaigns.policy import UNSATISFIED_AT_MOST
    from campaigns.store import customers_t

    unsatisfied = conn.execute(
        sa.select(sa.func.count()).where(customers_t.c.satisfaction <= UNSATISFIED_AT_MOST)
    ).scalar()
    current = json.loads(kept).get("current", []) if kept else []
    return len(current), int(unsatisfied or 0)

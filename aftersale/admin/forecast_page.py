"""The console's forecast page: run a forecast up to a date and see it as charts.

The forecast itself is :func:`aftersale.forecast.run_forecast` (a throwaway copy of the
database; nothing is sent and the project stays as it is). The page draws three charts
from its weekly figures: contacts per customer per week, messages per week by journey and
channel, and what the caps held back. A forecast reaches at most
:data:`LONGEST_AHEAD` past the project's clock, so one request cannot run for ever, and
the console runs one at a time: a second asked for meanwhile (a double click, a reload,
another user) is answered at once with 429 and a word, not queued behind the first to
take the server's memory and CPU from the webhooks.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from aftersale.admin.pages import PageUser, project_of, render
from aftersale.forecast import Forecast, ForecastInputError, forecast_start, run_forecast
from aftersale.forecast_cli import parse_date
from aftersale.forecast_figures import CONTACT_BUCKETS, Figures, Week

router = APIRouter(prefix="/admin", include_in_schema=False)
LONGEST_AHEAD = timedelta(days=2 * 366)
SUGGESTED_AHEAD = timedelta(days=182)
_RUNNING = threading.Lock()  # held while the console runs a forecast
BUSY = "another forecast is running in this console; try again when it has finished"


@router.get("/forecast")
def forecast_page(request: Request, user: PageUser, until: str | None = None) -> HTMLResponse:
    """The form; with ``until``, the forecast up to that date as charts."""
    project = project_of(request)
    start = project.simulated_now()
    suggested = ((start or project.now()) + SUGGESTED_AHEAD).date().isoformat()
    problem, result, status = None, None, 200
    if until and not _RUNNING.acquire(blocking=False):
        problem, status = BUSY, 429
    elif until:
        try:
            result = _run(project, until)
        except ForecastInputError as exc:
            problem = str(exc)
        finally:
            _RUNNING.release()
    chart = json.dumps(charts(result.current)).replace("<", "\\u003c") if result else None
    page = render(request, "forecast.html", user, result=result, chart=chart, until=until or "",
                  suggested=suggested, problem=problem, summary=summary(result))  # fmt: skip
    page.status_code = status
    return page


def _run(project: Any, until: str) -> Forecast:
    tz = project.settings.policy.get("default_timezone", "Europe/Berlin")
    end = parse_date(until, tz)
    start = forecast_start(project, end)
    if end - start > LONGEST_AHEAD:
        raise ForecastInputError(
            f"the console forecasts at most {LONGEST_AHEAD.days} days past the project's "
            f"clock ({start:%Y-%m-%d}); use `aftersale forecast` for longer"
        )
    return run_forecast(project, end)


def charts(figures: Figures) -> dict[str, Any]:
    """The weekly series the page's script draws, one list per series, a value a week
    (every week from the first to the last with anything in it, quiet ones too)."""
    weeks = _every_week(figures.weeks)
    series = sorted({key for w in weeks for key in w.messages})
    return {
        "weeks": [w.start.isoformat() for w in weeks],
        "contacts": {b: [w.contacts[b] for w in weeks] for b in CONTACT_BUCKETS},
        "messages": {f"{j} · {c}": [w.messages[(j, c)] for w in weeks] for j, c in series},
        "caps": {
            "deferred by a cap": [w.cap_deferred for w in weeks],
            "skipped after or by a cap": [w.cap_dropped for w in weeks],
        },
    }


def _every_week(weeks: list[Week]) -> list[Week]:
    if not weeks:
        return []
    known = {w.start: w for w in weeks}
    count = (weeks[-1].start - weeks[0].start).days // 7 + 1
    starts = [weeks[0].start + timedelta(days=7 * n) for n in range(count)]
    return [known.get(start) or Week(start) for start in starts]


def summary(result: Forecast | None) -> dict[str, Any] | None:
    """The headline figures above the charts."""
    if result is None:
        return None
    f = result.current
    held = sum(c["messages"] + c["skipped"] for c in f.per_customer["cap_pressure"].values())
    return {
        "sent": sum(j.sent for j in f.journeys),
        "deferred": sum(j.deferred.total() for j in f.journeys),
        "skipped": sum(j.skipped.total() for j in f.journeys),
        "customers": f.per_customer["customers"],
        "week": f.per_customer["7d"],
        "held": held,
        "cost": f.cost,
        "resting": f.resting,
    }

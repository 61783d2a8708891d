"""The admin console's HTML pages: login, dashboard, send log, customers, journeys."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from aftersale.accounts import authenticate
from aftersale.admin import customers as actions
from aftersale.admin.auth import (
    CSRF_FIELD,
    CurrentUser,
    check_csrf,
    csrf_token,
    log_in,
    log_out,
    page_user,
    require_admin,
)
from aftersale.admin.flow import journey_flow
from aftersale.admin.masking import mask_addresses, masked
from aftersale.admin.search import LIMIT as SEARCH_LIMIT
from aftersale.admin.search import find_customers
from aftersale.admin.sent import SentContent, TemplateError, sent_content
from aftersale.admin.shapes import (
    MAX_ROW_ID,
    PAGE_SIZE,
    STATUSES,
    contact_view,
    filter_query,
    log_filter,
)
from aftersale.admin.terminal import experiments, project_prices
from aftersale.admin.upcoming import PERIODS, upcoming_sends
from aftersale.app import CLOCK_KEY, Project, state_t
from aftersale.choices import known_steps, unknown_value
from aftersale.customer_value import customer_value
from aftersale.eventlog import EVENT_STATUSES, count_failed, query_events
from aftersale.sendlog import (
    LogFilter,
    csv_writer,
    customer_timeline,
    decided_log,
    iter_log,
    logged,
    messages_t,
    upcoming_log,
)
from aftersale.stats import (
    Prices,
    dashboard,
    journey_stats,
    list_journeys,
    set_paused,
)
from aftersale.views import _zone, not_enrolled_text
from campaigns.engine import retry_events
from campaigns.models import reading

PAGES = Path(__file__).with_name("pages")
templates = Jinja2Templates(directory=str(PAGES))
router = APIRouter(prefix="/admin", include_in_schema=False)
PageUser = Annotated[CurrentUser, Depends(page_user)]


async def page_admin(
    user: Annotated[CurrentUser, Depends(page_user)], _csrf: Annotated[None, Depends(check_csrf)]
) -> CurrentUser:
    """For changes: logged in first (else the login page), then a CSRF token, then an admin."""
    require_admin(user)
    return user


AdminUser = Annotated[CurrentUser, Depends(page_admin)]
Filter = Annotated[LogFilter, Depends(log_filter)]


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


def _local(moment: datetime | None, zone: tzinfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}" if moment else ""


def _money(value: Decimal | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


# Set while a page renders for a viewer: every value printed has its addresses masked.
_FOR_VIEWER: ContextVar[bool] = ContextVar("for_viewer", default=False)


def _finalize(value: Any) -> Any:
    if not _FOR_VIEWER.get() or not isinstance(value, str):
        return value
    text = mask_addresses(value)
    return Markup(text) if isinstance(value, Markup) else text


templates.env.filters["when"] = _when
templates.env.filters["local"] = _local
templates.env.filters["money"] = _money
templates.env.finalize = _finalize


def project_of(request: Request) -> Project:
    return request.app.state.project


def render(request: Request, name: str, user: CurrentUser | None, **context: Any) -> HTMLResponse:
    context.update(user=user, csrf=csrf_token(request), csrf_field=CSRF_FIELD)
    viewer = _FOR_VIEWER.set(user is not None and not user.is_admin)
    try:
        return templates.TemplateResponse(request, name, context)
    finally:
        _FOR_VIEWER.reset(viewer)


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -------------------------------------------------------------------------------- login


@router.get("/login")
def login_form(request: Request, next: str = "/admin/") -> HTMLResponse:
    return render(request, "login.html", None, next=next, error=None)


def _safe_next(url: str) -> str:
    # Only paths inside the console: never an open redirect to another site.
    return url if url.startswith("/admin") and not url.startswith("//") else "/admin/"


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/admin/",
) -> Response:
    project = project_of(request)
    client = request.client.host if request.client else "unknown"
    result = authenticate(
        project.db,
        username,
        password,
        client=client,
        throttle=request.app.state.login_throttle,
        now=project.now(),
    )
    if result.retry_after:
        wait = max(1, round(result.retry_after))
        response = render(request, "login.html", None, next=next,
                          error=f"Too many failed logins. Try again in {wait} s.")  # fmt: skip
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response
    if not result.ok:
        response = render(request, "login.html", None, next=next,
                          error="Unknown user or wrong password.")  # fmt: skip
        response.status_code = 401
        return response
    log_in(request, result.user.id, client)
    return back(_safe_next(next))


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    log_out(request)
    return back("/admin/login")


# ---------------------------------------------------------------------------- dashboard


def simulated_clock(conn: Any) -> datetime | None:
    """Where the project's simulated clock stands, or None for a project on real time."""
    stored = conn.execute(sa.select(state_t.c.value).where(state_t.c.key == CLOCK_KEY)).scalar()
    return datetime.fromisoformat(stored) if stored else None


def clock_now(project: Project) -> datetime:
    """The project's time: the simulated clock when the project runs on one."""
    with reading(project.db) as conn:
        return simulated_clock(conn) or project.now()


MAX_RANGE_DAYS = 366


def dashboard_counts(conn: Any) -> tuple[int, int]:
    from aftersale.admin.listening import dashboard_counts as counts

    return counts(conn)


@router.get("/")
def home(
    request: Request,
    user: PageUser,
    days: int = 30,
    since: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """The dashboard over the last 7, 30 or 90 days, or a range of days (``from``, ``to``)."""
    project = project_of(request)
    note = None
    if days not in PERIODS:
        note = f"No period of {days} days: choose {', '.join(map(str, PERIODS))}."
        days = 30
    with reading(project.db) as conn:
        simulated = simulated_clock(conn)
        now = simulated or project.now()
        span, problem = (None, None)
        if since or to:
            span, problem = day_range(since, to, now.date())
        until = None
        if span is not None:
            first, last = span
            days = (last - first).days + 1
            until = datetime.combine(last, time.max, tzinfo=UTC)
        board = dashboard(conn, now, days=days, heartbeat_now=datetime.now(UTC), until=until)
        ahead = upcoming_sends(conn, now)
        failed_events = count_failed(conn)
        alerts, attention = dashboard_counts(conn)
    chart = {"days": board.days, "per_day": board.per_day, "deferrals": board.deferrals_per_day,
             "upcoming": ahead}  # fmt: skip
    # Inside <script>: no "<" may survive, or a reason string could close the tag.
    data = json.dumps(chart).replace("<", "\\u003c")
    return render(request, "dashboard.html", user, board=board, chart=data, period=days,
                  periods=PERIODS, simulated=simulated is not None, upcoming=ahead,
                  # no red "0 alive" on a simulated project, where none need run
                  show_dispatchers=simulated is None or bool(board.dispatchers),
                  note=note or problem, failed_events=failed_events, span=span,
                  range_from=since or "", range_to=to or "",
                  alerts=alerts, attention=attention)  # fmt: skip


def day_range(
    since: str | None, to: str | None, today: date
) -> tuple[tuple[date, date] | None, str | None]:
    """``(first, last)`` day of a custom range, or None and why it cannot be shown."""
    parsed = []
    for name, text in (("from", since), ("to", to)):
        if not text:
            return None, f"A range needs both days: '{name}' is missing (YYYY-MM-DD)."
        try:
            parsed.append(date.fromisoformat(text.strip()))
        except ValueError:
            return None, f"'{name}' is not a day: {text!r}; write it as YYYY-MM-DD."
    first, last = parsed
    if first > last:
        return None, f"The range starts ({first}) after it ends ({last})."
    if last > today:
        return None, f"The range ends after today ({today}): nothing is decided there yet."
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        return None, f"A range covers at most {MAX_RANGE_DAYS} days."
    return (first, last), None


# ------------------------------------------------------------------------------ send log


LOG_VIEWS = {"decided": "Decided", "upcoming": "Upcoming"}


@router.get("/log")
def send_log(
    request: Request,
    user: PageUser,
    flt: Filter,
    view: Annotated[str, Query(max_length=20)] = "decided",
    after: Annotated[str | None, Query(max_length=80)] = None,
) -> HTMLResponse:
    """Decided messages, newest decision first, or the upcoming (planned) ones, soonest
    first; ``after`` is where the previous page ended."""
    project = project_of(request)
    if flt.status == "planned":  # planned messages are what the upcoming view shows
        view = "upcoming"
    problem = None
    rows: list[Any] = []
    with reading(project.db) as conn:
        if view not in LOG_VIEWS:
            problem = f"no view {view!r}; choose one of: {', '.join(LOG_VIEWS)}"
        else:
            read = upcoming_log if view == "upcoming" else decided_log
            rows = read(conn, flt, limit=PAGE_SIZE, after=_position(after))
            problem = None if rows else _filter_problem(project, conn, flt)
    older = None
    if len(rows) == PAGE_SIZE:
        last = rows[-1]
        at = last.due_at if view == "upcoming" else last.updated_at
        older = filter_query(flt, view=view, after=f"{at.isoformat() if at else ''}|{last.id}")
    until_day = f"{flt.until - timedelta(days=1):%Y-%m-%d}" if flt.until else None
    return render(request, "log.html", user, rows=rows, flt=flt, statuses=STATUSES, older=older,
                  export=filter_query(flt), view=view, views=LOG_VIEWS, after=after,
                  view_links={v: filter_query(flt, view=v) for v in LOG_VIEWS},
                  until_day=until_day, problem=problem)  # fmt: skip


def _position(after: str | None) -> tuple[datetime | None, int] | None:
    """``"<ISO time>|<id>"`` from an "older" link; None (the first page) when malformed."""
    if not after or "|" not in after:
        return None
    at, _, last_id = after.rpartition("|")
    try:
        moment = datetime.fromisoformat(at) if at else None
        if moment is not None:  # aware, in UTC (an offset that leaves the calendar: garbage)
            moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
        number = int(last_id)
    except (ValueError, OverflowError):
        return None
    return (moment, number) if 0 < number <= MAX_ROW_ID else None


def _filter_problem(project: Project, conn: Any, flt: LogFilter) -> str | None:
    """Why an empty result is a mistake rather than "no messages": the first filter value
    that names nothing known, with the valid choices."""
    defined = {}
    if flt.journey or flt.step:  # the definitions are read only when they are asked about
        loaded, _ = project.load_journeys()
        defined = {j.journey.id: [s.id for s in j.journey.steps] for j in loaded}
    return unknown_value(conn, flt, known_steps(conn, defined))


def csv_lines(project: Project, flt: LogFilter, *, mask: bool = False) -> Iterator[str]:
    """The filtered send log as CSV, produced row by row so any size streams."""
    buffer = io.StringIO()
    write_row = csv_writer(buffer, masked if mask else None)
    with reading(project.db) as conn:
        for count, row in enumerate(iter_log(conn, flt), 1):
            write_row(row)
            if count % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.get("/log.csv")
def send_log_csv(request: Request, user: PageUser, flt: Filter) -> StreamingResponse:
    return StreamingResponse(
        csv_lines(project_of(request), flt, mask=not user.is_admin),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sendlog.csv"'},
    )


# ------------------------------------------------------------------------------ customers


TIMES = ("local", "utc")


@router.get("/customers/{customer_id}")
def customer_page(
    request: Request,
    user: PageUser,
    customer_id: str,
    times: Annotated[str, Query(max_length=20)] = "local",
) -> HTMLResponse:
    """Everything about one customer; times in their zone, or in UTC with ``times=utc``."""
    project = project_of(request)
    problem = None
    if times not in TIMES:
        problem = f"no times {times!r}; choose one of: {', '.join(TIMES)}"
    with reading(project.db) as conn:
        timeline = customer_timeline(conn, customer_id)
        value = timeline and customer_value(project, conn, timeline.customer, clock_now(project))
    if timeline is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    return render(request, "customer.html", user, t=timeline, value=value, in_utc=times == "utc",
                  times_problem=problem,
                  contact=contact_view(user, timeline.customer), why_not=not_enrolled_text,
                  zone=_zone(timeline.customer.timezone, project.settings.policy.get(
                      "default_timezone", "Europe/Berlin")),
                  holidays=actions.holiday_calendar(lambda: project.policy, timeline.customer))  # fmt: skip


@router.get("/search")
def search(
    request: Request, user: PageUser, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The header box: one customer opens their page, several are listed."""
    with reading(project_of(request).db) as conn:
        found = find_customers(conn, q)
    if len(found) == 1:
        return back(f"/admin/customers/{quote(found[0].id, safe='')}")
    results = [(row, contact_view(user, row)) for row in found]
    return render(request, "search.html", user, q=q, results=results, limit=SEARCH_LIMIT)


# -------------------------------------------------------------------- sent messages


def _sent(request: Request, user: CurrentUser, message_id: int) -> SentContent:
    """A sent message's content, for admins only (viewers see the subject, no more)."""
    if not user.is_admin:
        raise HTTPException(403, "only admins open what was sent")
    if not 1 <= message_id <= MAX_ROW_ID:
        raise HTTPException(404, f"no sent message #{message_id}")
    project = project_of(request)
    with reading(project.db) as conn:
        try:
            content = sent_content(project, conn, message_id)
        except TemplateError as exc:
            raise HTTPException(409, f"the template no longer renders: {exc}") from exc
    if content is None:
        raise HTTPException(404, f"no sent message #{message_id}")
    return content


@router.get("/messages/{message_id}")
def sent_message(request: Request, user: PageUser, message_id: int) -> HTMLResponse:
    content = _sent(request, user, message_id)
    with reading(project_of(request).db) as conn:
        row = conn.execute(logged().where(messages_t.c.id == message_id)).one()
    return render(request, "message.html", user, m=row, content=content)


# The e-mail as it went out, framed by the message page: its own styles, no scripts, no
# forms, no remote images (opening it must not tell anyone it was opened).
SENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"
)


@router.get("/messages/{message_id}/sent.html")
def sent_message_html(request: Request, user: PageUser, message_id: int) -> HTMLResponse:
    content = _sent(request, user, message_id)
    body = content.html or f"<pre>{escape(content.text)}</pre>"
    headers = {"Content-Security-Policy": SENT_CSP, "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(body, headers=headers)


@router.get("/customers/{customer_id}/export.json")
def customer_export(request: Request, user: PageUser, customer_id: str) -> Response:
    require_admin(user)
    with reading(project_of(request).db) as conn:
        data = actions.gdpr_export(conn, customer_id)
    if data is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2, default=str),
        media_type="application/json",
        headers={"Content-Disposition": attachment(f"customer-{customer_id}.json")},
    )


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` for ``filename``, whatever characters an id brings: an
    ASCII stand-in, and the exact name percent-encoded (RFC 6266), never a raw CR or LF."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _customer_action(request: Request, user: CurrentUser, customer_id: str, act: Any) -> Response:
    require_admin(user)
    project = project_of(request)
    try:
        with project.db.begin() as conn:
            if not actions.exists(conn, customer_id):
                raise HTTPException(404, f"no customer {customer_id!r}")
            done = act(conn, project.now())
    except actions.CustomerActionError as exc:
        raise HTTPException(400, str(exc)) from exc
    # An erasure may give the customer a new id (when the old one was an address).
    return back(f"/admin/customers/{done if isinstance(done, str) else customer_id}")


ChannelForm = Annotated[str, Form(max_length=10)]


@router.post("/customers/{customer_id}/suppress")
def customer_suppress(
    request: Request,
    user: AdminUser,
    customer_id: str,
    channel: ChannelForm,
    reason: Annotated[str, Form(max_length=200)] = "admin",
) -> Response:
    return _customer_action(request, user, customer_id, lambda conn, now: actions.suppress(
        conn, customer_id, channel, reason, user.name, now))  # fmt: skip


@router.post("/customers/{customer_id}/lift")
def customer_lift(
    request: Request, user: AdminUser, customer_id: str, channel: ChannelForm
) -> Response:
    return _customer_action(request, user, customer_id, lambda conn, now: actions.lift_suppression(
        conn, customer_id, channel, user.name, now))  # fmt: skip


@router.post("/customers/{customer_id}/withdraw-consent")
def customer_withdraw(
    request: Request, user: AdminUser, customer_id: str, channel: ChannelForm
) -> Response:
    return _customer_action(request, user, customer_id, lambda conn, now: actions.withdraw_consent(
        conn, customer_id, channel, user.name, now))  # fmt: skip


@router.post("/customers/{customer_id}/erase")
def customer_erase(
    request: Request,
    user: AdminUser,
    customer_id: str,
    confirm: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if confirm != customer_id:
        raise HTTPException(400, "type the customer id to confirm the erasure")
    return _customer_action(request, user, customer_id, lambda conn, now: actions.erase(
        conn, customer_id, user.name, now))  # fmt: skip


# --------------------------------------------------------------------------------- events

EventStatus = Literal["pending", "applied", "failed"]


@router.get("/events")
def events_page(
    request: Request,
    user: PageUser,
    status: EventStatus = "failed",
    customer: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    with reading(project_of(request).db) as conn:
        rows = query_events(conn, status=status, customer=customer or None, limit=PAGE_SIZE)
    return render(request, "events.html", user, rows=rows, status=status, customer=customer,
                  statuses=EVENT_STATUSES)  # fmt: skip


@router.post("/events/retry")
def events_retry(
    request: Request,
    user: AdminUser,
    event_id: Annotated[str | None, Form(max_length=200)] = None,
    all_failed: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if not event_id and all_failed != "yes":
        raise HTTPException(400, "name an event, or retry all failed")
    with project_of(request).db.begin() as conn:
        retry_events(conn, None if all_failed == "yes" else [event_id])
    return back("/admin/events?status=failed")


# ------------------------------------------------------------------------------- journeys


@router.get("/journeys")
def journeys_page(request: Request, user: PageUser) -> HTMLResponse:
    project = project_of(request)
    with reading(project.db) as conn:
        journeys = list_journeys(conn)
        stats = {j.journey_id: journey_stats(conn, j.journey_id, prices(project))
                 for j in journeys}  # fmt: skip
    return render(request, "journeys.html", user, journeys=journeys, stats=stats)


def prices(project: Project) -> Prices:
    return project_prices(project)


@router.get("/journeys/{journey_id}")
def journey_page(request: Request, user: PageUser, journey_id: str) -> HTMLResponse:
    project = project_of(request)
    with reading(project.db) as conn:
        found = [j for j in list_journeys(conn) if j.journey_id == journey_id]
        if not found:
            raise HTTPException(404, f"no journey {journey_id!r}")
        stats = journey_stats(conn, journey_id, prices(project))
        [experiment] = experiments(conn, prices(project), journey_id)
    return render(request, "journey.html", user, j=found[0], stats=stats, exp=experiment,
                  currency=prices(project).currency,
                  flow=journey_flow(found[0].definition))  # fmt: skip


def _pause(request: Request, user: CurrentUser, journey_id: str, paused: bool) -> Response:
    require_admin(user)
    with project_of(request).db.begin() as conn:
        if not set_paused(conn, journey_id, paused):
            raise HTTPException(404, f"no journey {journey_id!r}")
    return back(f"/admin/journeys/{journey_id}")


@router.post("/journeys/{journey_id}/pause")
def journey_pause(request: Request, user: AdminUser, journey_id: str) -> Response:
    return _pause(request, user, journey_id, True)


@router.post("/journeys/{journey_id}/resume")
def journey_resume(request: Request, user: AdminUser, journey_id: str) -> Response:
    return _pause(request, user, journey_id, False)

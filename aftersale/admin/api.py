"""The JSON API under ``/api/admin``: the console's pages as data, same login, same roles.

Changes need the session's CSRF token in the ``X-CSRF-Token`` header (``GET /api/admin/me``
returns it), because the session cookie alone would let another site post on a user's behalf.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from aftersale.admin import customers as actions
from aftersale.admin.auth import CurrentUser, api_user, check_csrf, csrf_token, require_admin
from aftersale.admin.flow import journey_flow
from aftersale.admin.masking import masked
from aftersale.admin.pages import clock_now, prices, project_of
from aftersale.admin.shapes import (
    MAX_ROW_ID,
    customer_dict,
    decision_dict,
    log_filter,
    message_dict,
)
from aftersale.admin.terminal import experiments
from aftersale.eventlog import event_status, query_events
from aftersale.sendlog import LogFilter, customer_timeline, iso, query_log
from aftersale.stats import dashboard, journey_stats, list_journeys, set_paused
from campaigns.engine import retry_events
from campaigns.models import reading


class ViewerMasked(APIRoute):
    """Answers to a viewer have every address masked, in whatever field it hides."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def masked_handler(request: Request) -> Response:
            response = await handler(request)
            user = getattr(request.state, "user", None)
            if user is None or user.is_admin or response.media_type != "application/json":
                return response
            data = masked(json.loads(bytes(response.body)))
            return JSONResponse(data, status_code=response.status_code)

        return masked_handler


router = APIRouter(prefix="/api/admin", tags=["admin"], route_class=ViewerMasked)
ApiUser = Annotated[CurrentUser, Depends(api_user)]


async def api_admin(
    user: Annotated[CurrentUser, Depends(api_user)], _csrf: Annotated[None, Depends(check_csrf)]
) -> CurrentUser:
    require_admin(user)
    return user


ApiAdmin = Annotated[CurrentUser, Depends(api_admin)]


@router.get("/me")
def me(request: Request, user: ApiUser) -> dict[str, Any]:
    """Who is logged in, with the CSRF token for changes."""
    return {"name": user.name, "role": user.role, "csrf_token": csrf_token(request)}


@router.get("/log")
def send_log(
    request: Request,
    user: ApiUser,
    flt: Annotated[LogFilter, Depends(log_filter)],
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The send log, newest first; pass ``next_before_id`` as ``before_id`` for older rows."""
    with reading(project_of(request).db) as conn:
        rows = query_log(conn, flt, limit=limit, before_id=before_id)
    return {
        "messages": [message_dict(r) for r in rows],
        "next_before_id": rows[-1].id if len(rows) == limit else None,
    }


@router.get("/customers/{customer_id}")
def customer(request: Request, user: ApiUser, customer_id: str) -> dict[str, Any]:
    """A customer's timeline: events, enrolments, messages with their decisions."""
    with reading(project_of(request).db) as conn:
        t = customer_timeline(conn, customer_id)
    if t is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    return {
        "customer": customer_dict(user, t.customer),
        "suppressions": [
            {
                "channel": s.channel,
                "reason": s.reason,
                "source": s.source,
                "created_at": iso(s.created_at),
            }  # fmt: skip
            for s in t.suppressions
        ],
        "events": [
            {"id": e.id, "type": e.type, "at": iso(e.at), "source": e.source} for e in t.events
        ],
        "enrollments": [
            {
                "id": e.id,
                "journey": e.journey_id,
                "order": e.order_id,
                "status": e.status,
                "reason": e.reason,
                "enrolled_at": iso(e.enrolled_at),
            }  # fmt: skip
            for e in t.enrollments
        ],
        "not_enrolled": [
            {
                "event": n.event_id,
                "journey": n.journey_id,
                "at": iso(n.at),
                "reason": n.reason,
                "expression": n.expression,
            }  # fmt: skip
            for n in t.not_enrolled
        ],
        "messages": [
            {**message_dict(m), "decisions": [decision_dict(d) for d in t.decisions.get(m.id, [])]}
            for m in t.messages
        ],
    }


@router.get("/customers/{customer_id}/export")
def customer_export(request: Request, user: ApiUser, customer_id: str) -> dict[str, Any]:
    """GDPR export: everything stored about the customer (admins only)."""
    require_admin(user)
    with reading(project_of(request).db) as conn:
        data = actions.gdpr_export(conn, customer_id)
    if data is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    return data


class ChannelAction(BaseModel):
    """A customer action on one channel."""

    action: Literal["suppress", "lift", "withdraw_consent"]
    channel: Literal["email", "sms"]
    reason: str = Field(default="admin", max_length=200)


@router.post("/customers/{customer_id}/actions")
def customer_action(
    request: Request, user: ApiAdmin, customer_id: str, body: ChannelAction
) -> dict[str, str]:
    """Suppress or lift a channel, or withdraw consent for it."""
    project = project_of(request)
    _require_customer(request, customer_id)
    try:
        with project.db.begin() as conn:
            now = project.now()
            if body.action == "suppress":
                actions.suppress(conn, customer_id, body.channel, body.reason, user.name, now)
            elif body.action == "lift":
                actions.lift_suppression(conn, customer_id, body.channel, user.name, now)
            else:
                actions.withdraw_consent(conn, customer_id, body.channel, user.name, now)
    except actions.CustomerActionError as exc:
        raise HTTPException(400, str(exc)) from exc
    return {"status": "ok"}


def _require_customer(request: Request, customer_id: str) -> None:
    with reading(project_of(request).db) as conn:
        if customer_timeline(conn, customer_id) is None:
            raise HTTPException(404, f"no customer {customer_id!r}")


@router.post("/customers/{customer_id}/erase")
def customer_erase(request: Request, user: ApiAdmin, customer_id: str) -> dict[str, str]:
    """Anonymise the customer (GDPR erasure); messages and counts stay."""
    project = project_of(request)
    with project.db.begin() as conn:
        erased = actions.erase(conn, customer_id, user.name, project.now())
    if erased is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    return {"status": "erased", "id": erased}  # a new id when the old one was an address


@router.get("/events")
def events(
    request: Request,
    user: ApiUser,
    status: Literal["pending", "applied", "failed"] = "failed",
    customer: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Events by status (failed ones by default, with their error), newest first."""
    with reading(project_of(request).db) as conn:
        rows = query_events(conn, status=status, customer=customer or None, limit=limit)
    return {
        "events": [
            {"id": e.id, "type": e.type, "customer": e.customer_id, "at": iso(e.at),
             "source": e.source, "status": event_status(e), "error": e.error,
             "error_detail": e.error_detail, "failed_at": iso(e.failed_at)}
            for e in rows
        ]
    }  # fmt: skip


class EventRetry(BaseModel):
    """Failed events to queue again: some by id, or all of them."""

    ids: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=1000)
    all_failed: bool = False


@router.post("/events/retry")
def events_retry(request: Request, user: ApiAdmin, body: EventRetry) -> dict[str, Any]:
    """Queue failed events again; the next tick applies them."""
    if not body.ids and not body.all_failed:
        raise HTTPException(400, "name the failed events to retry, or set all_failed")
    with project_of(request).db.begin() as conn:
        queued = retry_events(conn, None if body.all_failed else body.ids)
    return {"queued": queued}


@router.get("/journeys")
def journeys(request: Request, user: ApiUser) -> list[dict[str, Any]]:
    """Every journey with its state, funnel and return."""
    project = project_of(request)
    with reading(project.db) as conn:
        return [
            _journey_dict(j, journey_stats(conn, j.journey_id, prices(project)))
            for j in list_journeys(conn)
        ]


@router.get("/journeys/{journey_id}")
def journey(request: Request, user: ApiUser, journey_id: str) -> dict[str, Any]:
    """One journey: its flow, funnel per step, skip and deferral reasons, return."""
    project = project_of(request)
    with reading(project.db) as conn:
        found = [j for j in list_journeys(conn) if j.journey_id == journey_id]
        if not found:
            raise HTTPException(404, f"no journey {journey_id!r}")
        stats = journey_stats(conn, journey_id, prices(project))
        [experiment] = experiments(conn, prices(project), journey_id)
    return {
        **_journey_dict(found[0], stats),
        **experiment.to_dict(),  # goal, holdout and variants, as `aftersale stats --format json`
        "currency": prices(project).currency,
        "flow": [n.to_dict() for n in journey_flow(found[0].definition)],
        "definition": found[0].definition,
    }


def _journey_dict(j: Any, stats: Any) -> dict[str, Any]:
    r = stats.returns
    return {
        "id": j.journey_id,
        "name": j.name,
        "version": j.version,
        "paused": j.paused,
        "funnel": [{"step": s.step, "channel": s.channel, **dict(s.stages())} for s in stats.steps],
        "skip_reasons": dict(stats.skip_reasons),
        "deferral_reasons": dict(stats.deferral_reasons),
        "returns": {
            "emails": r.emails,
            "sms_segments": r.sms_segments,
            "cost": str(r.cost),
            "orders": r.orders,
            "revenue": str(r.revenue),
            "roi": None if r.roi is None else str(r.roi),
        },
    }


@router.post("/journeys/{journey_id}/{action}")
def journey_pause(
    request: Request, user: ApiAdmin, journey_id: str, action: Literal["pause", "resume"]
) -> dict[str, Any]:
    """Pause or resume a journey; planned messages of a paused journey wait."""
    with project_of(request).db.begin() as conn:
        if not set_paused(conn, journey_id, action == "pause"):
            raise HTTPException(404, f"no journey {journey_id!r}")
    return {"id": journey_id, "paused": action == "pause"}


@router.get("/dashboard")
def dashboard_data(
    request: Request, user: ApiUser, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    """Messages and deferrals per day, backlog, failures and live dispatchers."""
    project = project_of(request)
    with reading(project.db) as conn:
        b = dashboard(conn, clock_now(project), days=days, heartbeat_now=datetime.now(UTC))
    return {
        "now": iso(b.now),
        "days": b.days,
        "messages_per_day": b.per_day,
        "deferrals_per_day": b.deferrals_per_day,
        "backlog": b.backlog,
        "oldest_due": iso(b.oldest_due),
        "oldest_age_seconds": b.oldest_age.total_seconds() if b.oldest_age else None,
        "failures_7d": b.failures,
        "dispatchers": [
            {
                "id": d.id,
                "hostname": d.hostname,
                "pid": d.pid,
                "seen_at": iso(d.seen_at),
                "leader": d.is_leader,
            }  # fmt: skip
            for d in b.dispatchers
        ],
        "totals": b.totals,
    }

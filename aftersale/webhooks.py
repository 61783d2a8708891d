"""Provider webhooks, short links, the events API and shop order webhooks.

Every webhook follows one flow: verify the signature on the raw body, parse, apply.
A missing or wrong signature is 403 and changes nothing; a body that cannot be parsed is
400; an event that is read but out of bounds (:mod:`campaigns.bounds`) is 422 naming its
field; a failure of our own is 500, so the provider retries (replays are no-ops). A secret
that is not configured is 503: the endpoint is off, not broken.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from aftersale.app import Project
from aftersale.ingestion import BodyInvalid, decode_events, ingest_events, ingest_shopify_order
from campaigns import bounds
from campaigns.bounds import RowInvalid
from campaigns.delivery import apply_delivery_events
from campaigns.models import Customer, Message, reading
from channels import ConfigurationError as ChannelConfigurationError
from channels import DeliveryEvent, EventType
from channels.sendgrid import (
    SIGNATURE_HEADER as SENDGRID_SIGNATURE,
)
from channels.sendgrid import (
    TIMESTAMP_HEADER as SENDGRID_TIMESTAMP,
)
from channels.sendgrid import (
    parse_sendgrid_events,
    verify_sendgrid_signature,
)
from channels.twilio import (
    SIGNATURE_HEADER as TWILIO_SIGNATURE,
)
from channels.twilio import (
    parse_twilio_inbound,
    parse_twilio_status,
    verify_twilio_signature,
)
from templates.links import parse_short_link

log = logging.getLogger(__name__)
router = APIRouter()
customers_t = Customer.__table__
messages_t = Message.__table__
SHOPIFY_HMAC = "X-Shopify-Hmac-Sha256"
SHOPIFY_WEBHOOK_ID = "X-Shopify-Webhook-Id"
# Messengers fetch a link to show its preview, and scanners to check it: those are not the
# customer's clicks. (iMessage's previewer introduces itself as facebookexternalhit.)
LINK_PREVIEWERS = re.compile(
    r"bot[/;)-]|crawler|spider|preview|facebookexternalhit|whatsapp|telegram|slack|discord",
    re.IGNORECASE,
)


def _project(request: Request) -> Project:
    return request.app.state.project


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _not_configured(setting: str) -> JSONResponse:
    return _problem(503, f"this endpoint is off: set AFTERSALE_{setting.upper()} to enable it")


async def _guarded(work: Callable[[], Any]) -> Any:
    """Run database work off the event loop; our own failure becomes a 500 to retry."""
    try:
        return await run_in_threadpool(work)
    except Exception:
        log.exception("applying a webhook failed")
        return _problem(500, "the event could not be stored; please retry")


def _apply(project: Project, events: list[DeliveryEvent]) -> dict[str, Any]:
    with project.db.begin() as conn:
        result = apply_delivery_events(conn, events, project.now())
    return {"applied": result.applied, "duplicates": result.duplicates,
            "unmatched": result.unmatched}  # fmt: skip


# ------------------------------------------------------------------------- SendGrid


@router.post("/webhooks/sendgrid", tags=["webhooks"])
async def sendgrid_events(request: Request) -> Response:
    """SendGrid's Event Webhook: a signed JSON array of events."""
    project = _project(request)
    key = project.settings.sendgrid_webhook_public_key
    if not key:
        return _not_configured("sendgrid_webhook_public_key")
    body = await request.body()
    signature = request.headers.get(SENDGRID_SIGNATURE, "")
    timestamp = request.headers.get(SENDGRID_TIMESTAMP, "")
    try:
        signed = verify_sendgrid_signature(key, body, signature, timestamp)
    except ChannelConfigurationError as exc:
        log.error("SendGrid webhook key: %s", exc)
        return _problem(503, "the SendGrid verification key is not valid")
    if not signed:
        return _problem(403, "signature missing or wrong")
    try:
        events = parse_sendgrid_events(body)
    except ValueError as exc:
        return _problem(400, str(exc))
    outcome = await _guarded(lambda: _apply(project, events))
    return outcome if isinstance(outcome, Response) else JSONResponse(outcome)


# --------------------------------------------------------------------------- Twilio


def _form(body: bytes) -> dict[str, str]:
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


def public_request_url(project: Project, request: Request) -> str:
    """The URL the provider called: the configured public URL, path and query as received.

    Behind a proxy the request's own host is not the one Twilio signed, so the public URL
    setting stands in for scheme, host and any path prefix.
    """
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = project.settings.public_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


async def _twilio_form(request: Request) -> tuple[dict[str, str], str] | Response:
    """The verified form and public URL of a Twilio webhook, or the refusal to send."""
    project = _project(request)
    token = project.settings.twilio_auth_token
    if not token:
        return _not_configured("twilio_auth_token")
    params = _form(await request.body())
    url = public_request_url(project, request)
    if not verify_twilio_signature(token, url, params, request.headers.get(TWILIO_SIGNATURE, "")):
        return _problem(403, "signature missing or wrong")
    return params, url


def twiml(message: str | None = None) -> Response:
    """A TwiML answer, with one reply message or none."""
    inner = f"<Message>{escape(message)}</Message>" if message else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Response(body, media_type="application/xml")


@router.post("/webhooks/twilio/status", tags=["webhooks"])
async def twilio_status(request: Request) -> Response:
    """Twilio's status callback for a message we sent."""
    verified = await _twilio_form(request)
    if isinstance(verified, Response):
        return verified
    params, url = verified
    try:
        event = parse_twilio_status(params, url)
    except ValueError as exc:
        return _problem(400, str(exc))
    outcome = await _guarded(lambda: _apply(_project(request), [event]))
    return outcome if isinstance(outcome, Response) else Response(status_code=204)


@router.post("/webhooks/twilio/inbound", tags=["webhooks"])
async def twilio_inbound(request: Request) -> Response:
    """An SMS a customer sent us: STOP and friends withdraw consent, START restores it."""
    verified = await _twilio_form(request)
    if isinstance(verified, Response):
        return verified
    params, _url = verified
    event = parse_twilio_inbound(params)
    if event is None:
        return twiml()
    if event.event_type == EventType.UNKNOWN and event.description == "help":
        return twiml(_project(request).settings.sms_help_text)
    outcome = await _guarded(lambda: _apply(_project(request), [event]))
    return outcome if isinstance(outcome, Response) else twiml()


# ------------------------------------------------------------------------ short links


@router.get("/l/{token}", tags=["links"])
async def follow_link(token: str, request: Request) -> RedirectResponse:
    """An SMS's short link: record the click on its message, then go to the full link.

    A link that is forged, mistyped or names no stored link leads to the shop's home page:
    whoever typed it from an SMS still arrives somewhere useful. Link previewers and
    scanners are redirected too, but their visits are not clicks.
    """
    project = _project(request)
    keys = project.signing_keys().verifying("links")
    found = next(filter(None, (parse_short_link(k, token) for k in keys)), None)
    person = not LINK_PREVIEWERS.search(request.headers.get("User-Agent", ""))
    target = await run_in_threadpool(_follow, project, *found, person) if found else None
    return RedirectResponse(target or project.settings.shop_url, status_code=302)


def _follow(project: Project, message_id: int, number: int, click: bool) -> str | None:
    """The full link behind link ``number`` of a message; its first ``click`` is recorded."""
    m = messages_t.c
    with reading(project.db) as conn:
        details = conn.execute(sa.select(m.details).where(m.id == message_id)).scalar()
    links = (details or {}).get("links")
    if not isinstance(links, list) or not 0 <= number < len(links):
        return None
    if not click:
        return str(links[number])
    try:
        with project.db.begin() as conn:
            conn.execute(
                messages_t.update()
                .where(m.id == message_id, m.clicked_at.is_(None))
                .values(clicked_at=project.now())
            )
    except sa.exc.OperationalError:  # the customer gets the page even if the count misses
        log.warning("could not record a click on message %s", message_id, exc_info=True)
    return str(links[number])


# ------------------------------------------------------------------------ events API


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@router.post("/api/events", tags=["api"])
async def post_events(request: Request) -> JSONResponse:
    """Events as in the import contract: a JSON object, a JSON array or JSON lines."""
    project = _project(request)
    token = project.settings.api_token
    if not token:
        return _not_configured("api_token")
    if not _bearer_ok(request, token):
        response = _problem(401, "a valid bearer token is required")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    try:
        items = decode_events(await request.body(), request.headers.get("Content-Type", ""))
    except BodyInvalid as exc:
        return _problem(400, str(exc))
    report = await _guarded(lambda: ingest_events(project.db, items))
    if isinstance(report, Response):
        return report
    return JSONResponse(report.as_dict(), status_code=422 if report.count("error") else 200)


# --------------------------------------------------------------------------- Shopify


def shopify_hmac(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256`` for a body: base64 of its HMAC-SHA256 with the secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@router.post("/webhooks/shopify/orders-create", tags=["webhooks"])
async def shopify_order_created(request: Request) -> JSONResponse:
    """Shopify's ``orders/create``: the customer is upserted, the order becomes a purchase."""
    project = _project(request)
    secret = project.settings.shopify_webhook_secret
    if not secret:
        return _not_configured("shopify_webhook_secret")
    body = await request.body()
    given = request.headers.get(SHOPIFY_HMAC, "").encode()
    if not hmac.compare_digest(shopify_hmac(secret, body).encode(), given):
        return _problem(403, "signature missing or wrong")
    try:
        order = bounds.json_value(body.decode("utf-8", "replace"), nul=False)
    except RowInvalid as exc:
        return _problem(400, f"the body is not JSON: {exc.reason}")
    if not isinstance(order, dict):
        return _problem(400, "the body must be an order object")
    if (found := bounds.unstorable_path(order)) is not None:
        return JSONResponse({"error": found[1], "field": found[0]}, status_code=422)
    return await _guarded(lambda: _shopify(project, order, request.headers.get(SHOPIFY_WEBHOOK_ID)))


def _shopify(project: Project, order: dict[str, Any], webhook_id: str | None) -> JSONResponse:
    s = project.settings
    try:
        result = ingest_shopify_order(
            project.db, order, webhook_id,
            region=s.default_region, default_locale=s.default_locale, now=project.now(),
            guest_key=project.signing_keys().key("guests"),
        )  # fmt: skip
    except RowInvalid as exc:
        return JSONResponse({"error": exc.reason, "field": exc.field}, status_code=422)
    return JSONResponse(result.as_dict())

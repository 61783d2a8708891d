"""The pages behind a rating link: choose, confirm with a button, then say more if you like.

``GET /rate/<token>/<value>`` only shows the choice (mail systems' link scanners follow
links); the page's button POSTs to ``/rate/<token>`` and that stores the rating as a
``satisfaction_rated`` event, once per message (:mod:`campaigns.ratings`). The thank-you
page takes an optional comment (``POST /rate/<token>/comment``), kept with the rating.

Refused with a page that says why, and nothing stored: a forged or malformed link (404), a
value outside 1–5 (400), a link already used (409), a comment without a rating or a second
comment (409), a comment over 1,000 characters (400).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from aftersale.admin.pages import clock_now
from aftersale.app import Project
from campaigns import bounds
from campaigns.importing import event_row, insert_ignore_statement
from campaigns.models import Customer, Event, Message, reading
from campaigns.ratings import MAX_RATING, MIN_RATING, message_of, rating_event_id, verify

router = APIRouter()
LANGUAGES = ("de", "en")
customers_t = Customer.__table__
events_t = Event.__table__
messages_t = Message.__table__
_pages = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("pages")),
    autoescape=select_autoescape(["html"]),
)


@dataclass(frozen=True)
class Asked:
    """The message a valid rating link belongs to, and its customer."""

    message_id: int
    customer_id: str
    lang: str


def _project(request: Request) -> Project:
    return request.app.state.project


def _lang(locale: str | None, fallback: str) -> str:
    for candidate in (locale, fallback):
        lang = (candidate or "").replace("_", "-").split("-", 1)[0].lower()
        if lang in LANGUAGES:
            return lang
    return "en"


def _page(project: Project, state: str, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    html = _pages.get_template(f"rating.{lang}.html").render(
        state=state, lang=lang, shop=project.settings.shop_name, **ctx
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _asked(project: Project, token: str) -> Asked | None:
    message_id = message_of(token)
    if message_id is None:
        return None
    m, c = messages_t.c, customers_t.c
    with reading(project.db) as conn:
        row = conn.execute(
            sa.select(m.customer_id, c.locale)
            .join(customers_t, c.id == m.customer_id)
            .where(m.id == message_id)
        ).first()
    if row is None:
        return None
    keys = project.signing_keys().verifying("ratings")
    if not verify(keys, token, message_id, row.customer_id):
        return None
    return Asked(message_id, row.customer_id, _lang(row.locale, project.settings.default_locale))


def _stored_rating(project: Project, asked: Asked) -> Any:
    with reading(project.db) as conn:
        return conn.execute(
            sa.select(events_t.c.payload).where(events_t.c.id == rating_event_id(asked.message_id))
        ).first()


def _value(raw: Any) -> int | None:
    try:
        value = int(str(raw).strip())
    except ValueError:
        return None
    return value if MIN_RATING <= value <= MAX_RATING else None


async def _valid(request: Request, token: str) -> tuple[Project, Asked | None, str]:
    project = _project(request)
    asked = await run_in_threadpool(_asked, project, token)
    fallback = request.headers.get("Accept-Language", "") or project.settings.default_locale
    return project, asked, asked.lang if asked else _lang(fallback, "en")


@router.get("/rate/{token}/{value}", response_class=HTMLResponse, tags=["ratings"])
async def rating_page(token: str, value: str, request: Request) -> HTMLResponse:
    """Show the chosen rating with a button; a GET never rates (link scanners)."""
    project, asked, lang = await _valid(request, token)
    if asked is None:
        return _page(project, "invalid", lang, 404)
    chosen = _value(value)
    if chosen is None:
        return _page(project, "out_of_range", lang, 400)
    if await run_in_threadpool(_stored_rating, project, asked) is not None:
        return _page(project, "used", lang, 409)
    return _page(project, "confirm", lang, value=chosen, action=f"/rate/{token}")


@router.post("/rate/{token}", response_class=HTMLResponse, tags=["ratings"])
async def rate(token: str, request: Request) -> HTMLResponse:
    """Store the rating the form confirms, once per message."""
    project, asked, lang = await _valid(request, token)
    if asked is None:
        return _page(project, "invalid", lang, 404)
    form = await request.form()
    value = _value(form.get("value"))
    if value is None:
        return _page(project, "out_of_range", lang, 400)
    stored = await run_in_threadpool(_store_rating, project, asked, value)
    if not stored:
        return _page(project, "used", lang, 409)
    return _page(project, "thanks", lang, value=value, action=f"/rate/{token}/comment")


def _store_rating(project: Project, asked: Asked, value: int) -> bool:
    row = event_row(
        {
            "id": rating_event_id(asked.message_id),
            "type": "satisfaction_rated",
            "customer": asked.customer_id,
            "at": clock_now(project).isoformat(),
            "value": value,
            "message": asked.message_id,
        },
        source="rating",
    )
    with project.db.begin() as conn:
        statement = insert_ignore_statement(conn, events_t, ("id",))
        return bool(conn.execute(statement, [row]).rowcount)


@router.post("/rate/{token}/comment", response_class=HTMLResponse, tags=["ratings"])
async def comment(token: str, request: Request) -> HTMLResponse:
    """Keep the thank-you page's comment with the rating (one comment per rating)."""
    project, asked, lang = await _valid(request, token)
    if asked is None:
        return _page(project, "invalid", lang, 404)
    form = await request.form()
    text = str(form.get("comment") or "").strip()
    if len(text) > bounds.MAX_TEXT:
        return _page(project, "too_long", lang, 400, limit=bounds.MAX_TEXT)
    if not text:
        return _page(project, "done", lang)
    kept = await run_in_threadpool(_store_comment, project, asked, text)
    return _page(project, "done", lang) if kept else _page(project, "used", lang, 409)


def _store_comment(project: Project, asked: Asked, text: str) -> bool:
    event_id = rating_event_id(asked.message_id)
    with project.db.begin() as conn:
        payload = conn.execute(
            sa.select(events_t.c.payload).where(events_t.c.id == event_id)
        ).scalar()
        if payload is None or payload.get("comment"):
            return False
        comment = bounds.text(text, "comment")
        conn.execute(
            events_t.update()
            .where(events_t.c.id == event_id)
            .values(payload={**payload, "comment": comment})
        )
    return True

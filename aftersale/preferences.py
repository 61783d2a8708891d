"""The preference page: which marketing e-mail a customer keeps, by topic, or none at all.

Routes (no cookies, no scripts; the signed token in the path is the customer's only proof,
as in the unsubscribe link: see :mod:`campaigns.consent`)::

    GET  /unsubscribe/<token>   the page (the footer's and List-Unsubscribe's link)
    GET  /preferences/<token>   the same page (templates' ``links.preferences``)
    POST /preferences/<token>   save the ticked topics (form field ``topic``, repeated)
    POST /unsubscribe/<token>   leave all marketing e-mail: the page's button and the
                                RFC 8058 one-click POST (``List-Unsubscribe=One-Click``)

A GET never changes anything: link scanners follow links. Saving topics with none ticked
leaves all marketing e-mail, as the button does; saving with some ticked gives e-mail
consent (the customer asked for it from their own mailbox) for those topics only.
Transactional mail (order and service confirmations) needs no consent and is not shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from aftersale.app import Project
from campaigns.consent import TOPICS, chosen_topics, verify_unsubscribe_token, with_topics
from campaigns.delivery import set_consent
from campaigns.models import Customer, reading

router = APIRouter()
customers_t = Customer.__table__
PAGE_LANGUAGES = ("de", "en")
SOURCE = "preference_page"
_pages = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("pages")),
    autoescape=select_autoescape(["html"]),
)


def _project(request: Request) -> Project:
    return request.app.state.project


def page_language(locale: str | None, fallback: str) -> str:
    """The page's language: the customer's, else the project's default, else English."""
    for candidate in (locale, fallback):
        lang = (candidate or "").replace("_", "-").split("-", 1)[0].lower()
        if lang in PAGE_LANGUAGES:
            return lang
    return "en"


def _page(project: Project, state: str, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    template = _pages.get_template(f"unsubscribe.{lang}.html")
    html = template.render(state=state, lang=lang, shop=project.settings.shop_name, **ctx)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _customer_for(project: Project, token: str) -> Any | None:
    keys = project.signing_keys().verifying("unsubscribe")
    customer_id = next(filter(None, (verify_unsubscribe_token(k, token) for k in keys)), None)
    if customer_id is None:
        return None
    with reading(project.db) as conn:
        return conn.execute(sa.select(customers_t).where(customers_t.c.id == customer_id)).first()


def _invalid(project: Project, request: Request) -> HTMLResponse:
    wanted = request.headers.get("Accept-Language", "")
    return _page(project, "invalid", page_language(wanted, project.settings.default_locale), 404)


def _choices(project: Project, customer: Any, token: str, state: str) -> HTMLResponse:
    lang = page_language(customer.locale, project.settings.default_locale)
    kept = chosen_topics(customer.email_consent, customer.topic_consent)
    return _page(project, state, lang, email=customer.email, token=token, topics=TOPICS,
                 kept=kept, subscribed=bool(customer.email_consent))  # fmt: skip


async def _show(token: str, request: Request) -> HTMLResponse:
    project = _project(request)
    customer = await run_in_threadpool(_customer_for, project, token)
    if customer is None:
        return _invalid(project, request)
    return _choices(project, customer, token, "choose")


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """The preference page; a GET never unsubscribes, since link scanners follow links."""
    return await _show(token, request)


@router.get("/preferences/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
async def preferences_page(token: str, request: Request) -> HTMLResponse:
    """The preference page, from a template's ``links.preferences``."""
    return await _show(token, request)


@router.post("/preferences/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
async def save_preferences(token: str, request: Request) -> HTMLResponse:
    """Keep marketing e-mail about the ticked topics only; none ticked leaves all."""
    project = _project(request)
    customer = await run_in_threadpool(_customer_for, project, token)
    if customer is None:
        return _invalid(project, request)
    form = await request.form()
    kept = {str(t) for t in form.getlist("topic")} & set(TOPICS)
    if not kept:
        return await unsubscribe(token, request)

    def save() -> Any:
        now = project.now()
        with project.db.begin() as conn:
            if not customer.email_consent:
                set_consent(conn, [customer.id], "email", True, SOURCE, now)
            conn.execute(
                customers_t.update()
                .where(customers_t.c.id == customer.id)
                .values(
                    topic_consent=with_topics(customer.topic_consent, "email", kept), updated_at=now
                )  # fmt: skip
            )
        return _customer_for(project, token)

    saved = await run_in_threadpool(save)
    return _choices(project, saved, token, "saved")


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """Leave all marketing e-mail: the page's button and RFC 8058 one-click POSTs."""
    project = _project(request)
    customer = await run_in_threadpool(_customer_for, project, token)
    if customer is None:
        return _invalid(project, request)

    def withdraw() -> None:
        with project.db.begin() as conn:
            set_consent(conn, [customer.id], "email", False, "unsubscribe_link", project.now())

    await run_in_threadpool(withdraw)
    lang = page_language(customer.locale, project.settings.default_locale)
    return _page(project, "done", lang, email=customer.email, token=token)

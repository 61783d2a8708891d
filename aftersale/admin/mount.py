"""Wiring the console into the web app: routes, static files, sessions, login throttle."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from aftersale.accounts import LoginThrottle
from aftersale.admin import api, forecast_page, listening, pages
from aftersale.admin.auth import LoginRequired
from aftersale.app import Project
from templates.signing import purpose_key

STATIC = Path(__file__).with_name("static")


def mount_admin(app: FastAPI, project: Project) -> None:
    """Add the console's routes, static files, session cookie and login throttle to ``app``."""
    # Without a configured key sessions still work, but only until the process restarts.
    secret = project.settings.secret_key or secrets.token_urlsafe(32)
    key = purpose_key(secret, "sessions")  # never the key of anything a customer holds
    app.add_middleware(
        SessionMiddleware,
        secret_key=key,
        session_cookie="aftersale_session",
        max_age=project.settings.session_max_age,
        same_site="lax",
        https_only=_secure(project),
    )
    app.state.login_throttle = LoginThrottle()
    app.include_router(pages.router)
    app.include_router(forecast_page.router)
    app.include_router(listening.router)
    app.include_router(api.router)
    app.mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static")
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(StarletteHTTPException, _not_found_page)

    @app.get("/admin", include_in_schema=False)
    def admin_root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/admin/static/favicon.svg", status_code=301)


def _secure(project: Project) -> bool:
    configured = project.settings.session_secure_cookie
    return project.settings.public_url.startswith("https://") if configured is None else configured


def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/admin/login?{_next(exc.next_url)}", status_code=303)


async def _not_found_page(request: Request, exc: Exception) -> Response:
    """A page for people: a browser asking for something that is not there (an unknown
    customer, a mistyped address) gets a page with the search box, not JSON."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 404 or not _for_a_browser(request):
        return await http_exception_handler(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != "Not Found" else None
    return pages.templates.TemplateResponse(
        request, "404.html", {"user": None, "detail": detail}, status_code=404
    )


def _for_a_browser(request: Request) -> bool:
    path = request.url.path
    # Customers' pages (unsubscribe, short links) keep their own answers; APIs keep JSON.
    if path.startswith(("/api/", "/webhooks/", "/unsubscribe/", "/l/", "/openapi.json")):
        return False
    return path.startswith("/admin") or "text/html" in request.headers.get("accept", "")


def _next(url: str) -> str:
    return urlencode({"next": url})

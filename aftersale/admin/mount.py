"""Wiring the console into the web app: routes, static files, sessions, login throttle."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from aftersale.accounts import LoginThrottle
from aftersale.admin import api, pages
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
    app.include_router(api.router)
    app.mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static")
    app.add_exception_handler(LoginRequired, _to_login)

    @app.get("/admin", include_in_schema=False)
    def admin_root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)


def _secure(project: Project) -> bool:
    configured = project.settings.session_secure_cookie
    return project.settings.public_url.startswith("https://") if configured is None else configured


def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/admin/login?{_next(exc.next_url)}", status_code=303)


def _next(url: str) -> str:
    return urlencode({"next": url})

"""Who is asking: session login, roles and CSRF checks for the admin console.

The session lives in a cookie signed with the project's ``secret_key`` (Starlette's
SessionMiddleware, itsdangerous underneath). It holds the user id and a per-session CSRF
token; the user row is read again on every request so that a changed role or a deleted
user takes effect at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request

from aftersale.accounts import get_user

SESSION_USER = "uid"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class CurrentUser:
    """The logged-in user as the console needs it."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginRequired(Exception):
    """Raised by page routes without a session; answered with a redirect to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def _session_user(request: Request) -> CurrentUser | None:
    user_id = request.session.get(SESSION_USER)
    if not isinstance(user_id, int):
        return None
    row = get_user(request.app.state.project.db, user_id)
    if row is None:
        request.session.clear()
        return None
    return CurrentUser(row.id, row.name, row.role)


def page_user(request: Request) -> CurrentUser:
    """Dependency for HTML pages: the user, or a redirect to the login page."""
    user = _session_user(request)
    if user is None:
        raise LoginRequired(
            str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        )
    return user


def api_user(request: Request) -> CurrentUser:
    """Dependency for JSON endpoints: the user, or 401."""
    user = _session_user(request)
    if user is None:
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "Cookie"})
    return user


async def check_csrf(request: Request) -> None:
    """Refuse a POST whose form field or X-CSRF-Token header does not carry the session token."""
    expected = request.session.get(SESSION_CSRF)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token")


def require_admin(user: CurrentUser) -> None:
    """Viewers may look but not change anything."""
    if not user.is_admin:
        raise HTTPException(403, "viewers cannot change anything")


def log_in(request: Request, user_id: int) -> None:
    """Start a fresh session (new CSRF token) for ``user_id``."""
    request.session.clear()
    request.session[SESSION_USER] = user_id
    csrf_token(request)


def log_out(request: Request) -> None:
    request.session.clear()

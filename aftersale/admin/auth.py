"""Who is asking: session login, roles and CSRF checks for the admin console.

The cookie (Starlette's SessionMiddleware, signed with the ``sessions`` key derived from
``secret_key``) holds a random session token and a per-session CSRF token. The session
itself is a row on the server (:func:`aftersale.accounts.start_session`): logout, a new
password or role and ``users remove`` delete it, an idle session expires, and the user row
is read again on every request so that a changed role takes effect at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException, Request

from aftersale.accounts import end_session, session_user, start_session

SESSION_ID = "sid"
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
    token = request.session.get(SESSION_ID)
    if not isinstance(token, str):
        return None
    project = request.app.state.project
    s = project.settings
    row = session_user(
        project.db,
        token,
        project.now(),
        idle=timedelta(seconds=s.session_idle_timeout),
        max_age=timedelta(seconds=s.session_max_age),
    )
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
    request.state.user = user  # the API masks addresses in a viewer's answers
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


def log_in(request: Request, user_id: int, client: str = "") -> None:
    """Start a fresh session (new token, new CSRF token) for ``user_id``."""
    project = request.app.state.project
    token = start_session(project.db, user_id, project.now(), client)
    request.session.clear()
    request.session[SESSION_ID] = token
    csrf_token(request)


def log_out(request: Request) -> None:
    """End the session on the server, so a copy of the cookie is worth nothing."""
    token = request.session.get(SESSION_ID)
    if isinstance(token, str):
        end_session(request.app.state.project.db, token)
    request.session.clear()

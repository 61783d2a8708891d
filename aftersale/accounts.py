"""Admin console accounts: argon2-hashed passwords, roles and login throttling.

A failed login makes the next attempt of that user name from that client address wait
(:class:`LoginThrottle`): a guesser slows down, the owner elsewhere does not. Waiting is
never done by sleeping the server thread: a throttled attempt is refused at once with the number of
seconds left, which the web layer turns into ``429`` with ``Retry-After``.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from campaigns.models import AdminSession, User, reading

users_t = User.__table__
sessions_t = AdminSession.__table__
# A session's last use is written at most this often: reading a page is not a write.
SESSION_TOUCH = timedelta(seconds=60)
ROLES = ("admin", "viewer")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both paths cost one argon2 check.
    Made on first use: hashing costs a tenth of a second, which every command paid at start."""
    return _hasher.hash("not a password of anyone")


class AccountError(ValueError):
    """A user cannot be created as asked (bad role, empty password, name taken)."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises for a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def lockout_seconds(failures: int, *, free: int = 5, base: float = 1.0, cap: float = 60) -> float:
    """How long the next attempt waits after ``failures`` failed ones: doubling, up to ``cap``.

    A slowdown, never a lock: at most a minute between guesses.
    """
    if failures < free:
        return 0.0
    return min(cap, base * 2 ** (failures - free))


def create_user(db: Engine, name: str, password: str, role: str, now: datetime) -> int:
    """Add a user (or replace the password and role of an existing one); returns its id."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip() or len(password) < 8:
        raise AccountError("a user needs a name and a password of at least 8 characters")
    values = {"password_hash": hash_password(password), "role": role, "failed_logins": 0}
    with db.begin() as conn:
        existing = conn.execute(sa.select(users_t.c.id).where(users_t.c.name == name)).scalar()
        if existing is not None:
            conn.execute(users_t.update().where(users_t.c.id == existing).values(values))
            _end_sessions(conn, existing)  # a new password or role: log in again
            return existing
        return conn.execute(
            users_t.insert().values(name=name, created_at=now, **values)
        ).inserted_primary_key[0]


def set_password(db: Engine, name: str, password: str) -> None:
    """Give ``name`` a new password; every session of the user ends."""
    if len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    with db.begin() as conn:
        user_id = _user_id(conn, name)
        conn.execute(
            users_t.update()
            .where(users_t.c.id == user_id)
            .values(password_hash=hash_password(password), failed_logins=0)
        )
        _end_sessions(conn, user_id)


def remove_user(db: Engine, name: str) -> None:
    """Delete ``name`` and end its sessions at once."""
    with db.begin() as conn:
        user_id = _user_id(conn, name)
        _end_sessions(conn, user_id)
        conn.execute(users_t.delete().where(users_t.c.id == user_id))


def list_users(db: Engine) -> list[Any]:
    """Every user with its number of live sessions (``sessions``), by name."""
    live = (
        sa.select(sa.func.count())
        .where(sessions_t.c.user_id == users_t.c.id)
        .scalar_subquery()
        .label("sessions")
    )
    with reading(db) as conn:
        return list(conn.execute(sa.select(users_t, live).order_by(users_t.c.name)))


def _user_id(conn: sa.Connection, name: str) -> int:
    found = conn.execute(sa.select(users_t.c.id).where(users_t.c.name == name)).scalar()
    if found is None:
        raise AccountError(f"no user {name!r}")
    return found


def _end_sessions(conn: sa.Connection, user_id: int) -> None:
    conn.execute(sessions_t.delete().where(sessions_t.c.user_id == user_id))


def get_user(db: Engine, user_id: int) -> Any | None:
    """The ``users`` row with ``user_id``, or None."""
    with reading(db) as conn:
        return conn.execute(sa.select(users_t).where(users_t.c.id == user_id)).first()


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one login attempt: a user, or a refusal (with a wait if throttled)."""

    user: Any | None = None
    retry_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.user is not None


class LoginThrottle:
    """Failed logins per (user name, client address), and per address alone, in memory.

    Counting per pair means a guesser elsewhere never slows the owner down; the count per
    address (more generous) slows one address spraying many names. Unknown names are
    counted exactly like known ones, so the answers never tell which names exist.
    """

    def __init__(
        self, *, free: int = 5, free_per_address: int = 20,
        clock: Callable[[], datetime] | None = None,
    ) -> None:  # fmt: skip
        self.free = free
        self.free_per_address = free_per_address
        self._clock = clock or (lambda: datetime.now(UTC))
        self._failures: dict[tuple[str, str], tuple[int, datetime]] = {}
        self._lock = threading.Lock()

    def wait(self, name: str, client: str) -> float:
        """Seconds before ``name`` may be tried again from ``client`` (0: now)."""
        now = self._clock()
        with self._lock:
            pair = self._failures.get((name.casefold(), client))
            address = self._failures.get(("", client))
        waits = [
            _remaining(lockout_seconds(count, free=free), last, now)
            for found, free in ((pair, self.free), (address, self.free_per_address))
            if found
            for count, last in [found]
        ]
        return max(waits, default=0.0)

    def failed(self, name: str, client: str) -> None:
        now = self._clock()
        with self._lock:
            for key in ((name.casefold(), client), ("", client)):
                count, _ = self._failures.pop(key, (0, now))
                self._failures[key] = (count + 1, now)  # re-inserted: newest last
            while len(self._failures) > 10_000:  # bound memory under a spray of addresses
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((name.casefold(), client), None)


def _remaining(lockout: float, last: datetime | None, now: datetime) -> float:
    if not lockout or last is None:
        return 0.0
    return max(0.0, (last + timedelta(seconds=lockout) - now).total_seconds())


def authenticate(
    db: Engine, name: str, password: str, *, client: str, throttle: LoginThrottle, now: datetime
) -> LoginResult:
    """Check a login; throttled attempts are refused before the password is even looked at."""
    wait = throttle.wait(name, client)
    if wait > 0:
        return LoginResult(retry_after=wait)
    with db.begin() as conn:
        user = conn.execute(sa.select(users_t).where(users_t.c.name == name)).first()
        # An unknown name costs the same argon2 check as a wrong password.
        matches = verify_password(user.password_hash if user else _dummy_hash(), password)
        if user is None or not matches:
            if user is not None:  # kept for `users list`; it locks nothing
                conn.execute(
                    users_t.update()
                    .where(users_t.c.id == user.id)
                    .values(failed_logins=users_t.c.failed_logins + 1, last_failed_at=now)
                )
            throttle.failed(name, client)
            return LoginResult()
        conn.execute(
            users_t.update()
            .where(users_t.c.id == user.id)
            .values(failed_logins=0, last_login_at=now)
        )
    throttle.succeeded(name, client)
    return LoginResult(user=user)


# ------------------------------------------------------------------------- sessions


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Engine, user_id: int, now: datetime, client: str = "") -> str:
    """A new session for ``user_id``; returns the token the cookie carries (stored hashed)."""
    token = secrets.token_urlsafe(32)
    with db.begin() as conn:
        conn.execute(
            sessions_t.insert().values(
                id=_digest(token), user_id=user_id, created_at=now, last_seen_at=now,
                client=client[:100],
            )
        )  # fmt: skip
    return token


def session_user(
    db: Engine, token: str, now: datetime, *, idle: timedelta, max_age: timedelta
) -> Any | None:
    """The user of a live session, or None: unknown, idle too long, too old, or ended."""
    key = _digest(token)
    query = (
        sa.select(sessions_t.c.created_at, sessions_t.c.last_seen_at, users_t)
        .join(users_t, users_t.c.id == sessions_t.c.user_id)
        .where(sessions_t.c.id == key)
    )
    with reading(db) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    if now - row.last_seen_at > idle or now - row.created_at > max_age:
        end_session(db, token)
        return None
    if now - row.last_seen_at > SESSION_TOUCH:
        with db.begin() as conn:
            conn.execute(sessions_t.update().where(sessions_t.c.id == key).values(last_seen_at=now))
    return row


def end_session(db: Engine, token: str) -> None:
    """End one session (logout)."""
    with db.begin() as conn:
        conn.execute(sessions_t.delete().where(sessions_t.c.id == _digest(token)))

"""Which dispatcher does the housekeeping: applying events, expiring leases, pruning heartbeats.

Every dispatcher sends; exactly one at a time leads. On PostgreSQL the leader holds a
session-level advisory lock on a connection of its own: when its process dies, the server
drops the connection and the lock with it, and the next dispatcher to ask takes over. On a
SQLite file the same is done with an exclusive ``flock`` on a file beside the database,
which the kernel releases when the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
# Outside the 32-bit range the per-customer locks use, so they never collide.
LEADER_LOCK_KEY = 0x6166_7465_7273_616C


class Leadership(Protocol):
    """Answers "do I lead?"; asking again re-tries to take the lead when nobody holds it."""

    def holds(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLeadership:
    """Leadership by ``pg_try_advisory_lock`` held on a dedicated connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def holds(self) -> bool:
        """True while our lock connection lives; otherwise try to take the lock."""
        if self._conn is not None:
            if self._alive(self._conn):
                return True
            log.warning("lost the leader connection; trying to lead again")
            self._drop()
        return self._acquire()

    def _alive(self, conn: Connection) -> bool:
        try:
            conn.execute(sa.text("select 1"))
            return True
        except sa.exc.DBAPIError:
            return False

    def _acquire(self) -> bool:
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.DBAPIError:
            return False
        try:
            taken = conn.execute(sa.select(sa.func.pg_try_advisory_lock(LEADER_LOCK_KEY))).scalar()
        except sa.exc.DBAPIError:
            taken = False
        if taken:
            self._conn = conn
            log.info("leading: applying events and expiring leases")
            return True
        conn.close()
        return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Never hand a connection that may still hold the lock back to the pool.
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.invalidate()

    def release(self) -> None:
        """Give up the lead (on shutdown), so another dispatcher takes over at once."""
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.execute(sa.select(sa.func.pg_advisory_unlock(LEADER_LOCK_KEY)))
            self._drop()


class FileLeadership:
    """Leadership by an exclusive ``flock`` on ``path``; the kernel frees it on death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def holds(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self.path, "ab")  # noqa: SIM115 - kept open while we lead
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class SoleLeadership:
    """A database only one process can use (in-memory SQLite): that process leads."""

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        pass


def leadership_for(engine: Engine) -> Leadership:
    """The way dispatchers sharing ``engine``'s database agree on a leader."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLeadership(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLeadership(Path(os.fspath(database) + ".leader"))
    return SoleLeadership()

"""The database engine and its migrations.

SQLite runs in WAL mode and every writing transaction starts with ``BEGIN IMMEDIATE`` so
that two dispatchers can never claim the same row; a connection from
:func:`campaigns.models.reading` begins ``DEFERRED`` and never holds the write lock.
PostgreSQL is chosen by the URL alone. Alembic migrations are applied on start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from campaigns.models import READ_ONLY

MIGRATIONS = Path(__file__).with_name("migrations")


def create_engine(url: str, **kw: Any) -> Engine:
    """An engine for ``url`` with the per-dialect settings aftersale relies on."""
    if url.startswith("sqlite"):
        _create_private(sa.engine.make_url(url).database)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kw)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True, **kw)


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only (SQLite gives its journal and
    WAL files the database's permissions); an existing file keeps its own."""
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileNotFoundError, FileExistsError):  # SQLite reports a bad path
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint the WAL every 10,000 pages (40 MB), not every 1,000: a dispatcher's
        # batch dirties over a thousand pages, so each of its commits also copied the WAL
        # into the database and synced it. Pages written again and again (the due-time
        # index) are now copied once: commits take half the time.
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        reader = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if reader else "BEGIN IMMEDIATE")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration (a no-op when it already is)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn, _foreign_keys_off(conn):
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migrating left rows without their parent: {broken[:5]}")
        conn.commit()


@contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite's foreign keys off while migrations rebuild tables.

    SQLite alters most of a table only by copying it into a new one and dropping the old
    (Alembic's batch mode). With foreign keys on, dropping a table that other rows refer to
    fails; SQLite's documented procedure turns them off first and checks them after, which
    :func:`migrate` does before it commits. The pragma has no effect inside a transaction,
    so it goes straight to the driver, before the migration's transaction begins.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    except BaseException:
        conn.invalidate()  # rolled back, and not returned to the pool with foreign keys off
        raise
    conn.rollback()  # the migration committed its work; end what else may still be open
    driver.execute("PRAGMA foreign_keys=ON")

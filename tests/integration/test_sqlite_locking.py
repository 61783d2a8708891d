"""SQLite's one write lock: writers take it when they begin, readers never take it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from aftersale.database import create_engine, migrate
from campaigns.models import Message, reading


@pytest.fixture
def database(tmp_path: Path):
    path = tmp_path / "aftersale.db"
    db = create_engine(f"sqlite:///{path}")
    migrate(db)
    # Another process's writer that will not wait for the lock.
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    yield db, other
    other.close()
    db.dispose()


def test_a_long_read_does_not_hold_up_a_writer(database):
    db, other = database
    with reading(db) as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(Message.__table__)).scalar()
        assert conn.in_transaction()  # the read's transaction is still open
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO project_state (key, value) VALUES ('k', 'v')")
        other.execute("COMMIT")
        # The reader keeps the snapshot it began with.
        state = conn.execute(sa.text("SELECT count(*) FROM project_state")).scalar()
    assert (before, state) == (0, 0)


def test_a_writer_holds_the_lock_from_its_first_statement(database):
    db, other = database
    with db.begin() as conn:
        conn.execute(sa.select(sa.func.count()).select_from(Message.__table__)).scalar()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")


def test_connections_use_wal_and_checkpoint_every_ten_thousand_pages(database):
    db, _ = database
    with db.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert (mode, pages) == ("wal", 10_000)

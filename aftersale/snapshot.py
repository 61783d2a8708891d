"""A throwaway copy of a project's database, for running the engine where nothing counts.

A forecast runs the whole engine — events, enrolments, policy, planning — on simulated
time; everything it writes goes into a copy that is deleted afterwards, so the project's
database, its clock and its outbox stay exactly as they were.

* **SQLite**: the ``sqlite3`` backup API copies the file page by page in one consistent
  read (a running dispatcher's WAL included) into a temporary file.
* **PostgreSQL**: the rows the engine reads are copied into a temporary SQLite database
  built by the same migrations. The history the engine only ever appends to (every
  decision of every message, provider reports, console users and sessions) is left out.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from aftersale.database import create_engine, migrate
from campaigns import models  # noqa: F401 - registers the tables copied

# Written by the engine, never read back by a decision.
APPEND_ONLY = frozenset(
    {"message_decisions", "delivery_events", "dispatchers", "users", "sessions", "alembic_version"}
)
COPY_CHUNK = 5_000


@contextmanager
def snapshot(source: Engine, *, prefix: str = "aftersale-forecast-") -> Iterator[str]:
    """A SQLite database URL holding a copy of ``source``; deleted when the block ends."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    target = directory / "snapshot.db"
    try:
        if source.dialect.name == "sqlite":
            _backup_sqlite(source, target)
        else:
            _copy_rows(source, target)
        yield f"sqlite:///{target}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _backup_sqlite(source: Engine, target: Path) -> None:
    """Copy a SQLite database with the backup API: one consistent read of the source."""
    path = source.url.database
    if not path or path == ":memory:":
        raise ValueError("an in-memory database has no file to copy")
    reader = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()


def _copy_rows(source: Engine, target: Path) -> None:
    """Copy the rows the engine reads from ``source`` into a new SQLite database at
    ``target``, in one repeatable-read transaction of the source.

    Rows are read and written through the models' own tables, so every value (aware
    datetimes, JSON) is stored as the engine itself would store it on SQLite.
    """
    engine = create_engine(f"sqlite:///{target}")
    try:
        migrate(engine)
        wanted = [t for t in SQLModel.metadata.sorted_tables if t.name not in APPEND_ONLY]
        with (
            source.connect().execution_options(isolation_level="REPEATABLE READ") as reading,
            engine.begin() as writing,
        ):
            present = set(sa.inspect(reading).get_table_names())
            for table in wanted:
                if table.name in present:
                    _copy_table(reading, writing, table)
    finally:
        engine.dispose()


def _copy_table(reading: sa.Connection, writing: sa.Connection, table: sa.Table) -> None:
    writing.execute(table.delete())  # rows the migrations seeded are copied from the source
    result = reading.execution_options(stream_results=True).execute(sa.select(table))
    for chunk in result.partitions(COPY_CHUNK):
        writing.execute(table.insert(), [row._asdict() for row in chunk])

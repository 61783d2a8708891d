"""campaigns.bulk.executemany stores exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from campaigns.bulk import executemany
from campaigns.idlists import id_in
from campaigns.models import UTCDateTime

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("at", UTCDateTime()),
    sa.Column("flag", sa.Boolean, nullable=False, default=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("note", sa.String(100)),
)
twins = things.to_metadata(metadata, name="twins")
summer = timezone(timedelta(hours=2))
ROWS = [
    {"id": 1, "status": "planned", "at": datetime(2026, 3, 2, 9, tzinfo=UTC), "flag": True,
     "details": {}, "note": None},
    {"id": 2, "status": "planned", "at": datetime(2026, 3, 29, 3, 30, tzinfo=summer),
     "flag": False, "details": {"a": [1, "ü"]}, "note": "x"},
    {"id": 3, "status": "sent", "at": None, "flag": False, "details": {"b": None},
     "note": "y"},
]  # fmt: skip


def _update(table: sa.Table) -> sa.Update:
    """Sets a time and JSON by id, only where the row is still planned."""
    return (
        table.update()
        .where(table.c.id == sa.bindparam("_id"), table.c.status == "planned")
        .values(at=sa.bindparam("v_at"), details=sa.bindparam("v_details"), status="sending")
    )


@pytest.fixture
def engine(database_url: str):
    engine = sa.create_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_inserts_and_updates_store_what_sqlalchemy_stores(engine) -> None:
    later = datetime(2026, 10, 25, 2, 30, tzinfo=summer)
    changes = [
        {"_id": 1, "v_at": later, "v_details": {"sent": True}},
        {"_id": 3, "v_at": later, "v_details": {"sent": True}},  # not planned: left alone
    ]
    with engine.begin() as conn:
        inserted = executemany(conn, things.insert(), ROWS)
        conn.execute(twins.insert(), ROWS)
        updated = executemany(conn, _update(things), changes)
        conn.execute(_update(twins), changes)
    # Every row written: SQLite's driver sums them, PostgreSQL runs the rows as one statement.
    assert (inserted, updated) == (3, 1)
    columns = "id, status, at, flag, details, note"
    with engine.connect() as conn:
        ours = conn.execute(sa.text(f"SELECT {columns} FROM things ORDER BY id")).all()
        theirs = conn.execute(sa.text(f"SELECT {columns} FROM twins ORDER BY id")).all()
        read = conn.execute(sa.select(things).order_by(things.c.id)).all()
    assert ours == theirs  # the stored values themselves, as the database holds them
    assert read[0].status == "sending" and read[0].at == later and read[0].details == {"sent": True}
    assert read[1].at == ROWS[1]["at"] and read[1].details == {"a": [1, "ü"]}
    assert read[2].status == "sent" and read[2].at is None


def test_a_row_without_a_value_the_statement_needs_is_refused(engine) -> None:
    with pytest.raises((ValueError, sa.exc.StatementError)), engine.begin() as conn:
        executemany(conn, _update(things), [{"_id": 1, "v_at": datetime.now(UTC)}])


def test_nothing_to_do_for_no_rows(engine) -> None:
    with engine.begin() as conn:
        assert executemany(conn, things.insert(), []) == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(things)).scalar_one() == 0


def test_json_lists_and_a_row_named_twice_store_what_sqlalchemy_stores(engine) -> None:
    """A JSON value that is a list is one value (not a nested array on PostgreSQL); of two
    updates of one row, the later wins, as one statement per row would have it."""
    rows = [dict(row, details=[[1], {"x": [2]}]) for row in ROWS]
    changes = [
        {"_id": 1, "v_at": None, "v_details": [1, 2]},
        {"_id": 2, "v_at": None, "v_details": ["first"]},
        {"_id": 2, "v_at": None, "v_details": ["second"]},  # planned no more: left alone
    ]
    with engine.begin() as conn:
        executemany(conn, things.insert(), rows)
        conn.execute(twins.insert(), rows)
        executemany(conn, _update(things), changes)
        conn.execute(_update(twins), changes)
    columns = "id, status, at, flag, details, note"
    with engine.connect() as conn:
        ours = conn.execute(sa.text(f"SELECT {columns} FROM things ORDER BY id")).all()
        theirs = conn.execute(sa.text(f"SELECT {columns} FROM twins ORDER BY id")).all()
        read = conn.execute(sa.select(things.c.details).order_by(things.c.id)).scalars().all()
    assert ours == theirs
    assert read == [[1, 2], ["first"], [[1], {"x": [2]}]]


def test_id_in_matches_the_listed_ids_only(engine) -> None:
    query = sa.select(things.c.id).where(id_in(things.c.id)).order_by(things.c.id)
    by_note = sa.select(things.c.id).where(~id_in(things.c.note, "notes"))
    with engine.begin() as conn:
        executemany(conn, things.insert(), ROWS)
        assert conn.execute(query, {"ids": [3, 1, 9]}).scalars().all() == [1, 3]
        assert conn.execute(query, {"ids": []}).scalars().all() == []
        assert conn.execute(query, {"ids": {2}}).scalars().all() == [2]
        assert conn.execute(by_note, {"notes": ["x"]}).scalars().all() == [3]
    form = str(query.compile(dialect=engine.dialect))
    assert ("= ANY" in form) == (engine.dialect.name == "postgresql")

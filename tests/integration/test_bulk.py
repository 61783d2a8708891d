"""campaigns.bulk.executemany stores exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

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
    # The stored values themselves, as the database holds them.
    assert _stored(engine, "things") == _stored(engine, "twins")
    with engine.connect() as conn:
        read = conn.execute(sa.select(things).order_by(things.c.id)).all()
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
    assert _stored(engine, "things") == _stored(engine, "twins")
    with engine.connect() as conn:
        read = conn.execute(sa.select(things.c.details).order_by(things.c.id)).scalars().all()
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


def test_awkward_text_and_json_store_what_sqlalchemy_stores(engine) -> None:
    """Quotes, backslashes, braces, commas, the word NULL, line breaks and non-Latin text:
    what an array literal or a JSON document has to escape, stored exactly."""
    awkward = ['a "quoted", {braced} \\ back\\slash', "NULL", "", "line\nbreak\ttab", "日本 ü 🙂"]
    rows = [
        dict(ROWS[0], id=n + 1, status=text[:20], note=text, details={text: [text, None]})
        for n, text in enumerate(awkward)
    ]
    with engine.begin() as conn:
        executemany(conn, things.insert(), rows)
        conn.execute(twins.insert(), rows)
    assert _stored(engine, "things") == _stored(engine, "twins")
    with engine.connect() as conn:
        notes = conn.execute(sa.select(things.c.note).order_by(things.c.id)).scalars().all()
    assert notes == awkward


def test_a_naive_time_is_refused_and_nothing_is_written(engine) -> None:
    naive = [dict(row, at=datetime(2026, 3, 2, 9)) for row in ROWS]
    with pytest.raises((ValueError, sa.exc.StatementError)), engine.begin() as conn:
        executemany(conn, things.insert(), naive)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(things)).scalar_one() == 0


def test_text_too_long_for_its_column_is_never_cut_short(engine) -> None:
    """PostgreSQL refuses it, as the column's own insert would; SQLite keeps it whole."""
    long = [dict(row, status="x" * 25) for row in ROWS]
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DataError), engine.begin() as conn:
            executemany(conn, things.insert(), long)
        return
    with engine.begin() as conn:
        executemany(conn, things.insert(), long)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(things.c.status)).scalars()) == {"x" * 25}


dated = sa.Table(
    "dated",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("note", sa.String(100)),
)


def test_rows_go_as_one_document_unless_a_type_has_no_place_in_it(engine) -> None:
    """On PostgreSQL: text, integers, booleans, times and JSON as one JSON document; a date
    (not among them) as one array per column. Both store the rows."""
    from campaigns.bulk import _unnested

    days = [{"id": n, "day": date(2026, 3, n), "note": f"n{n}"} for n in (1, 2, 3)]
    with engine.begin() as conn:
        executemany(conn, dated.insert(), days)
        executemany(conn, things.insert(), ROWS)
        stored = conn.execute(sa.select(dated).order_by(dated.c.id)).all()
        if engine.dialect.name == "postgresql":
            for table, keys, as_document in (
                (things, tuple(ROWS[0]), True),
                (dated, tuple(days[0]), False),
            ):
                statement, document = _unnested(conn, table.insert(), keys)
                sql = str(statement.compile(dialect=conn.dialect))
                assert (document is not None) is as_document
                assert ("jsonb_array_elements(" if as_document else "unnest(") in sql
    assert [tuple(row) for row in stored] == [tuple(day.values()) for day in days]


def _stored(engine, table: str) -> list:
    """Every row of ``table`` as the database holds it, the JSON column's text too."""
    columns = "id, status, at, flag, details, CAST(details AS TEXT), note"
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT {columns} FROM {table} ORDER BY id")).all()

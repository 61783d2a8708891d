"""Migrations carry an existing database forward without losing or misreading anything."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from aftersale.database import alembic_config, create_engine, migrate


def database_at(tmp_path: Path, revision: str) -> Engine:
    """A SQLite database migrated only as far as ``revision``, as an older release left it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
    return engine


def test_whole_second_times_written_by_bulk_planning_become_uniform(tmp_path: Path):
    engine = database_at(tmp_path, "0003")
    old_rows = [
        "INSERT INTO purchases (id, customer_id, purchased_at, total, currency)"
        " VALUES ('o1', 'c1', '2026-03-02 09:00:00', '1', 'EUR')",
        "INSERT INTO purchases (id, customer_id, purchased_at, total, currency)"
        " VALUES ('o2', 'c1', '2026-03-02 09:00:00.250000', '1', 'EUR')",
    ]
    with engine.begin() as conn:
        for statement in old_rows:
            conn.exec_driver_sql(statement)

    migrate(engine)

    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, purchased_at FROM purchases")).all())
        since = sa.text("SELECT id FROM purchases WHERE purchased_at >= :t")
        found = conn.execute(since, {"t": "2026-03-02 09:00:00.000000"}).scalars().all()
    engine.dispose()
    assert stored == {"o1": "2026-03-02 09:00:00.000000", "o2": "2026-03-02 09:00:00.250000"}
    assert sorted(found) == ["o1", "o2"]  # the whole second no longer compares as earlier


def test_postal_codes_imported_as_numbers_become_text(tmp_path: Path):
    engine = database_at(tmp_path, "0004")
    with engine.begin() as conn:
        for cid, attributes in [
            ("c1", '{"postal_code": 10115, "birth_year": 1980, "city": "Berlin"}'),
            ("c2", '{"PLZ": 80331}'),
            ("c3", '{"postal_code": "01067"}'),
        ]:
            conn.exec_driver_sql(
                "INSERT INTO customers (id, first_name, last_name, locale, email_consent,"
                " sms_consent, email_consent_source, sms_consent_source, open_complaints,"
                f" attributes) VALUES ('{cid}', '', '', 'de', 0, 0, 'import', 'import', 0, ?)",
                (attributes,),
            )

    migrate(engine)

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, attributes FROM customers ORDER BY id")).all()
    engine.dispose()
    assert [(cid, json.loads(a)) for cid, a in rows] == [
        ("c1", {"postal_code": "10115", "birth_year": 1980, "city": "Berlin"}),
        ("c2", {"PLZ": "80331"}),
        ("c3", {"postal_code": "01067"}),
    ]


def test_an_enrolments_messages_keep_one_index(tmp_path: Path):
    engine = database_at(tmp_path, "0005")
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("messages")}
    assert "ix_messages_enrollment" in indexes

    migrate(engine)

    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("messages")}
    engine.dispose()
    assert "ix_messages_enrollment" not in indexes
    assert {"ix_messages_due", "ix_messages_customer_sent"} <= indexes

"""Migrations carry an existing database forward without losing or misreading anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from aftersale.database import _foreign_keys_off, alembic_config, create_engine, migrate
from campaigns.models import Enrollment
from tests.conftest import Harness, item, purchase, utc


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


def test_planned_messages_left_with_a_send_time_are_claimable_again(harness: Harness):
    """Claims read a customer's planned messages at ``sent_at IS NULL``, bundling its
    skipped ones too: one that an older release left with a send time is cleared, not
    lost (0020 clears the planned, 0021 the skipped)."""
    h = harness
    h.customers([{"id": "c1", "email": "c1@example.com"}])
    h.events([purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item(warranty_months=24))])
    h.simulate(utc("2026-03-03T00:00:00"), start=utc("2026-03-01T00:00:00"))
    engine = h.project.db
    planned = [m.id for m in h.messages(status="planned")]
    sent = {m.id: m.sent_at for m in h.messages(status="sent")}
    assert len(planned) > 1 and sent
    skipped = planned.pop()
    with engine.connect() as conn, _foreign_keys_off(conn):
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0019")
        conn.execute(sa.text("UPDATE messages SET sent_at = :t WHERE status = 'planned'"),
                     {"t": utc("2026-03-02T09:00:00")})  # fmt: skip
        conn.execute(sa.text("UPDATE messages SET status = 'skipped' WHERE id = :i"),
                     {"i": skipped})  # fmt: skip
        conn.commit()

    migrate(engine)

    assert [m.id for m in h.messages(status="planned", sent_at=None)] == planned
    assert [m.id for m in h.messages(status="skipped", sent_at=None)] == [skipped]
    assert {m.id: m.sent_at for m in h.messages(status="sent")} == sent
    assert "ix_messages_in_flight" in {
        i["name"] for i in sa.inspect(engine).get_indexes("messages")
    }


def test_migrations_build_exactly_the_models_schema(database_url: str):
    engine = create_engine(database_url)
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []


def without_subject(rows: list[Any]) -> list[dict[str, Any]]:
    """Messages as 0006 knew them: the rendered subject came later."""
    return [{k: v for k, v in r._mapping.items() if k != "subject"} for r in rows]


def test_enrolments_keep_their_rows_when_their_key_leads_with_the_customer(harness: Harness):
    h = harness
    h.customers([{"id": "c1", "email": "c1@example.com"}, {"id": "c2", "email": "c2@x.com"}])
    h.events(
        [
            purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item(warranty_months=24)),
            purchase("e2", "c2", "2026-03-02T11:00:00+01:00", "o2", item()),
        ]
    )
    h.simulate(utc("2026-03-20T00:00:00"), start=utc("2026-03-01T00:00:00"))
    engine = h.project.db
    before = enrolments(engine)
    messages = h.messages()
    assert len(before) == 5 and len(messages) >= 5

    with engine.connect() as conn, _foreign_keys_off(conn):
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
        conn.commit()
    assert enrolments(engine) == before
    assert unique_keys(engine) == [["journey_id", "customer_id", "entry_key"]]
    assert {"ix_enrollments_customer_id", "ix_enrollments_order_id"} <= index_names(engine)

    migrate(engine)

    assert enrolments(engine) == before
    assert without_subject(h.messages()) == without_subject(messages)  # dropped by downgrade
    assert unique_keys(engine) == [["customer_id", "journey_id", "entry_key"]]
    assert not index_names(engine) & {"ix_enrollments_customer_id", "ix_enrollments_order_id"}
    duplicate = {**before[0]._mapping, "id": "another id for the same entry"}
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(Enrollment.__table__.insert().values(duplicate))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # The engine goes on where it stood: the extended warranty's e-mail comes in time.
    h.events([purchase("e3", "c1", "2026-03-25T10:00:00+01:00", "o3", item())])
    h.simulate(utc("2026-04-01T00:00:00"))
    assert len(enrolments(engine)) == 7
    assert [m.status for m in h.messages(order_id="o3", journey_id="thank_you")] == ["sent"]


def enrolments(engine: Engine) -> list[Any]:
    table = Enrollment.__table__
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.id)))


def unique_keys(engine: Engine) -> list[list[str]]:
    return [u["column_names"] for u in sa.inspect(engine).get_unique_constraints("enrollments")]


def index_names(engine: Engine) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes("enrollments")}


def test_a_failed_migration_leaves_no_connection_without_foreign_keys(tmp_path: Path, monkeypatch):
    engine = create_engine(f"sqlite:///{tmp_path / 'failing.db'}")

    def failing(cfg, revision):  # noqa: ARG001
        raise RuntimeError("a migration that fails half way")

    monkeypatch.setattr(command, "upgrade", failing)
    with pytest.raises(RuntimeError):
        migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()

"""SQLite finds an enrolment's messages through their unique key, never by walking.

SQLite's planner has no statistics on a fresh database: offered ``status = 'planned'``
beside ``enrollment_id = ?``, it took the index on (status, due_at) and walked every planned
message of every customer to cancel one enrolment's. These statements are checked with
``EXPLAIN QUERY PLAN`` as they run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from aftersale.database import create_engine, migrate
from campaigns.engine import complete_enrollments, end_enrollments

BY_ENROLMENT = "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (enrollment_id=?)"


def explained(tmp_path: Path, work) -> list[tuple[str, list[str]]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    migrate(engine)
    plans: list[tuple[str, list[str]]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if " messages" in statement:
            params = parameters[0] if executemany else parameters
            steps = cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
            plans.append((statement, [step[-1] for step in steps]))

    with engine.connect() as conn:
        work(conn)
        conn.rollback()
    engine.dispose()
    return plans


def test_ending_and_completing_enrolments_search_their_messages_by_key(tmp_path: Path):
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def work(conn):
        end_enrollments(conn, {"loyalty_offer:c1:order:o1": now, "x:c2:once": now}, "cancelled")
        complete_enrollments(conn, ["thank_you:c1:order:o1"], now)

    plans = explained(tmp_path, work)

    assert len(plans) == 4  # count, history, cancel; the completion's NOT EXISTS
    for statement, steps in plans:
        touching = [step for step in steps if " messages " in f"{step} "]
        assert touching == [BY_ENROLMENT], (statement, steps)

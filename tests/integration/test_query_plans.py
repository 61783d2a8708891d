"""SQLite finds enrolments and their messages through indexes, never by walking.

SQLite's planner has no statistics on a fresh database: offered ``status = 'planned'``
beside ``enrollment_id = ?``, it took the index on (status, due_at) and walked every planned
message of every customer to cancel one enrolment's. Enrolments are found by customer
through their unique key, which leads with the customer. These statements are checked
with ``EXPLAIN QUERY PLAN`` as they run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aftersale.admin.customers import erase, gdpr_export
from aftersale.database import create_engine, migrate
from campaigns.engine import complete_enrollments, end_enrollments
from scheduler.simulation import PENDING_OF
from tests.conftest import Harness, item, purchase, utc

BY_ENROLMENT = "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (enrollment_id=?)"
UNSENT_OF_CUSTOMER = (
    "SEARCH messages USING INDEX ix_messages_customer_sent (customer_id=? AND sent_at=?)"
)
IN_FLIGHT_OF_ENROLMENT = "SEARCH messages USING INDEX ix_messages_in_flight (enrollment_id=?)"


def explained(tmp_path: Path, work) -> list[tuple[str, list[str]]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    migrate(engine)
    plans = recording_plans(engine, " messages")
    with engine.connect() as conn:
        work(conn)
        conn.rollback()
    engine.dispose()
    return plans


def recording_plans(engine: sa.Engine, table: str) -> list[tuple[str, list[str]]]:
    """The query plan of every statement naming ``table`` that the engine runs from now on."""
    plans: list[tuple[str, list[str]]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if table in statement and not statement.lstrip().upper().startswith("PRAGMA"):
            params = parameters[0] if executemany else parameters
            steps = cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
            plans.append((statement, [step[-1] for step in steps]))

    return plans


def test_ending_and_completing_enrolments_search_their_messages_by_key(tmp_path: Path):
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def work(conn):
        end_enrollments(conn, {"loyalty_offer:c1:order:o1": now, "x:c2:once": now}, "cancelled")
        complete_enrollments(conn, ["thank_you:c1:order:o1"], now)

    plans = explained(tmp_path, work)

    assert len(plans) == 4  # count, history, cancel; the completion
    *ending, (_, completing) = plans
    for statement, steps in ending:
        touching = [step for step in steps if " messages " in f"{step} "]
        assert touching == [BY_ENROLMENT], (statement, steps)
    # The completion reads neither the enrolment's history nor every planned message: its
    # customer's unsent messages, and the enrolment's few in flight.
    touching = [step for step in completing if " messages " in f"{step} "]
    assert touching == [UNSENT_OF_CUSTOMER, IN_FLIGHT_OF_ENROLMENT], completing


def test_enrolments_are_found_by_customer_through_their_unique_key(sqlite_harness: Harness):
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "c1@example.com"}, {"id": "c2", "email": "c2@x.com"}])
    plans = recording_plans(h.project.db, "enrollments")
    h.events(
        [
            purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item(warranty_months=24)),
            purchase("e2", "c1", "2026-03-05T10:00:00+01:00", "o2", item()),  # repurchase
            event("e3", "return", "c1", "2026-03-06T10:00:00Z", order="o2"),
            event("e4", "warranty_extended", "c1", "2026-03-07T10:00:00Z", order="o1"),
            purchase("e5", "c2", "2026-03-02T10:00:00+01:00", "o3", item()),
        ]
    )
    h.simulate(utc("2026-05-01T00:00:00"), start=utc("2026-03-01T00:00:00"))
    with h.project.db.begin() as conn:
        assert gdpr_export(conn, "c1") is not None
        assert erase(conn, "c2", "admin", utc("2026-05-01T00:00:00"))

    reads = [(s, steps) for s, steps in plans if steps]
    by_customer = [
        (s, steps)
        for s, steps in reads
        if re.search(r"WHERE .*enrollments\.customer_id (=|IN)", s, re.DOTALL)
    ]
    assert len(by_customer) >= 5  # repurchase, the exit, the return, the timeline, erasure
    for statement, steps in reads:
        assert not [step for step in steps if step.startswith("SCAN enrollments")], (
            statement,
            steps,
        )
    key = f"SEARCH enrollments USING INDEX {customer_key(h)} (customer_id="
    for statement, steps in by_customer:
        assert any(step.startswith(key) for step in steps), (statement, steps)


def event(event_id: str, kind: str, customer: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "customer": customer, "at": at, **fields}


def customer_key(h: Harness) -> str:
    """SQLite's name for the index of enrolments' unique key (customer, journey, entry)."""
    with h.project.db.connect() as conn:
        for index in conn.exec_driver_sql("PRAGMA index_list(enrollments)").all():
            info = conn.exec_driver_sql(f"PRAGMA index_info('{index[1]}')").all()
            if [column[2] for column in info] == ["customer_id", "journey_id", "entry_key"]:
                return index[1]
    raise AssertionError("enrollments has no unique key on (customer_id, journey_id, entry_key)")


def test_bundling_finds_its_candidates_by_customer(sqlite_harness: Harness):
    """Through the customer's index at its unsent part: candidates are planned and carried
    messages skipped, and neither has a send time; the sent history is not read."""
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "c1@example.com"}])
    plans = recording_plans(h.project.db, "bundled_into IN")
    appliance = {"inspection_interval_days": 90}
    h.events([purchase("e1", "c1", "2026-01-13T10:00:00+01:00", "o1",
                       item("GS-6", **appliance), item("WM-7", **appliance))])  # fmt: skip
    h.simulate(utc("2026-04-14T00:00:00"), start=utc("2026-01-13T00:00:00"))

    assert plans, "the invitations of two items looked for each other"
    for statement, steps in plans:
        assert steps == [UNSENT_OF_CUSTOMER], (statement, steps)


def test_a_window_reads_its_customers_pending_events_by_customer(tmp_path: Path):
    """Not through ``ix_events_pending``, which holds every pending event of the shop: a
    forecast of a large shop starts with a year of them."""
    engine = create_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    migrate(engine)
    plans = recording_plans(engine, "FROM events")
    with engine.connect() as conn:
        conn.execute(PENDING_OF, {"ids": ["c1", "c2"]}).all()
    engine.dispose()

    assert plans == [(plans[0][0], ["SEARCH events USING INDEX ix_events_customer_id (customer_id=?)",
                                    "USE TEMP B-TREE FOR ORDER BY"])], plans  # fmt: skip


@pytest.mark.parametrize("after", [False, True], ids=["all", "after_the_claim"])
def test_a_full_claim_reads_its_customers_due_messages_by_customer(tmp_path: Path, after: bool):
    from scheduler.dispatcher import CUSTOMERS_DUE, CUSTOMERS_DUE_AFTER

    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    params = {"ids": ["c1", "c2"], "now": now}
    if after:  # what the customers have beyond a claimed row, in the due order
        params.update(due=now, priority=10, id=7)
    query = CUSTOMERS_DUE_AFTER if after else CUSTOMERS_DUE
    plans = explained(tmp_path, lambda conn: conn.execute(query, params))
    [(_, steps)] = [(sql, steps) for sql, steps in plans if "customer_id IN" in sql]
    # Their unsent messages only, not the history the customer's index also holds.
    assert any(UNSENT_OF_CUSTOMER in step for step in steps), steps
    assert not any("ix_messages_due" in step for step in steps), steps


def test_the_decided_log_and_the_figures_read_indexes_without_sorting_the_log(tmp_path: Path):
    from aftersale.sendlog import LogFilter, decided_log
    from aftersale.stats import log_groups

    def work(conn):
        decided_log(conn, LogFilter(), limit=50)
        decided_log(conn, LogFilter(status="failed"), limit=50)
        log_groups(conn)

    plans = explained(tmp_path, work)
    first, failed, groups, sending = (steps for _, steps in plans[:4])
    assert "SCAN messages USING INDEX ix_messages_decided" in first
    assert not any("TEMP B-TREE" in step for step in first)  # no sort of the whole log
    assert failed  # a narrow filter may search its own index and sort what it found
    # Off the index alone: every column the figures read is in it (an SMS's segments too).
    assert groups == ["SCAN messages USING COVERING INDEX ix_messages_journey_figures"]
    # The batch in flight, which that partial index leaves out, by status.
    assert any("ix_messages_due (status=?)" in step for step in sending), sending


def test_experiment_figures_read_the_partial_figures_index(tmp_path: Path):
    from aftersale.holdouts import _customers
    from aftersale.stats import Prices

    plans = explained(tmp_path, lambda conn: _customers(conn, "loyalty_offer", Prices()))
    steps = next(steps for sql, steps in plans if "GROUP BY" in sql)
    assert any("ix_messages_journey_figures (journey_id=?)" in step for step in steps), steps


def test_planning_and_marking_sending_leave_the_partial_indexes_alone(tmp_path: Path):
    """A planned message is in neither the figures' nor the decided view's index: it enters
    them once, when it is decided."""
    engine = create_engine(f"sqlite:///{tmp_path / 'partial.db'}")
    migrate(engine)
    counts = []

    def entries(conn) -> tuple[int, ...]:  # each index one page here: its cells, its entries
        return tuple(
            conn.exec_driver_sql("SELECT sum(ncell) FROM dbstat WHERE name = ?", (name,)).scalar()
            for name in ("ix_messages_journey_figures", "ix_messages_decided")
        )

    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # the rows alone, no enrolment
        conn.exec_driver_sql(
            "INSERT INTO messages (id, enrollment_id, customer_id, journey_id, journey_version, "
            "step, occurrence, channel, category, template, priority, status, due_at, "
            "attempts, details, updated_at) VALUES (1, 'e', 'c', 'j', 1, 's', 0, 'email', "
            "'marketing', 't', 0, 'planned', '2026-01-01 00:00:00', 0, '{}', NULL)"
        )
        counts.append(entries(conn))
        for status in ("sending", "sent", "delivered"):
            conn.exec_driver_sql(
                "UPDATE messages SET status = ?, updated_at = '2026-01-01 09:00:00' WHERE id = 1",
                (status,),
            )
            counts.append(entries(conn))
        conn.rollback()
    engine.dispose()
    assert counts == [(0, 0), (0, 1), (1, 1), (1, 1)]


def _written() -> int:
    """Bytes this thread has written so far (Linux)."""
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/thread-self/io")


@pytest.mark.skipif(
    not Path("/proc/thread-self/io").exists(), reason="counts writes through Linux's /proc"
)
def test_updates_of_many_rows_keep_no_statement_journal(tmp_path: Path):
    """A batch's claim and a cancellation run as UPDATE OR IGNORE on SQLite (as do the
    completion of enrolments, the hand-off and marking events applied, built with the same
    ``unjournaled``): an update of many rows that could stop on a constraint copies every
    page it changes into a statement journal (a temporary file past 64 KiB); these cannot,
    and keep none."""
    from campaigns.bulk import unjournaled
    from campaigns.models import Message
    from scheduler.dispatcher import MARK_SENDING

    engine = create_engine(f"sqlite:///{tmp_path / 'journal.db'}")
    migrate(engine)
    rows = 4000
    driver = engine.raw_connection()
    try:
        driver.execute("PRAGMA foreign_keys = OFF")  # the rows alone, no enrolment
        driver.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO messages (id, enrollment_id, customer_id, journey_id, journey_version, "
            "step, occurrence, channel, category, template, priority, status, due_at, "
            "attempts, details) SELECT i, 'e' || i, 'c' || i, 'j', 1, 's', 0, 'email', "
            "'marketing', 't', 0, 'planned', '2026-01-01 00:00:00', 0, '{}' FROM n",
            (rows,),
        )
        driver.commit()
    finally:
        driver.close()
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    claim = {"ids": list(range(1, rows + 1)), "now": now, "lease": now}
    m = Message.__table__
    cancel = unjournaled(m.update().where(m.c.status == "planned").values(status="cancelled"))
    journaled = {}

    def as_plain_update(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        return statement.replace("UPDATE OR IGNORE ", "UPDATE ", 1), parameters

    for prefixed in (True, False):
        if not prefixed:  # the same statements as plain UPDATEs, for comparison
            sa.event.listen(engine, "before_cursor_execute", as_plain_update, retval=True)
        for name, statement, params in (("claim", MARK_SENDING, claim), ("cancel", cancel, {})):
            assert "UPDATE OR IGNORE " in str(statement.compile(dialect=engine.dialect))
            with engine.connect() as conn:
                before = _written()
                assert conn.execute(statement, params).rowcount == rows
                journaled[name, prefixed] = _written() - before
                conn.rollback()
    engine.dispose()
    for name in ("claim", "cancel"):
        # The plain UPDATE's journal is there to see; the statements as run keep none.
        assert journaled[name, False] > 200_000, journaled
        assert journaled[name, True] < journaled[name, False] / 20, journaled


def test_a_hand_off_finds_its_messages_by_key_on_postgresql(make_harness, postgres_server: str):
    """PostgreSQL's statistics see messages ``sending`` only for moments: offered the
    status beside the ids, its planner took the due index and read every message being sent
    at each hand-off. The hand-offs go through the primary key whatever the statistics say."""
    from campaigns import transitions
    from campaigns.models import Message
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server)
    h = make_harness(database_url=postgres_server)
    h.customers([{"id": f"c{n}", "email": f"c{n}@example.com"} for n in range(40)])
    h.events([purchase(f"e{n}", f"c{n}", "2026-01-13T10:00:00+01:00", f"o{n}", item())
              for n in range(40)])  # fmt: skip
    db, messages = h.project.db, Message.__table__
    with db.begin() as conn:
        while h.project.journeys.apply_due_events(conn, utc("2026-01-13T12:00:00")).events:
            pass
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE messages")  # statistics of a shop with nothing sending
        conn.execute(messages.update().values(status="sending"))
        ids = list(conn.execute(sa.select(messages.c.id).order_by(messages.c.id)).scalars())
    assert len(ids) >= 40
    plans: list[tuple[str, list[str]]] = []

    @sa.event.listens_for(db, "before_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if "SET handed_over_at" in statement:
            steps = cursor.execute(f"EXPLAIN {statement}", parameters).fetchall()
            plans.append((statement, [step[0] for step in steps]))

    now = utc("2026-01-13T12:00:00")
    answers = [{"_id": i, "provider": "sendgrid", "provider_message_id": f"p{i}"} for i in ids[:8]]
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert transitions.hand_over_journalled(conn, ids[8:16], answers, now) == set(ids[8:16])
    with db.begin() as conn:
        assert transitions.hand_over(conn, ids[16:24], now) == set(ids[16:24])

    h.project.close()

    assert len(plans) == 2
    for statement, steps in plans:
        plan = "\n".join(steps)
        assert "ix_messages_due" not in plan, (statement, plan)

"""The core's hot paths on embedded SQLite.

- ingest: import + enrol + plan N purchase events (events/s), streamed from a JSONL file;
  each enrolment plans its next message and keeps the rest of its timetable;
- ingest, the database alone: the same import and application's SQL statements, recorded at
  the driver and replayed through ``sqlite3`` into a copy of the database as it stood
  before the import, with the same pragmas and transactions and no Python work of ours:
  the rate SQLite itself allows for this schema, whatever the code above it does;
- ingest / ceiling (``ingest_ceiling_ratio``): the first as a fraction of the second, both
  measured in the same run (target >= 0.8);
- dispatch: N due messages through policy, rendering and the in-memory channel (messages/s).

Beside each rate, its CPU time (``*_cpu_*``: ``time.process_time`` of the benchmark's own
process, so render processes are not in the dispatch's): on a shared machine the wall
clock also counts other work, CPU time mostly what this code did.

Targets on a 2-core machine: ingest >= 20,000 events/s, dispatch >= 3,000 messages/s.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aftersale.app import Project
from aftersale.cli import write_project
from aftersale.database import create_engine
from campaigns.importing import import_customers, import_events
from campaigns.models import Enrollment, Message
from channels.memory import InMemoryChannel
from scheduler.clock import SimulatedClock
from scheduler.dispatcher import Dispatcher

TARGETS = {"ingest_events_per_s": 20_000, "dispatch_messages_per_s": 3_000}
START = datetime(2026, 3, 2, 9, tzinfo=UTC)

BENCH_TOML = """
secret_key = "bench"
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = "22:00-06:00"
[[policy.caps]]
channel = "email"
max = 3
per = "7d"
"""


class CountingChannel(InMemoryChannel):
    """The in-memory channel without keeping every message: a million bodies would make
    the benchmark measure its own list, not aftersale's memory."""

    def send(self, message):  # type: ignore[no-untyped-def]
        result = super().send(message)
        with self._lock:
            self.count = getattr(self, "count", 0) + 1
            self.sent.clear()
        return result


def make_project(directory: Path, journeys: list[str] | None = None) -> Project:
    write_project(directory)
    (directory / "aftersale.toml").write_text(BENCH_TOML, encoding="utf-8")
    if journeys is not None:
        for path in (directory / "journeys").glob("*.yaml"):
            if path.stem not in journeys:
                path.unlink()
    project = Project.open(directory)
    project.channel_overrides = {"email": CountingChannel("email"), "sms": CountingChannel("sms")}
    return project


def write_shop(directory: Path, customers: int, events: int, *, spread: timedelta) -> None:
    rng = random.Random(1)
    with (directory / "customers.csv").open("w", encoding="utf-8") as out:
        out.write("id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent\n")
        for n in range(customers):
            out.write(f"c{n},c{n}@example.com,+4915112{n:06d},Kim,Test,de,Europe/Berlin,yes,yes\n")
    with (directory / "events.jsonl").open("w", encoding="utf-8") as out:
        for n in range(events):
            at = START + timedelta(seconds=rng.random() * spread.total_seconds())
            item = {"sku": "WM-1", "name": "Waschmaschine", "category": "appliance",
                    "price": "499.00", "quantity": 1, "warranty_months": 24,
                    "inspection_interval_days": 90}  # fmt: skip
            event = {"id": f"e{n}", "type": "purchase", "customer": f"c{n % customers}",
                     "at": at.isoformat(), "order": {"id": f"o{n}", "total": "499.00",
                     "currency": "EUR", "items": [item]}}  # fmt: skip
            out.write(json.dumps(event) + "\n")


@contextmanager
def ingest_shop(n: int) -> Iterator[tuple[Path, Project, Dispatcher, datetime]]:
    """A project with its customers imported (a third as many as events) and n purchase
    events written to ``events.jsonl`` but not yet imported, and a dispatcher whose clock
    stands after the last of them."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        project = make_project(directory)
        write_shop(directory, max(1, n // 3), n, spread=timedelta(days=1))
        import_customers(project.db, directory / "customers.csv")
        now = START + timedelta(days=2)
        yield directory, project, project.dispatcher(SimulatedClock(now)), now


def bench_ingest(n: int) -> dict[str, Any]:
    """Import n purchase events, then apply them: enrol in all four journeys and plan."""
    with ingest_shop(n) as (directory, project, dispatcher, now):
        began, cpu = time.perf_counter(), time.process_time()
        report = import_events(project.db, directory / "events.jsonl")
        imported = time.perf_counter()
        # As `aftersale run` and `simulate` apply them: in the dispatcher's batches.
        applied = dispatcher.apply_due_events(now)
        done, cpu = time.perf_counter(), time.process_time() - cpu
        dispatcher.close()
        messages = planned_messages(project)
        entries = messages + later_entries(project)
        project.close()
    assert report.imported == n and applied == n
    return {
        "ingest_events": n,
        "ingest_messages_planned": messages,
        "ingest_timetable_entries": entries,
        "ingest_import_s": round(imported - began, 2),
        "ingest_plan_s": round(done - imported, 2),
        "ingest_events_per_s": round(n / (done - began)),
        "ingest_cpu_s": round(cpu, 2),
        "ingest_cpu_events_per_s": round(n / cpu),
    }


def bench_database_only(n: int) -> dict[str, Any]:
    """Replay the ingest's SQL at the driver, in a process of its own: the recording holds
    every row the ingest wrote, which must not count towards the dispatch's peak RSS."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_database_only, n).result()


def _database_only(n: int) -> dict[str, Any]:
    with ingest_shop(n) as (directory, project, dispatcher, now):
        database = project.db.url.database
        assert database, "the replay copies the project's SQLite file"
        before = directory / "before.db"
        source = sqlite3.connect(database)
        copy = sqlite3.connect(before)
        source.backup(copy)
        copy.close()
        source.close()
        recording = _Recording()
        recording.attach(project.db)
        began = time.perf_counter()
        import_events(project.db, directory / "events.jsonl")
        dispatcher.apply_due_events(now)
        whole = time.perf_counter() - began
        recording.detach(project.db)
        dispatcher.close()
        written = planned_messages(project)
        project.close()
        replay = create_engine(f"sqlite:///{before}", poolclass=sa.pool.NullPool)
        with replay.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None and driver.isolation_level is None
            alone = recording.replay(driver)
            # The replay did the same work: an insert that ignored its rows would not.
            (replayed,) = driver.execute("SELECT count(*) FROM messages").fetchone()
        replay.dispose()
    assert replayed == written, (replayed, written)
    return {
        "ingest_statements": len(recording.statements),
        "ingest_database_only_us_per_event": round(alone / n * 1e6, 1),
        "ingest_database_only_events_per_s": round(n / alone),
        "ingest_database_share": round(alone / whole, 2),
    }


class _Recording:
    """The statements an engine sends its driver, with their parameters and commits."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any, bool]] = []

    def attach(self, engine: sa.Engine) -> None:
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "rollback", self._rollback)

    def detach(self, engine: sa.Engine) -> None:
        sa.event.remove(engine, "before_cursor_execute", self._statement)
        sa.event.remove(engine, "commit", self._commit)
        sa.event.remove(engine, "rollback", self._rollback)

    def _statement(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self.statements.append((statement, parameters, executemany))

    def _commit(self, conn) -> None:  # type: ignore[no-untyped-def]
        self.statements.append(("COMMIT", (), False))

    def _rollback(self, conn) -> None:  # type: ignore[no-untyped-def]
        self.statements.append(("ROLLBACK", (), False))

    def replay(self, driver: sqlite3.Connection) -> float:
        """Run every statement again on ``driver``; returns the seconds it took."""
        began = time.perf_counter()
        for statement, parameters, many in self.statements:
            if many:
                driver.executemany(statement, parameters)
            else:
                driver.execute(statement, parameters).fetchall()
        return time.perf_counter() - began


def planned_messages(project: Project) -> int:
    with project.db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(Message)).scalar_one()


def later_entries(project: Project) -> int:
    """The timetable entries the enrolments will plan once their planned message is done."""
    e = Enrollment.__table__
    with project.db.connect() as conn:
        return sum(
            len(schedule) - 1
            for schedule in conn.execute(
                sa.select(e.c.schedule).where(e.c.schedule.is_not(None))
            ).scalars()
        )


def bench_dispatch(n: int) -> dict[str, Any]:
    """n thank-you e-mails due at once, through policy, rendering and the in-memory channel."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        project = make_project(directory, journeys=["thank_you"])
        write_shop(directory, max(1, n // 2), n, spread=timedelta(hours=1))
        import_customers(project.db, directory / "customers.csv")
        import_events(project.db, directory / "events.jsonl")
        clock = SimulatedClock(START + timedelta(hours=1))
        dispatcher = project.dispatcher(clock)
        with project.db.begin() as conn:
            while project.journeys.apply_due_events(conn, clock.now(), limit=10_000).events:
                pass
        clock.advance_to(START + timedelta(hours=4))
        began, cpu = time.perf_counter(), time.process_time()
        stats = dispatcher.tick()
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        dispatcher.close()
        sent = project.channels["email"].count
        project.close()
    assert stats.sent == n == sent, (stats, n, sent)
    return {
        "dispatch_messages": n,
        "dispatch_s": round(elapsed, 2),
        "dispatch_messages_per_s": round(n / elapsed),
        "dispatch_cpu_s": round(cpu, 2),
        "dispatch_cpu_messages_per_s": round(n / cpu),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def ingest_against_ceiling(figures: dict[str, Any]) -> float:
    """The ingest's rate as a fraction of what the database alone allows for its SQL, both
    measured in this run: 1.0 would mean no time spent outside SQLite."""
    return round(figures["ingest_events_per_s"] / figures["ingest_database_only_events_per_s"], 2)


def run(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 100_000
    figures = {**bench_ingest(n), **bench_database_only(n), **bench_dispatch(n)}
    figures["ingest_ceiling_ratio"] = ingest_against_ceiling(figures)
    for key, target in TARGETS.items():
        figures[f"{key}_target"] = target
        figures[f"{key}_ok"] = figures[key] >= target
    return figures


def main() -> None:
    import sys

    figures = run(quick="--quick" in sys.argv)
    for key, value in figures.items():
        print(f"{key:32} {value}")
    print(f"ingest / ceiling = {figures['ingest_ceiling_ratio']:.2f}")


if __name__ == "__main__":
    main()

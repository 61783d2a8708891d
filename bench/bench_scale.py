"""Scale: planning against one APScheduler job per message, dispatch on SQLite and
PostgreSQL, one against two dispatcher processes, and a large send log.

- plan: ingest + enrol + plan (bench_core) against the design a newcomer would reach for,
  one ``add_job(send, 'date', run_date=due)`` per message into a paused BackgroundScheduler
  with a SQLite ``SQLAlchemyJobStore``; messages scheduled per second (each enrolment's whole
  timetable) against its jobs/s, target >= 20x;
- dispatch: due thank-you e-mails through policy, rendering and an in-memory channel,
  messages/s, on SQLite and PostgreSQL, in one and in two processes (each process its own
  in-memory channel and rendering in its own threads; sends counted from the database);
  target two >= 1.6x one on PostgreSQL, and one PostgreSQL dispatcher >= 0.8x one SQLite
  dispatcher (``pg_sqlite_1p_ratio``); beside them one dispatcher with its default render
  process on each database, and their ratio; each the median of three rounds in which
  the configurations alternate (``*_rounds`` lists a ratio's rounds);
- log size: the dispatch rate with 1M (quick: 100k) messages already in the send log against
  an empty one (target >= 0.8x), and the dispatching process's peak RSS (target <= 300 MB).

``python -m bench.bench_scale --million`` dispatches a million messages in one process
instead (the peak RSS target's literal case; it takes about a quarter of an hour).

PostgreSQL figures need the server at ``AFTERSALE_BENCH_POSTGRES_URL`` (default: the one
the tests use); without it they are left out.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import sqlalchemy as sa

from aftersale.app import Project
from bench.bench_core import BENCH_TOML, START, CountingChannel, bench_ingest, write_shop
from campaigns.importing import import_customers, import_events
from campaigns.models import Message
from channels import Channel
from scheduler.clock import SimulatedClock
from scheduler.workers import Worker

TARGETS = {
    "plan_ratio": 20.0,
    "pg_two_process_ratio": 1.6,
    "pg_sqlite_1p_ratio": 0.8,
    "large_log_ratio": 0.8,
}
PG_URL = os.environ.get(
    "AFTERSALE_BENCH_POSTGRES_URL",
    os.environ.get(
        "AFTERSALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
)
DISPATCH_AT = START + timedelta(hours=4)
messages_t = Message.__table__


def send_message(message_id: int) -> None:
    """The baseline's job function (only referenced, never run: the scheduler is paused)."""


def memory_channels(_project: Any) -> Mapping[str, Channel]:
    """Per-process in-memory channels for worker processes that keep no bodies (a million
    of them would measure the channel's list, not the dispatcher's memory)."""
    return {"email": CountingChannel("email"), "sms": CountingChannel("sms")}


# ------------------------------------------------------------------- planning


def bench_plan(n: int, baseline_jobs: int) -> dict[str, Any]:
    """Our ingest + plan against one persistent APScheduler job per message.

    Both sides schedule the same messages: every entry of every enrolment's timetable (the
    baseline needs a job for each; we plan the next message and keep the rest on the
    enrolment). The ratio is timetable entries scheduled per second against jobs added per
    second, which is the same as the ratio of purchase events handled per second.
    """
    ours = bench_ingest(n)
    seconds = ours["ingest_import_s"] + ours["ingest_plan_s"]
    jobs_per_s = _apscheduler_jobs_per_s(baseline_jobs)
    entries_per_event = ours["ingest_timetable_entries"] / n
    return {
        "plan_events": n,
        "plan_events_per_s": ours["ingest_events_per_s"],
        "plan_messages_per_event": round(entries_per_event, 2),
        "plan_messages_per_s": round(ours["ingest_timetable_entries"] / seconds),
        "baseline_apscheduler_jobs_per_s": round(jobs_per_s),
        "baseline_events_per_s": round(jobs_per_s / entries_per_event),
        "plan_ratio": round(ours["ingest_timetable_entries"] / seconds / jobs_per_s, 1),
    }


def _apscheduler_jobs_per_s(jobs: int) -> float:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLAlchemyJobStore(url=f"sqlite:///{tmp}/jobs.db")
        scheduler = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
        scheduler.start(paused=True)
        try:
            began = time.perf_counter()
            # Due well in the future, so the paused scheduler never has anything to run.
            first = datetime.now(UTC) + timedelta(days=365)
            for n in range(jobs):
                due = first + timedelta(seconds=n)
                scheduler.add_job(
                    send_message,
                    "date",
                    run_date=due,
                    args=[n],
                    id=f"m{n}",
                    misfire_grace_time=None,
                )
            elapsed = time.perf_counter() - began
        finally:
            scheduler.shutdown(wait=False)
    return jobs / elapsed


# ------------------------------------------------------------------- dispatch


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh database on the local server for one measurement, or None without a server."""
    try:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"aftersale_bench_{uuid.uuid4().hex[:8]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.DBAPIError:
        yield None
        return
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare_shop(directory: Path, n: int, url: str | None, history: int = 0) -> dict[str, Any]:
    """n thank-you e-mails due at DISPATCH_AT, and ``history`` old messages in the log."""
    from aftersale.cli import write_project

    write_project(directory)
    (directory / "aftersale.toml").write_text(BENCH_TOML, encoding="utf-8")
    for path in (directory / "journeys").glob("*.yaml"):
        if path.stem != "thank_you":
            path.unlink()
    overrides = {"database_url": url} if url else {}
    project = Project.open(directory, **overrides)
    write_shop(directory, max(1, n // 2), n, spread=timedelta(hours=1))
    import_customers(project.db, directory / "customers.csv")
    import_events(project.db, directory / "events.jsonl")
    journeys = project.journeys  # syncs in a transaction of its own: before ours
    with project.db.begin() as conn:
        while journeys.apply_due_events(conn, DISPATCH_AT, limit=10_000).events:
            pass
    if history:
        _fill_history(project, history)
    project.close()
    return overrides


def _fill_history(project: Project, count: int) -> None:
    """Old sent messages of the same customers: what a send log looks like after years."""
    with project.db.connect() as conn:
        base = conn.execute(
            sa.select(messages_t).where(messages_t.c.status == "planned").limit(100_000)
        ).all()
    chunk: list[dict[str, Any]] = []
    for n in range(count):
        row = base[n % len(base)]._asdict()
        row.pop("id")
        old = START - timedelta(days=40 + n % 700, minutes=n % 1440)
        row.update(step="history", occurrence=n // len(base) + 1, status="sent",
                   category="marketing", due_at=old, sent_at=old, planned_at=old)  # fmt: skip
        chunk.append(row)
        if len(chunk) == 50_000 or n == count - 1:
            with project.db.begin() as conn:
                conn.execute(messages_t.insert(), chunk)
            chunk = []


def _worker_main(directory: str, overrides: dict, barrier: Any, results: Any) -> None:
    """A dispatcher process: set up, wait for the others, dispatch everything due.

    Like ``run --workers N``, each of the N processes knows it shares the machine with N.
    """
    project = Project.open(directory, **overrides)
    project.channel_overrides = dict(memory_channels(project))
    clock = SimulatedClock(DISPATCH_AT)
    worker = Worker.for_dispatcher(project.dispatcher(clock, dispatchers=barrier.parties))
    _ = project.journeys, project.renderer
    barrier.wait()
    began = time.time()
    stats = worker.tick()
    ended = time.time()
    worker.close()
    project.close()
    results.put((stats.sent, began, ended, _peak_rss_mb()))


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started.

    Linux carries ``ru_maxrss`` over ``exec``: a spawned process would report at least the
    RSS its parent had when it forked (the benchmarks run before this one grow it).
    ``VmHWM`` belongs to the process's own memory only.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dispatch_in_processes(directory: Path, overrides: dict, processes: int) -> dict[str, float]:
    """messages/s of ``processes`` dispatcher processes started together; peak RSS of one."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    procs = [
        context.Process(target=_worker_main, args=(str(directory), overrides, barrier, results))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    sent = sum(o[0] for o in outcomes)
    elapsed = max(o[2] for o in outcomes) - min(o[1] for o in outcomes)
    return {"sent": sent, "per_s": sent / elapsed, "rss_mb": max(o[3] for o in outcomes)}


def measure(
    n: int, url: str | None, processes: int, history: int = 0, **settings: Any
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {**prepare_shop(Path(tmp), n, url, history), **settings}
        result = dispatch_in_processes(Path(tmp), overrides, processes)
    assert result["sent"] == n, result
    return result


# Rounds of the dispatch figures. One run of the same code swings by a fifth or more on a
# shared two-core machine (the PostgreSQL server shares it too); each figure is the median
# of its rounds, each ratio the median of the ratios measured in one round.
DISPATCH_ROUNDS = 3


def bench_dispatch(n: int, rounds: int = DISPATCH_ROUNDS) -> dict[str, Any]:
    """One against two dispatcher processes, each rendering in its own threads.

    Process against process: with the default render process, one dispatcher already
    keeps both cores of a two-core machine busy, and its figure is given beside them.
    Every configuration runs once a round, the configurations alternating, so that a
    ratio compares runs taken side by side.
    """
    own_threads = {"dispatch_render_processes": 0}
    runs: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for processes in (1, 2):
            runs[f"sqlite_{processes}p"].append(measure(n, None, processes, **own_threads)["per_s"])
            with postgres_database() as url:
                if url is not None:
                    r = measure(n, url, processes, **own_threads)
                    runs[f"pg_{processes}p"].append(r["per_s"])
        runs["sqlite_1p_render_process"].append(measure(n, None, 1)["per_s"])
        with postgres_database() as url:
            if url is not None:
                runs["pg_1p_render_process"].append(measure(n, url, 1)["per_s"])
    figures: dict[str, Any] = {"dispatch_messages": n, "dispatch_rounds": rounds}
    figures |= {f"{key}_per_s": round(median(rates)) for key, rates in runs.items()}

    def ratio(name: str, over: str, of: str) -> None:
        if runs.get(over) and runs.get(of):
            each = [a / b for a, b in zip(runs[over], runs[of], strict=True)]
            figures[name] = round(median(each), 2)
            figures[f"{name}_rounds"] = " ".join(f"{r:.2f}" for r in each)

    ratio("sqlite_two_process_ratio", "sqlite_2p", "sqlite_1p")
    ratio("pg_two_process_ratio", "pg_2p", "pg_1p")
    # One dispatcher on PostgreSQL against one on SQLite, measured in the same round.
    ratio("pg_sqlite_1p_ratio", "pg_1p", "sqlite_1p")
    ratio("pg_sqlite_1p_render_process_ratio", "pg_1p_render_process", "sqlite_1p_render_process")
    return figures


def bench_large_log(n: int, history: int) -> dict[str, Any]:
    small = measure(n, None, 1)
    large = measure(n, None, 1, history=history)
    return {
        "log_history": history,
        "small_log_per_s": round(small["per_s"]),
        "large_log_per_s": round(large["per_s"]),
        "large_log_ratio": round(large["per_s"] / small["per_s"], 2),
        "large_log_peak_rss_mb": round(large["rss_mb"]),
    }


def run(quick: bool = False) -> dict[str, Any]:
    n = 5_000 if quick else 20_000
    figures = {
        **bench_plan(10_000 if quick else 100_000, 2_000 if quick else 5_000),
        **bench_dispatch(n),
        **bench_large_log(10_000, 100_000 if quick else 1_000_000),
    }
    for key, target in TARGETS.items():
        if key in figures:
            figures[f"{key}_target"] = target
            figures[f"{key}_ok"] = figures[key] >= target
    figures["large_log_peak_rss_ok"] = figures["large_log_peak_rss_mb"] <= 300
    return figures


def bench_million() -> dict[str, Any]:
    """One dispatcher sending a million due e-mails: its rate and peak RSS (about 15 min)."""
    r = measure(1_000_000, None, 1)
    return {"million_per_s": round(r["per_s"]), "million_peak_rss_mb": round(r["rss_mb"])}


def main() -> None:
    import sys

    figures = bench_million() if "--million" in sys.argv else run(quick="--quick" in sys.argv)
    for key, value in figures.items():
        print(f"{key:36} {value}")


if __name__ == "__main__":
    main()

"""A forecast: what the journeys would do up to a date, before a single customer is touched.

:func:`run_forecast` runs the engine — events, enrolments, the contact policy, bundling,
planning — on simulated time over a throwaway copy of the project's database
(:mod:`aftersale.snapshot`), from where the project's clock stands to ``until``. It never
sends (its channels accept and forget, :class:`scheduler.simulation.CountingChannel`),
renders no e-mail (an SMS is rendered for its segments, which set its price), and leaves the
project's database, clock and outbox exactly as they were. With ``journeys`` (a directory
of proposed definitions) it runs a second time from a second copy, with those journeys
instead of the project's, and reports both side by side with the differences.

What it reports (:mod:`aftersale.forecast_figures` computes it from the copy):

* ``statuses`` — every message by status at ``until``, as ``log export`` would count them
  after ``simulate --until`` the same date on the same project (the same engine ran);
* ``journeys`` — per journey and channel, the messages sent, the deferrals by reason and
  the messages skipped (or cancelled) by reason during the forecast;
* ``per_customer`` — contacts per customer (every message sent to them) in any 7 and any
  30 days of the forecast: median, 90th and 99th percentile and maximum over the customers
  contacted, the customers at the maximum, and the caps' pressure (the deferrals each cap
  caused, and what became of the messages it held);
* ``cost`` — e-mails times ``stats.email_price``, SMS segments times
  ``stats.sms_segment_price``, in ``stats.currency``;
* ``resting`` — the customers whose offers rest at ``until``, by reason: ``unsatisfied``
  (a low rating after a complaint) and ``fatigue`` (unanswered e-mails), as ``stats`` counts
  them now.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aftersale import forecast_shards
from aftersale.admin.terminal import project_prices
from aftersale.app import Project
from aftersale.customer_value import resting
from aftersale.errors import AftersaleError
from aftersale.forecast_figures import Figures, Tally, decision_mark, differences, tally
from aftersale.settings import Settings
from aftersale.snapshot import snapshot
from campaigns.journeys import JourneyProblem, LoadedJourney, journey_files, load_journeys
from campaigns.models import reading
from campaigns.store import customers_t
from scheduler.clock import SimulatedClock
from scheduler.simulation import CountingChannel, ForecastDispatcher, simulate

# The page cache of each connection to a forecast's copy (KiB): SQLite's default is 2 MB.
CACHE_KIB = 64 * 1024
COUNT_CUSTOMERS = sa.select(sa.func.count()).select_from(customers_t)


class ForecastInputError(AftersaleError):
    """What the forecast was asked cannot be run: a date in the past, bad proposed journeys."""


class ForecastFailed(AftersaleError):
    """The forecast could not finish (one of its processes died); nothing was changed."""


@dataclass
class Forecast:
    """The figures of the project's journeys up to ``until``, and of the proposed ones."""

    start: datetime
    until: datetime
    current: Figures
    proposed: Figures | None = None
    proposed_from: str | None = None

    def as_json(self) -> dict[str, Any]:
        """``{until, statuses, journeys, per_customer, cost, proposed}``; ``proposed`` holds
        the same four figures of the proposed journeys and their ``differences``, or None."""
        shown = {"until": self.until.isoformat(), **self.current.as_json()}
        if self.proposed is None:
            return {**shown, "proposed": None}
        return {
            **shown,
            "proposed": {
                "journeys_dir": self.proposed_from,
                **self.proposed.as_json(),
                "differences": differences(self.current, self.proposed),
            },
        }


@dataclass
class _ForecastProject(Project):
    """The project over its throwaway copy, optionally with other journeys."""

    journeys_from: Path | None = None

    @cached_property
    def db(self) -> Engine:
        """The copy's engine: a throwaway file, so no sync to disk; a larger page cache."""
        engine = Project.db.func(self)  # type: ignore[attr-defined]

        @sa.event.listens_for(engine, "connect")
        def _throwaway(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA synchronous=OFF")
            dbapi_conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            # The engine writes only rows it made itself: no parent to look up per row.
            dbapi_conn.execute("PRAGMA foreign_keys=OFF")

        engine.dispose()  # the connection that migrated it had none of this
        return engine

    def load_journeys(self) -> tuple[list[LoadedJourney], list[JourneyProblem]]:
        if self.journeys_from is None:
            return super().load_journeys()
        return load_journeys(self.journeys_from)


def check_proposed(directory: Path) -> None:
    """Refuse a proposed journeys directory that cannot be read or holds an invalid journey."""
    if not directory.is_dir():
        raise ForecastInputError(f"{directory}: --journeys is not a directory")
    try:
        os.listdir(directory)
    except OSError as exc:
        raise ForecastInputError(f"{directory}: cannot be read ({exc.strerror})") from None
    files = journey_files(directory)
    if not files or files[0].parent != directory:
        raise ForecastInputError(f"{directory}: no journey files (*.yaml) in it")
    for path in files:
        if not os.access(path, os.R_OK):
            raise ForecastInputError(f"{path}: cannot be read")
    _loaded, problems = load_journeys(directory)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ForecastInputError(f"{errors[0]}{more}")


def forecast_start(project: Project, until: datetime) -> datetime:
    """Where the forecast starts (the project's clock); refuses an ``until`` not after it."""
    start = project.simulated_now()
    if start is None:
        raise ForecastInputError("nothing to forecast: import events first")
    if until <= start:
        raise ForecastInputError(
            f"--until {until:%Y-%m-%d %H:%M} UTC is not after the project's clock "
            f"({start:%Y-%m-%d %H:%M} UTC)"
        )
    return start


def run_forecast(
    project: Project, until: datetime, journeys: Path | None = None, *, processes: int | None = None
) -> Forecast:
    """Forecast the project's journeys (and the proposed ``journeys``) up to ``until``.

    ``processes``: how many processes share the customers (by default as
    :func:`aftersale.forecast_shards.processes_for` says; the figures are the same).
    Raises :class:`ForecastInputError` for an ``until`` not after the project's clock or
    an unusable ``journeys`` directory, before anything runs.
    """
    start = forecast_start(project, until)
    if journeys is not None:
        check_proposed(journeys)
    current = _run(project, until, None, processes)
    proposed = _run(project, until, journeys, processes) if journeys is not None else None
    return Forecast(
        start, until, current, proposed, str(journeys) if journeys is not None else None
    )


def _run(
    project: Project, until: datetime, journeys: Path | None, processes: int | None = None
) -> Figures:
    """Run the engine on a fresh copy of the project's database, in ``processes`` processes
    (:mod:`aftersale.forecast_shards`), and read its figures."""
    with snapshot(project.db) as url:
        _drop_unread_indexes(url)
        settings = project.settings
        copy = _ForecastProject(
            settings.model_copy(update={"database_url": url}), journeys_from=journeys
        )
        try:
            with reading(copy.db) as conn:
                mark = decision_mark(conn)
                customers = conn.execute(COUNT_CUSTOMERS).scalar_one()
            rated = bool(settings.email_rate or settings.sms_rate)
            parts = processes or forecast_shards.processes_for(customers, os.cpu_count(), rated)
            if parts == 1:
                _forecast_copy(copy, until)
                found, peaks = _read_tally(copy, mark, until), []
            else:
                copy.db.dispose()  # the copies are made from the file
                found, peaks = _forecast_in_parts(
                    settings, Path(copy.db.url.database), journeys, until, parts, mark
                )
            shown = found.figures(project_prices(project))
            shown.worker_peaks_mb = peaks
            return shown
        finally:
            copy.close()


# Indexes of the console and of delivery reports: the engine never reads them while it
# forecasts, the figures at the end read by other paths, and each costs every message the
# forecast writes (the journey figures' index has fifteen columns).
UNREAD_INDEXES = (
    "ix_messages_journey_figures",
    "ix_messages_decided",
    "ix_messages_provider_message_id",
    "ix_message_decisions_message_id",
)


def _drop_unread_indexes(url: str) -> None:
    """Drop :data:`UNREAD_INDEXES` from the throwaway copy at ``url``."""
    conn = sqlite3.connect(sa.engine.make_url(url).database)
    try:
        for name in UNREAD_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.commit()
    finally:
        conn.close()


def _read_tally(
    copy: Project, mark: int, until: datetime, part: tuple[int, int] | None = None
) -> Tally:
    """The figures of the forecast run on ``copy``, of its customers in ``part`` (this one
    of so many) or of all."""
    owns = forecast_shards.owned_by(*part) if part is not None else None
    with reading(copy.db) as conn:
        found = tally(conn, mark, owns)
        found.resting.update(resting(copy, conn, until, owns))
    return found


def _forecast_copy(copy: Project, until: datetime) -> None:
    """The engine on ``copy`` (a throwaway project) from its clock to ``until``; sends nothing."""
    copy.channel_overrides = {"email": CountingChannel("email"), "sms": CountingChannel("sms")}
    start = copy.simulated_now()
    assert start is not None, "checked on the project before copying it"
    clock = SimulatedClock(start)
    dispatcher = copy.dispatcher(clock, kind=ForecastDispatcher)
    try:
        simulate(dispatcher, clock, until)
    finally:
        dispatcher.close()


def _forecast_in_parts(
    settings: Settings, path: Path, journeys: Path | None, until: datetime, parts: int, mark: int
) -> tuple[Tally, list[float]]:
    """Forecast the snapshot at ``path`` in ``parts`` processes, each over a copy holding a
    share of the customers and reading the figures of its own. Returns their figures added
    up, and each process's peak resident memory (MB)."""
    copies = forecast_shards.split(path, parts)
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads
    with ProcessPoolExecutor(max_workers=parts, mp_context=spawn) as pool:

        def submit(part: int, copy: Path) -> Any:
            try:
                return pool.submit(
                    _forecast_part, settings, copy, journeys, until, mark, (part, parts)
                )
            except OSError as exc:  # the pool broke while it started its next process
                raise BrokenProcessPool(str(exc)) from exc

        try:  # a process that failed fails the forecast, with its error
            done = [submit(part, copy) for part, copy in enumerate(copies)]
            results = [future.result() for future in done]
        except BrokenProcessPool:
            # The pool stops the other processes with SIGTERM and waits for them; one
            # caught starting up can outlive it, and the wait (on leaving this block)
            # would never end. Make sure they end.
            for process in list((pool._processes or {}).values()):  # noqa: SLF001
                process.kill()
            raise ForecastFailed(
                f"one of the forecast's {parts} processes ended abruptly (killed, or out of "
                "memory?); the forecast did not finish, and nothing of the project changed"
            ) from None
    found = Tally()
    for tallied, _peak in results:
        found.add(tallied)
    return found, [peak for _tallied, peak in results]


def _forecast_part(
    settings: Settings,
    path: Path,
    journeys: Path | None,
    until: datetime,
    mark: int,
    part: tuple[int, int],
) -> tuple[Tally, float]:
    """In a process of its own: the engine over one copy of the snapshot, and the figures
    of its customers. Returns them and the process's peak resident memory (MB; Linux,
    else 0)."""
    copy = _ForecastProject(
        settings.model_copy(update={"database_url": f"sqlite:///{path}"}), journeys_from=journeys
    )
    try:
        _forecast_copy(copy, until)
        found = _read_tally(copy, mark, until, part)
    finally:
        copy.close()
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return found, 0.0
    peak = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return found, int(peak) / 1024

"""Dispatcher processes: one or several per machine, any number of machines per database.

Each :class:`Worker` wraps one dispatcher with a heartbeat (a row in ``dispatchers``, written
every tick and between batches) and a :class:`~scheduler.leadership.Leadership`: the leader
applies due events, expires leases and prunes old heartbeats; every worker dispatches.

``run_workers(spec, n)`` starts ``n`` worker processes with the ``spawn`` start method, so
each builds its own project and database engine (an engine must never cross a fork), and
forwards SIGTERM/SIGINT to them: each stops claiming, finishes the batch in flight, records
it and exits.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaigns.models import DispatcherHeartbeat
from scheduler.dispatcher import Dispatcher, DispatchStats
from scheduler.leadership import Leadership, leadership_for

if TYPE_CHECKING:
    from aftersale.app import Project
    from channels import Channel

log = logging.getLogger(__name__)
dispatchers_t = DispatcherHeartbeat.__table__
# Heartbeats not seen for this long belong to dispatchers that are gone for good.
PRUNE_AFTER = timedelta(hours=1)
# Between batches of a long tick, at most one heartbeat this often.
BEAT_EVERY = 5.0


@dataclass
class Chore:
    """Housekeeping the leader does now and then beside dispatching (e.g. evaluating the
    complaint alerts): ``run`` at most once every ``every`` seconds of real time."""

    name: str
    every: float
    run: Callable[[], object]
    last: float | None = None

    def due(self, now: float) -> bool:
        return self.last is None or now - self.last >= self.every


class Heartbeat:
    """This process's row in ``dispatchers``; times are real time, even in a simulation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.started_at = datetime.now(UTC)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{self.started_at:%Y%m%dT%H%M%S}"
        self.sent = 0
        self._last = 0.0
        self._written = False

    def beat(self, *, leader: bool, sent: int = 0, throttle: bool = False) -> None:
        """Record that we are alive; a failed write is logged, never fatal."""
        self.sent += sent
        if throttle and time.monotonic() - self._last < BEAT_EVERY:
            return
        self._last = time.monotonic()
        values = {"seen_at": datetime.now(UTC), "is_leader": leader, "sent": self.sent}
        try:
            with self.engine.begin() as conn:
                if self._written:
                    found = conn.execute(
                        dispatchers_t.update().where(dispatchers_t.c.id == self.id).values(values)
                    ).rowcount
                    if found:
                        return
                conn.execute(dispatchers_t.insert().values({**self._identity(), **values}))
            self._written = True
        except sa.exc.DBAPIError as exc:
            log.warning("heartbeat not written: %s", exc.orig)

    def _identity(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
        }

    def prune(self) -> int:
        """Forget dispatchers not seen for :data:`PRUNE_AFTER`; returns how many."""
        cutoff = datetime.now(UTC) - PRUNE_AFTER
        with self.engine.begin() as conn:
            return conn.execute(
                dispatchers_t.delete().where(dispatchers_t.c.seen_at < cutoff)
            ).rowcount

    def remove(self) -> None:
        """A clean exit: this dispatcher is no longer listed."""
        try:
            with self.engine.begin() as conn:
                conn.execute(dispatchers_t.delete().where(dispatchers_t.c.id == self.id))
        except sa.exc.DBAPIError as exc:
            log.warning("heartbeat not removed: %s", exc.orig)


class Worker:
    """One dispatcher taking part with others: heartbeat, leadership, then dispatch."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        leadership: Leadership,
        heartbeat: Heartbeat,
        chores: list[Chore] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.leadership = leadership
        self.heartbeat = heartbeat
        self.chores = list(chores or ())
        self.leading = False
        self._counted = 0  # sends of this tick already in the heartbeat
        dispatcher.on_batch = self._between_batches

    @classmethod
    def for_dispatcher(cls, dispatcher: Dispatcher, chores: list[Chore] | None = None) -> Worker:
        return cls(
            dispatcher,
            leadership=leadership_for(dispatcher.db),
            heartbeat=Heartbeat(dispatcher.db),
            chores=chores,
        )

    def tick(self) -> DispatchStats:
        """Housekeeping if we lead, then dispatch what is due."""
        self.leading = self._leads()
        self.heartbeat.beat(leader=self.leading)
        stats = self.dispatcher.tick(housekeeping=self.leading)
        if self.leading:
            self.heartbeat.prune()
            self._do_chores()
        self.heartbeat.beat(leader=self.leading, sent=stats.sent - self._counted)
        self._counted = 0
        return stats

    def _do_chores(self) -> None:
        """The leader's chores that are due; one that fails is logged and tried next time."""
        for chore in self.chores:
            now = time.monotonic()
            if self.stopping or not chore.due(now):
                continue
            chore.last = now
            try:
                chore.run()
            except Exception:  # never fatal: dispatching goes on
                log.exception("%s failed; trying again in %.0f s", chore.name, chore.every)

    def _between_batches(self, stats: DispatchStats) -> None:
        self.heartbeat.beat(leader=self.leading, sent=stats.sent - self._counted, throttle=True)
        self._counted = stats.sent

    def _leads(self) -> bool:
        try:
            return self.leadership.holds()
        except sa.exc.DBAPIError:
            return False

    def request_stop(self) -> None:
        """Stop claiming; what is in flight is sent and recorded first."""
        self.dispatcher.request_stop()

    @property
    def stopping(self) -> bool:
        return self.dispatcher.stopping

    def close(self) -> None:
        """Wait for the sends in flight, give up the lead, leave the dispatcher list."""
        self.dispatcher.close()
        self.leadership.release()
        self.heartbeat.remove()


# ----------------------------------------------------------------------- processes

ChannelFactory = Callable[["Project"], Mapping[str, "Channel"]]


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build its own project (picklable for ``spawn``).

    ``channels`` optionally names a ``"module:function"`` that, given the project, returns
    the channels to use instead of the configured providers (benchmarks, crash tests).
    ``dispatchers`` is how many dispatcher processes share this machine's cores (it sizes
    ``dispatch.render_processes = "auto"``); :func:`start_workers` sets it.
    """

    directory: str
    overrides: dict[str, Any] = field(default_factory=dict)
    channels: str | None = None
    once: bool = False
    log_level: int = logging.WARNING
    dispatchers: int = 1


def _resolve(target: str) -> ChannelFactory:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def run_worker(spec: WorkerSpec) -> None:
    """A worker process's whole life: build, tick (once or on the interval), shut down."""
    from aftersale.app import Project  # the shell wires the parts; imported in the child
    from scheduler.runner import Runner

    logging.basicConfig(level=spec.log_level, format="%(asctime)s %(process)d %(message)s")
    project = Project.open(spec.directory, **spec.overrides)
    if spec.channels:
        project.channel_overrides = dict(_resolve(spec.channels)(project))
    dispatcher = project.dispatcher(project.system_clock(), dispatchers=spec.dispatchers)
    worker = Worker.for_dispatcher(dispatcher, [] if spec.once else project.chores())
    try:
        if spec.once:
            signal.signal(signal.SIGTERM, lambda *_: worker.request_stop())
            worker.tick()
            worker.close()
        else:
            Runner(worker, interval=project.settings.dispatch_tick_seconds).run()
    finally:
        project.close()


def prepare(spec: WorkerSpec) -> None:
    """Migrate and sync journeys once, before several processes would race to do it."""
    from aftersale.app import Project

    project = Project.open(spec.directory, **spec.overrides)
    try:
        _ = project.journeys
    finally:
        project.close()


def start_workers(spec: WorkerSpec, count: int) -> list[multiprocessing.process.BaseProcess]:
    """Start ``count`` worker processes (``spawn``: nothing of ours crosses a fork)."""
    context = multiprocessing.get_context("spawn")
    spec = replace(spec, dispatchers=count)
    processes = [
        context.Process(target=run_worker, args=(spec,), name=f"dispatcher-{n}")
        for n in range(count)
    ]
    for process in processes:
        process.start()
    return processes


def run_workers(spec: WorkerSpec, count: int) -> int:
    """Run ``count`` worker processes until they exit; SIGTERM/SIGINT are passed on.

    Returns 0 when every worker exited cleanly, else the first non-zero exit code.
    """
    prepare(spec)
    processes = start_workers(spec, count)

    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    codes = [p.exitcode or 0 for p in processes]
    return next((c for c in codes if c), 0)

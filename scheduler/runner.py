"""The long-running process: APScheduler ticks a worker on an interval.

The database is the schedule; APScheduler only provides the heartbeat (one in-memory tick
job, never a shared job store).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler.dispatcher import DispatchStats
from scheduler.workers import Worker

log = logging.getLogger(__name__)


class Runner:
    """Ticks a worker every ``interval`` seconds until SIGINT or SIGTERM.

    On a signal the worker stops claiming, sends and records the batch in flight, and
    :meth:`run` returns.
    """

    def __init__(
        self,
        worker: Worker,
        *,
        interval: float,
        on_tick: Callable[[DispatchStats], None] | None = None,
    ) -> None:
        self.worker = worker
        self.on_tick = on_tick
        self.scheduler = BlockingScheduler(timezone="UTC")
        self.scheduler.add_job(
            self._tick, "interval", seconds=interval, id="tick", max_instances=1, coalesce=True
        )
        self.interval = interval

    def _tick(self) -> None:
        try:
            stats = self.worker.tick()
        except Exception:  # a failing tick is logged and retried next time, never fatal
            log.exception("dispatcher tick failed")
            return
        if self.on_tick is not None:
            self.on_tick(stats)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing in-flight sends, then stopping", signum)
        self.worker.request_stop()
        if self.scheduler.running:
            # Waits for a running tick, which now ends after its batch in flight.
            self.scheduler.shutdown(wait=True)

    def run(self) -> None:
        """Tick at once, then on the interval; returns after a clean shutdown."""
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        try:
            self._tick()
            if not self.worker.stopping:
                self.scheduler.start()
        finally:
            self.worker.close()

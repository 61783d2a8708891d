"""The long-running process: APScheduler ticks the dispatcher on an interval.

The database is the schedule; APScheduler only provides the heartbeat (one in-memory tick
job, never a shared job store).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler.dispatcher import Dispatcher, DispatchStats

log = logging.getLogger(__name__)


class Runner:
    """Ticks a dispatcher every ``interval`` seconds until SIGINT or SIGTERM."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        interval: float,
        on_tick: Callable[[DispatchStats], None] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.on_tick = on_tick
        self.scheduler = BlockingScheduler(timezone="UTC")
        self.scheduler.add_job(
            self._tick, "interval", seconds=interval, id="tick", max_instances=1, coalesce=True
        )
        self.interval = interval

    def _tick(self) -> None:
        try:
            stats = self.dispatcher.tick()
        except Exception:  # a failing tick is logged and retried next time, never fatal
            log.exception("dispatcher tick failed")
            return
        if self.on_tick is not None:
            self.on_tick(stats)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing in-flight sends, then stopping", signum)
        self.scheduler.shutdown(wait=True)

    def run(self) -> None:
        """Tick at once, then on the interval; returns after a clean shutdown."""
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        self._tick()
        self.scheduler.start()
        self.dispatcher.close()

"""Simulated time: run the dispatcher from due time to due time up to a date."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from scheduler.clock import SimulatedClock
from scheduler.dispatcher import Dispatcher, DispatchStats


def simulate(
    dispatcher: Dispatcher,
    clock: SimulatedClock,
    until: datetime,
    *,
    on_step: Callable[[datetime, DispatchStats], None] | None = None,
) -> DispatchStats:
    """Jump the clock to each next due time and tick, until nothing is due before ``until``.

    The clock ends at ``until``; messages and events due later stay where they are.
    """
    total = DispatchStats()
    while True:
        stats = dispatcher.tick()
        total.add(stats)
        if on_step is not None:
            on_step(clock.now(), stats)
        upcoming = dispatcher.next_due()
        if upcoming is None or upcoming > until:
            break
        if upcoming <= clock.now():
            continue  # something became due at this very instant (a retry at once)
        clock.advance_to(upcoming)
    clock.advance_to(until)
    return total

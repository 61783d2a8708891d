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

    Due are planned messages, unapplied events and the leases of messages a dispatcher
    died sending. The clock ends at ``until``; what is due later stays where it is. Each
    instant does only what is due then: an instant when only events are due applies them
    without a dispatch round. (Alone on its clock, the simulation knows what is due.)
    """
    total = DispatchStats()
    stats = dispatcher.tick()
    while True:
        total.add(stats)
        if on_step is not None:
            on_step(clock.now(), stats)
        message_at, event_at, lease_at = dispatcher.upcoming()
        upcoming = min((t for t in (message_at, event_at, lease_at) if t is not None), default=None)
        if upcoming is None or upcoming > until:
            break
        if upcoming > clock.now():  # else something became due at this very instant
            clock.advance_to(upcoming)
        message_due = message_at is not None and message_at <= upcoming
        lease_due = lease_at is not None and lease_at <= upcoming
        if message_due or lease_due:
            stats = dispatcher.tick(
                apply_events=event_at is not None and event_at <= upcoming,
                expire_leases=lease_due,
            )
        else:
            stats = DispatchStats(events=dispatcher.apply_due_events(clock.now()))
    clock.advance_to(until)
    return total

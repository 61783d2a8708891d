"""Simulated time: run the dispatcher from due time to due time up to a date."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from channels import Channel, OutgoingMessage, SendResult
from channels.base import ChannelKind
from scheduler.clock import SimulatedClock
from scheduler.dispatcher import Dispatcher, DispatchStats, MessageError, _Batch
from scheduler.handoff import Verdict
from scheduler.rendering import PendingRender, RenderJob


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


class CountingChannel(Channel):
    """Accepts every message and keeps nothing but a count: a forecast's channels."""

    name = "forecast"

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        self._ids = itertools.count(1)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Accept ``message`` (nothing leaves the process)."""
        return SendResult(provider=self.name, provider_message_id=f"{self.kind}-{next(self._ids)}")


class SimulationDispatcher(Dispatcher):
    """The dispatcher of a simulation: the same decisions, without the waits of live sending.

    Alone on a simulated clock, a batch has nothing to overlap: nothing else happens
    between its reservation and its sends. So each message is rendered (in the render
    processes, when the batch is big enough for them) and sent in this thread, in the
    batch's order, instead of going to the sending threads and back — which, with a
    batch or two of messages at each simulated instant, cost more than the sends.
    Hand-offs are still journalled before each send: a simulation may use a real
    provider, and an interrupted one must not send twice.
    """

    def _start(self, reserved: list[Any]) -> list[Future[None]]:
        jobs = [self._job(item) for item in reserved]
        batch = _Batch([item.row.id for item in reserved])
        for item in reserved:
            item.batch = batch
        self._enqueue(reserved)
        pending = self.render_pool.submit(jobs) if self.render_pool is not None else None
        done: list[Future[None]] = []
        for item, job, rendering in zip(reserved, jobs, pending or [None] * len(jobs), strict=True):
            self._deliver(item, job, rendering)
            future: Future[None] = Future()
            future.set_result(None)
            done.append(future)
        return done


class ForecastDispatcher(SimulationDispatcher):
    """The dispatcher of a forecast: renders only what the figures need.

    An e-mail is accepted without being rendered (its price does not depend on its
    content); an SMS is rendered, because its price is per segment. Everything else —
    claiming, the policy, bundling, recording, planning the next step — is the
    dispatcher's own, so a forecast decides exactly as ``simulate`` would. (A template
    that fails to render would fail its e-mail in ``simulate``; ``journeys validate``
    finds those before either runs.) Nothing is handed over, so nothing is journalled:
    the channels accept and forget, and the copy is thrown away.
    """

    render_processes = False  # a forecast renders only SMS, a few at a time

    def _send(self, item: Any) -> None:
        channel = self.channels[item.outgoing.kind]
        item.verdict = Verdict.GO
        item.result = channel.send(item.outgoing)

    def _forget(self, ids: list[int]) -> None:
        """Nothing was journalled."""

    def _deliver(self, item: Any, job: RenderJob, rendering: PendingRender | None) -> None:
        if job.channel != "email":
            super()._deliver(item, job, rendering)
            return
        try:
            item.outgoing = OutgoingMessage(
                message_id=str(job.message_id),
                kind="email",
                to="",
                body_text="",
                category=job.category,
                customer_id=job.customer_id,
                journey=job.journey,
                step=job.step,
            )
            item.locale, item.details = job.locale, {}
            self._send(item)
        except Exception as exc:  # noqa: BLE001 - one broken message never stops the batch
            item.error = MessageError.of(exc)
        finally:
            self._dequeue(item)

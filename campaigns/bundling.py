"""Bundling: which per-item messages go out together as one message?

Pure decision logic — no database, no clock, no I/O. A customer who bought a dishwasher and
a washing machine in one order is enrolled in a per-item journey (``for_each: item``) once
for each; without bundling each enrolment's step would send its own, identical-looking
message in the same minute. What the customer should get is one message that names both.

The dispatcher hands in the message it has just allowed to send (the *carrier*), the
planned messages that could join it (*candidates*) and the current instant, and gets back
the candidates that are bundled into the carrier, in due order. A candidate is bundled iff:

1. it is of the same customer, journey and step as the carrier, and of another enrolment
   (two occurrences of one enrolment are never one message);
2. its due time lies within the journey's ``bundle_within`` of the carrier's (either side;
   both as they stand now, after any deferral); ``bundle_within`` defaults to ``24h``, and
   ``0m`` switches bundling off;
3. it has not expired (``expires_at`` after ``now``) — an expired message is skipped as
   ``expired`` on its own, not carried;
4. the caller's ``eligible`` check passes (the step's condition holds for that item).

Consent, suppression, complaints, quiet times and caps are not asked again: a candidate
shares the carrier's customer and channel, and the carrier has just passed them. The
carrier is sent, and it alone is a contact for the frequency caps; each bundled candidate
ends ``skipped`` with reason ``bundled`` and the carrier's id in ``bundled_into``. Nothing
is bundled into a carrier that the policy deferred or skipped: its candidates stay planned
and are decided in their own time.

Only the first message of a bundle that is allowed becomes its carrier, so whichever of the
items falls due first decides when the customer hears about all of them; a candidate due up
to ``bundle_within`` later goes out that much early, never later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

__all__ = ["BUNDLED", "Bundleable", "bundle_key", "bundled_with"]

#: The skip reason of a message that another one carried.
BUNDLED = "bundled"


class Bundleable(Protocol):
    """What bundling reads of a message (a dispatcher's claimed row has these)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def journey_id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def enrollment_id(self) -> str: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...


M = TypeVar("M", bound=Bundleable)


def bundle_key(message: Bundleable) -> tuple[str, str, str]:
    """Messages can only be bundled with others of the same key."""
    return (message.customer_id, message.journey_id, message.step)


def bundled_with(
    carrier: Bundleable,
    candidates: Iterable[M],
    window: timedelta,
    now: datetime,
    eligible: Callable[[M], bool] = lambda _: True,
) -> list[M]:
    """The candidates that go out inside ``carrier`` (rules 1–4 above), earliest due first."""
    key = bundle_key(carrier)
    return sorted(
        (
            c
            for c in candidates
            if bundle_key(c) == key
            and c.enrollment_id != carrier.enrollment_id
            and abs(c.due_at - carrier.due_at) <= window
            and (c.expires_at is None or c.expires_at > now)
            and eligible(c)
        ),
        key=lambda c: c.due_at,
    )

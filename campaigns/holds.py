"""Holds on a customer's marketing that last a while: after a low rating, and for fatigue.

Pure decision logic, used by the contact policy (rules 4a and 4b of :mod:`campaigns.policy`)
and by the console and ``aftersale stats`` to say who is resting. :func:`held` answers one
question — until when, and why, may this customer hear no marketing after ``now``? — from:

* ``last_rating``: the customer's last satisfaction rating after a complaint and when it
  was given. A rating of :data:`UNSATISFIED_AT_MOST` (2) or less holds marketing for
  ``unsatisfied_hold`` (default :data:`UNSATISFIED_HOLD`, 30 days) from the rating:
  reason ``unsatisfied``. A later rating above 2 replaces it and so ends the hold.
* ``unanswered``: when the marketing e-mails the customer left unanswered went out (those
  since their last open, click or purchase; :mod:`campaigns.fatigue` reads them). With
  :class:`Fatigue` ``(after, rest)`` on, ``after`` or more of them hold marketing until
  ``rest`` after the latest: reason ``fatigue``. An answer empties the list and ends the
  rest; once a rest is over one more message may go out.

The unsatisfied hold is checked first: a customer who is both is reported ``unsatisfied``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.durations import SETTING_SPAN, SETTING_UNITS

__all__ = [
    "FATIGUE_AFTER",
    "FATIGUE_REST",
    "UNSATISFIED_AT_MOST",
    "UNSATISFIED_HOLD",
    "Fatigue",
    "KeyedError",
    "held",
    "parse_fatigue",
    "parse_hold",
]

_OFF = ("", "none", "off")


class KeyedError(ValueError):
    """A configuration error whose message already names the exact key."""


FATIGUE_AFTER = 5
FATIGUE_REST = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Fatigue:
    """Rest a customer's marketing for ``rest`` after ``after`` unanswered e-mails in a row."""

    after: int = FATIGUE_AFTER
    rest: timedelta = FATIGUE_REST

    def __post_init__(self) -> None:
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 1:
            raise ValueError(f"after must be a whole number >= 1, got {self.after!r}")
        if self.rest <= timedelta(0):
            raise ValueError("rest must be positive")


#: A customer who rated 1 or 2 hears no marketing for this long unless configured.
UNSATISFIED_HOLD = timedelta(days=30)
#: Ratings at or below this put the customer on hold (and on the "needs attention" list).
UNSATISFIED_AT_MOST = 2


def held(
    unsatisfied_hold: timedelta | None,
    fatigue: Fatigue | None,
    last_rating: tuple[int, datetime] | None,
    unanswered: Sequence[datetime],
    now: datetime,
) -> tuple[datetime, str] | None:
    """Until when, and why, marketing is held after ``now``; None when nothing holds it."""
    if unsatisfied_hold is not None and last_rating is not None:
        value, at = last_rating
        if value <= UNSATISFIED_AT_MOST and at + unsatisfied_hold > now:
            return at + unsatisfied_hold, "unsatisfied"
    if fatigue is not None and len(unanswered) >= fatigue.after:
        until = max(unanswered) + fatigue.rest
        if until > now:
            return until, "fatigue"
    return None


def span(value: Any) -> timedelta:
    match = SETTING_SPAN.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"must look like 12h, 30d or 4w, got {value!r}")
    span = int(match.group(1)) * SETTING_UNITS[match.group(2)]
    if span <= timedelta(0):
        raise ValueError(f"must be positive, got {value!r}")
    return span


def parse_hold(value: Any) -> timedelta | None:
    if value is None or value is False or (isinstance(value, str) and value.lower() in _OFF):
        return None
    return span(value)


def parse_fatigue(value: Any) -> Fatigue | None:
    if value is None or value is False or (isinstance(value, str) and value.lower() in _OFF):
        return None
    if not isinstance(value, Mapping):
        raise ValueError('expected a table like {after = 5, rest = "30d"} or "off"')
    for key in value:
        if key not in ("after", "rest"):
            raise KeyedError(f"policy.fatigue.{key}: unknown setting")
    after = value.get("after", FATIGUE_AFTER)
    if isinstance(after, bool) or not isinstance(after, int) or after < 1:
        raise KeyedError(f"policy.fatigue.after: must be a whole number >= 1, got {after!r}")
    try:
        rest = span(value["rest"]) if "rest" in value else FATIGUE_REST
    except ValueError as exc:
        raise KeyedError(f"policy.fatigue.rest: {exc}") from exc
    return Fatigue(after, rest)

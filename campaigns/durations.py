"""Durations as marketers write them: ``30m``, ``2h``, ``14 days``, ``2 weeks``, ``-60d``,
``2 months``, ``1y``.

A duration is a signed number and a unit. Minutes, hours, days and weeks are fixed spans;
months and years are calendar steps: ``1 month`` from 31 January is 28 (or 29) February,
``1y`` from 29 February is 28 February, counted on the anchor's own calendar (its date in
the time zone it carries). A bare number (``14``) is refused: it could mean days, weeks or
minutes, and a journey that waits the wrong one is worse than one that does not load.

=====================  ==============================================
unit                   spellings
=====================  ==============================================
minutes                ``m``, ``min``, ``mins``, ``minute``, ``minutes``
hours                  ``h``, ``hr``, ``hrs``, ``hour``, ``hours``
days                   ``d``, ``day``, ``days``
weeks                  ``w``, ``wk``, ``wks``, ``week``, ``weeks``
months                 ``mo``, ``mon``, ``month``, ``months``
years                  ``y``, ``yr``, ``yrs``, ``year``, ``years``
=====================  ==============================================
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

__all__ = [
    "Duration",
    "DurationError",
    "EXAMPLES",
    "add_months",
    "is_duration",
    "parse_duration",
    "parse_span",
]

EXAMPLES = "30m, 2h, 14d, 14 days, 2 weeks, -60d, 2 months or 1y"
_FIXED = {
    "minutes": timedelta(minutes=1),
    "hours": timedelta(hours=1),
    "days": timedelta(days=1),
    "weeks": timedelta(weeks=1),
}
_SPELLINGS = {
    "minutes": ("m", "min", "mins", "minute", "minutes"),
    "hours": ("h", "hr", "hrs", "hour", "hours"),
    "days": ("d", "day", "days"),
    "weeks": ("w", "wk", "wks", "week", "weeks"),
    "months": ("mo", "mon", "month", "months"),
    "years": ("y", "yr", "yrs", "year", "years"),
}
_UNIT = {spelling: unit for unit, spellings in _SPELLINGS.items() for spelling in spellings}
_TEXT = re.compile(r"^\s*([+-]?)\s*(\d+)\s*([A-Za-z]*)\s*$")
_NUMBER = re.compile(r"^\s*[+-]?\d+(?:\.\d+)?\s*$")


class DurationError(ValueError):
    """Text that is not a duration; the message says what would be."""


def add_months(moment: datetime, months: int) -> datetime:
    """The same day-of-month ``months`` later (or earlier), clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def warranty_end(purchased_at: datetime, months: int, zone: tzinfo) -> datetime:
    """When a warranty of ``months`` bought at ``purchased_at`` ends, in UTC: the same time
    of day on the same day of the month ``months`` later, in the customer's calendar
    (bought on 1 May at 00:30 in Berlin, one month ends on 1 June at 00:30 there)."""
    return add_months(purchased_at.astimezone(zone), months).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Duration:
    """A signed span: calendar ``months`` (years are twelve), then a fixed ``delta``."""

    months: int = 0
    delta: timedelta = timedelta(0)

    @property
    def calendar(self) -> bool:
        """Whether the span depends on where it starts (months and years do)."""
        return self.months != 0

    @property
    def negative(self) -> bool:
        return self.months < 0 or (self.months == 0 and self.delta < timedelta(0))

    @property
    def zero(self) -> bool:
        return self.months == 0 and self.delta == timedelta(0)

    def after(self, moment: datetime, times: int = 1) -> datetime:
        """``moment`` moved by this span ``times`` over (months first, from the anchor)."""
        if self.months:
            moment = add_months(moment, self.months * times)
        return moment + self.delta * times if self.delta else moment

    def fixed(self) -> timedelta:
        """The span as a ``timedelta``; only for spans without months."""
        if self.months:
            raise DurationError("months and years have no fixed length here: use days or weeks")
        return self.delta


def _refuse(text: object) -> DurationError:
    if isinstance(text, int | float) and not isinstance(text, bool) or _NUMBER.match(str(text)):
        return DurationError(
            f"{text} is a bare number: add a unit, e.g. {text}d ({text} days) or "
            f"{text}h ({text} hours); durations look like {EXAMPLES}"
        )
    return DurationError(f"{str(text)!r} is not a duration; write e.g. {EXAMPLES}")


@lru_cache(maxsize=1024)
def parse_span(text: str) -> Duration:
    """Parse a duration (see the module docstring); raise :class:`DurationError`."""
    match = _TEXT.match(text) if isinstance(text, str) else None
    if match is None:
        raise _refuse(text)
    sign, amount, unit = match.groups()
    if not unit:
        raise _refuse(text)
    name = _UNIT.get(unit) or _UNIT.get(unit.lower())
    if name is None or (unit == "M"):
        raise DurationError(f"{unit!r} in {text!r} is not a unit; write e.g. {EXAMPLES}")
    count = -int(amount) if sign == "-" else int(amount)
    if name in ("months", "years"):
        return Duration(months=count * (12 if name == "years" else 1))
    return Duration(delta=_FIXED[name] * count)


def is_duration(text: object) -> bool:
    """Whether ``text`` is a duration literal (rather than an expression giving days)."""
    try:
        parse_span(text)  # type: ignore[arg-type]
    except (DurationError, TypeError):
        return False
    return True


def parse_duration(text: str) -> timedelta:
    """A fixed duration (``"90d"``, ``"-60d"``, ``"2h"``) as a ``timedelta``."""
    return parse_span(text).fixed()


# A span in the settings (a cap's ``per``, a hold's length): a whole number and one unit.
SETTING_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
SETTING_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}

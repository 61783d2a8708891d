"""Local-time windows for the contact policy: quiet hours, quiet days, public holidays.

Everything here is pure: instants in, instants out. An instant is an aware ``datetime``;
the recipient's local wall clock is found through ``zoneinfo`` and never stored. Local wall
times that must become instants again (the end of quiet hours, the next midnight) go through
:func:`first_instant_at_wall`, which handles both daylight-saving transitions:

* spring forward (a gap: 02:30 does not exist in Berlin on the last Sunday of March) — the
  answer is the transition instant itself, the first moment the wall clock reads 02:30 or
  later (03:00 CEST);
* fall back (a fold: 02:30 happens twice) — the first occurrence that is not in the past.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "NoFreeTime",
    "SendWindow",
    "QuietHours",
    "QuietCalendar",
    "WEEKDAYS",
    "first_instant_at_wall",
    "check_region",
    "holiday_dates",
    "known_region",
    "known_zone",
    "own_region",
    "parse_weekdays",
    "resolve_zone",
]

WEEKDAYS: dict[str, int] = {
    "mon": 0,
    "tue": 1,
    "wed": 2,
    "thu": 3,
    "fri": 4,
    "sat": 5,
    "sun": 6,
}
_FULL_WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
# A walk that has not escaped quiet time after this many steps never will (a rule set
# that is quiet on every day); configuration validation keeps us far from it.
_MAX_STEPS = 2_000
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily quiet window in local wall-clock time, ``[start, end)``.

    ``start > end`` wraps midnight ("20:00-09:00" is quiet from 20:00:00 up to but not
    including 09:00:00); ``start == end`` is an empty window.
    """

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Parse ``"HH:MM-HH:MM"`` (seconds optional); raise ``ValueError`` on anything else."""
        parts = text.split("-") if isinstance(text, str) else []
        if len(parts) != 2:
            raise ValueError(f"quiet hours must look like '20:00-09:00', got {text!r}")
        return cls(_parse_clock(parts[0]), _parse_clock(parts[1]))

    @property
    def empty(self) -> bool:
        """True when the window never applies (start equals end)."""
        return self.start == self.end

    @property
    def wraps(self) -> bool:
        """True when the window crosses local midnight."""
        return self.start > self.end

    def contains(self, wall: time) -> bool:
        """Whether a local wall-clock time lies inside the window."""
        if self.wraps:
            return wall >= self.start or wall < self.end
        return self.start <= wall < self.end

    def end_after(self, day: date, wall: time) -> date:
        """The local date on which the quiet window containing ``wall`` on ``day`` ends."""
        if self.wraps and wall >= self.start:
            return day + timedelta(days=1)
        return day

    def __str__(self) -> str:
        return f"{_format_clock(self.start)}-{_format_clock(self.end)}"


class NoFreeTime(ValueError):
    """The rules leave no instant free (a send window that lies wholly in quiet hours)."""


_WINDOW_EXAMPLE = '"10:00-18:00 mon-fri"'
_ALL_DAYS = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class SendWindow:
    """When a step may send, in the recipient's local time: ``"10:00-18:00 mon-fri"``.

    ``hours`` is the allowed daily span ``[start, end)`` (it may wrap midnight, None: all
    day); ``days`` the allowed weekdays (Monday = 0) of the local date. A step's window
    applies on top of the policy's quiet rules; outside it a message is deferred with
    the reason ``send_window``.
    """

    hours: QuietHours | None = None
    days: frozenset[int] = _ALL_DAYS

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        """``"10:00-18:00"``, ``"mon-fri"``, ``"10:00-18:00 mon-fri"``,
        ``"09:00-12:00 mon,wed,sat"``; ``ValueError`` in plain words otherwise."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a send window looks like {_WINDOW_EXAMPLE}, got {text!r}")
        hours, days = None, _ALL_DAYS
        for part in text.split():
            if ":" in part:
                hours = _window_hours(part, text)
            else:
                days = _window_days(part)
        if not days:
            raise ValueError(f"send window {text!r} names no day")
        return cls(hours, days)

    def allows(self, local: datetime) -> bool:
        """Whether a local wall-clock moment lies inside the window."""
        if local.weekday() not in self.days:
            return False
        return self.hours is None or self.hours.contains(local.time())

    def opens_after(self, local: datetime, zone: tzinfo, t: datetime) -> datetime:
        """The first instant after ``t`` (local ``local``) at which the window may open:
        the next midnight on a day it is closed, else the day's start of the hours."""
        day = local.date()
        if local.weekday() not in self.days or self.hours is None:
            return first_instant_at_wall(zone, day + timedelta(days=1), time(0), t)
        closed = QuietHours(self.hours.end, self.hours.start)  # the complement
        opens_on = closed.end_after(day, local.time())
        return first_instant_at_wall(zone, opens_on, self.hours.start, t)

    def __str__(self) -> str:
        days = ",".join(name for name, n in WEEKDAYS.items() if n in self.days)
        return " ".join(filter(None, [str(self.hours) if self.hours else "", days]))


def _window_hours(part: str, text: str) -> QuietHours:
    try:
        hours = QuietHours.parse(part)
    except ValueError as exc:
        message = str(exc).replace("quiet hours must look like '20:00-09:00'", "hours must be")
        raise ValueError(f"send window {text!r}: {message}; e.g. {_WINDOW_EXAMPLE}") from None
    if hours.empty:
        raise ValueError(f"send window {text!r} opens and closes at the same time")
    return hours


def _window_days(part: str) -> frozenset[int]:
    days: set[int] = set()
    for item in part.split(","):
        first, _, last = item.partition("-")
        start = _weekday(first)
        end = _weekday(last) if last else start
        days.update((start + k) % 7 for k in range((end - start) % 7 + 1))
    return frozenset(days)


def _parse_clock(text: str) -> time:
    match = _CLOCK.match(text)
    if not match:
        raise ValueError(f"not a clock time (HH:MM): {text!r}")
    hour, minute, second = (int(g) if g else 0 for g in match.groups())
    if hour == 24 and minute == 0 and second == 0:
        return time(0)  # "24:00" is accepted as the end of the day
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not a clock time (HH:MM): {text!r}")
    return time(hour, minute, second)


def _format_clock(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def parse_weekdays(names: Iterable[str | int]) -> frozenset[int]:
    """Turn ``["sat", "Sunday", 6]`` into weekday numbers (Monday = 0).

    Raises ``ValueError`` naming the first unrecognised entry.
    """
    days: set[int] = set()
    for name in names:
        days.add(_weekday(name))
    return frozenset(days)


def _weekday(name: str | int) -> int:
    if isinstance(name, int) and not isinstance(name, bool) and 0 <= name <= 6:
        return name
    if isinstance(name, str):
        key = name.strip().lower()
        if key in WEEKDAYS:
            return WEEKDAYS[key]
        if key in _FULL_WEEKDAYS:
            return _FULL_WEEKDAYS[key]
    raise ValueError(f"not a weekday: {name!r} (use mon, tue, wed, thu, fri, sat, sun)")


def split_region(region: str) -> tuple[str, str | None]:
    """``"DE-BY"`` → ``("DE", "BY")``; ``"DE"`` → ``("DE", None)``."""
    country, _, subdiv = region.strip().partition("-")
    return country.upper(), (subdiv.upper() or None)


@lru_cache(maxsize=1024)  # under "auto": every customer region, a few years each
def holiday_dates(region: str, year: int) -> frozenset[date]:
    """The public holidays of a country or country-subdivision in one year.

    Cached per (region, year): building a calendar costs milliseconds, a lookup must not.
    Raises ``ValueError`` for a region the ``holidays`` package does not know.
    """
    country, subdiv = split_region(region)
    try:
        import holidays  # its calendars take a tenth of a second to load: only when asked

        calendar = holidays.country_holidays(country, subdiv=subdiv, years=year)
    except NotImplementedError as exc:
        raise ValueError(f"unknown public holiday region {region!r}: {exc}") from exc
    return frozenset(calendar.keys())


@lru_cache(maxsize=1)
def _calendar_countries() -> frozenset[str]:
    """The ISO 3166-1 alpha-2 codes the ``holidays`` package has a calendar for, read from
    its registry: no calendar is loaded (loading the first loads every country's module,
    a tenth of a second)."""
    from holidays.registry import COUNTRIES

    return frozenset(codes[1] for codes in COUNTRIES.values())


def check_region(region: str) -> None:
    """Raise ``ValueError`` unless the ``holidays`` package has a calendar for ``region``
    (``"DE"``, ``"DE-BY"``): a whole country is looked up in its registry, a subdivision by
    building that calendar."""
    country, subdiv = split_region(region)
    if subdiv is None and country in _calendar_countries():
        return
    holiday_dates(region, 2026)


@lru_cache(maxsize=1024)
def known_region(region: str) -> str | None:
    """``region`` written the canonical way (``"de-by"`` → ``"DE-BY"``) when the ``holidays``
    package has its calendar; else the country alone when only the subdivision is unknown;
    else None."""
    if not isinstance(region, str) or not region.strip():
        return None
    country, subdiv = split_region(region)
    for candidate in (f"{country}-{subdiv}" if subdiv else country, country):
        try:
            check_region(candidate)
        except ValueError:
            continue
        return candidate
    return None


@lru_cache(maxsize=4096)
def phone_region(phone: str | None) -> str | None:
    """The country (ISO 3166-1 alpha-2) of an international phone number, or None."""
    if not phone:
        return None
    import phonenumbers  # its metadata takes a tenth of a second to load: only when asked

    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    return region if region and region != "001" else None


@lru_cache(maxsize=4096)
def own_region(country: str | None, phone: str | None) -> tuple[str | None, str | None]:
    """A customer's own holiday region and where it comes from.

    The ``country`` attribute (``"US"``, ``"DE-BY"``) if the ``holidays`` package knows it,
    else the phone number's country: ``("US", "country")``, ``("DE", "phone")``, or
    ``(None, None)`` when neither names a known calendar.
    """
    region = known_region(country) if country else None
    if region is not None:
        return region, "country"
    region = known_region(phone_region(phone) or "")
    if region is not None:
        return region, "phone"
    return None, None


@lru_cache(maxsize=1024)
def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return None


def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this system knows."""
    return _zone_or_none(name) is not None


def resolve_zone(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name; ``default`` when it is missing or invalid."""
    if not name:
        return default
    return _zone_or_none(name) or default


def first_instant_at_wall(zone: tzinfo, day: date, wall: time, not_before: datetime) -> datetime:
    """The earliest instant ``>= not_before`` at which the local clock on ``day`` reads ``wall``
    or later, in UTC.

    Ordinary times map to one instant. In a fold (the clock goes back) the earlier of the two
    readings that is not before ``not_before`` wins. In a gap (the clock jumps forward over
    ``wall``) the answer is the transition instant, the first moment past ``wall``.
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first < second:  # a fold: both readings exist
        return first if first >= not_before else second
    return _transition_between(zone, second, first, naive)


def _offset_change(
    zone: tzinfo, start: datetime, offset: timedelta | None, end: datetime
) -> datetime:
    """``end``, or the first instant in ``(start, end]`` whose UTC offset is not ``offset``.

    Assumes at most one change between the two (they are months apart; the walk never
    spans more than a day or so in one step).
    """
    if end.astimezone(zone).utcoffset() == offset:
        return end
    lo, hi = start, end
    while hi - lo > _TICK:
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi


def _transition_between(zone: tzinfo, low: datetime, high: datetime, naive: datetime) -> datetime:
    """Bisect for the first instant in ``(low, high]`` whose local wall clock is >= ``naive``.

    Only reached for a wall time inside a spring-forward gap, so it is off the hot path.
    """
    lo, hi = low, high
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True, slots=True)
class QuietCalendar:
    """When a recipient must not be contacted, in their local time.

    ``reason_at`` names the rule that makes an instant quiet ("quiet_days",
    "public_holiday", "quiet_hours", or "send_window" outside a step's own window) and ``next_free`` walks to the first instant that
    none of them covers.
    """

    hours: QuietHours | None = None
    days: frozenset[int] = frozenset()
    holidays_region: str | None = None
    # A step's own send window (``send_window``), on top of the rules above.
    window: SendWindow | None = None

    def reason_at(self, at: datetime, zone: tzinfo) -> str | None:
        """The rule that makes ``at`` quiet for someone in ``zone``, or None."""
        local = at.astimezone(zone)
        return self._reason_local(local)

    def _reason_local(self, local: datetime) -> str | None:
        # A whole-day rule is the more telling reason, so it is checked first.
        if self.days and local.weekday() in self.days:
            return "quiet_days"
        if self.holidays_region and local.date() in holiday_dates(self.holidays_region, local.year):
            return "public_holiday"
        if self.hours is not None and self.hours.contains(local.time()):
            return "quiet_hours"
        if self.window is not None and not self.window.allows(local):
            return "send_window"
        return None

    def next_free(
        self, at: datetime, zone: tzinfo, limit: datetime | None = None
    ) -> tuple[datetime, str | None]:
        """The earliest instant ``>= at`` outside every quiet rule, and the reason it moved.

        The reason is None when ``at`` itself is free. When a whole quiet day or holiday
        was crossed, that day's reason is reported even if quiet hours then held the message
        until the morning: "deferred over Sunday" explains more than "deferred to 09:00".
        With a ``limit`` (a message's expiry) the walk stops at the first step that reaches
        it, so the reason is the rule that held the message up to ``limit``, not one met
        beyond it; the instant returned is then only known to be ``>= limit``.
        """
        t, reason = at, None
        for _ in range(_MAX_STEPS):
            if limit is not None and t >= limit:
                return t, reason
            local = t.astimezone(zone)
            why = self._reason_local(local)
            if why is None:
                return t, reason
            if reason is None or why != "quiet_hours":
                reason = why
            # Stop at a UTC-offset change on the way: after it the wall clock reads
            # differently (in autumn it runs back and may leave the quiet window early).
            target = _offset_change(zone, t, local.utcoffset(), self._leave(local, why, zone, t))
            # Insisting on progress keeps the walk finite whatever the zone's rules are.
            t = max(target, t + _TICK)
        raise NoFreeTime("quiet rules leave no time at which anyone may be contacted")

    def _leave(self, local: datetime, why: str, zone: tzinfo, t: datetime) -> datetime:
        """The first instant after ``t`` that the rule ``why`` no longer covers."""
        day = local.date()
        if why == "send_window":
            assert self.window is not None
            return self.window.opens_after(local, zone, t)
        if why != "quiet_hours":
            return first_instant_at_wall(zone, day + timedelta(days=1), time(0), t)
        assert self.hours is not None
        end_day = self.hours.end_after(day, local.time())
        return first_instant_at_wall(zone, end_day, self.hours.end, t)

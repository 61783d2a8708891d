"""The contact policy: may this customer be contacted with this message now, later, or never?

Pure decision logic — no database, no clock, no I/O. The dispatcher hands in one planned
message (:class:`Candidate`), what it knows about the customer (:class:`Recipient`), the
marketing messages that count against frequency caps (:class:`Contact` history) and the
current instant, and gets back exactly one :data:`Decision`:

* :class:`Allow` — send now;
* :class:`Defer` — move the message to ``until``, the earliest instant every rule allows
  (``until=None``: held until an event, an open complaint being resolved);
* :class:`Skip` — never send, with a machine-readable reason.

Rules, in order (first match decides):

1. ``expires_at`` reached → ``Skip("expired")`` — or ``Skip("complaint_open")`` for a
   marketing message whose customer still has an open complaint, because the complaint is
   why it never went out.
2. Channel suppressed (bounce, spam report, STOP; any category) → ``Skip("suppressed:<why>")``.
3. Marketing without consent for the channel → ``Skip("no_consent:<channel>")``; with it,
   but not for the message's topic on the channel (``Candidate.topic``, see
   :mod:`campaigns.consent`) → ``Skip("no_consent:<channel>:<topic>")``.
4. Marketing while a complaint is open → ``Defer(expires_at, "complaint_open")``. The caller
   re-dues the message when the complaint is resolved; if it is still open at expiry, rule 1
   skips it as ``complaint_open``.
4a. Marketing to a customer who rated a complaint's handling 1 or 2 within
   ``unsatisfied_hold`` (30 days) → ``Defer(rating + hold, "unsatisfied")``.
4b. Marketing to a customer whose last ``fatigue.after`` marketing e-mails went unanswered
   (no open, click or purchase since) → ``Defer(latest + fatigue.rest, "fatigue")``; off
   unless configured (see :mod:`campaigns.holds`). Either at or past expiry → ``Skip``.
5. Quiet hours, quiet days and public holidays in the recipient's local time, and
   frequency caps (marketing only). If ``now`` passes both → Allow. Otherwise the earliest
   instant both allow is computed exactly (not polled); at or past ``expires_at`` → Skip
   with the reason of the rule that held the message up to its expiry, else Defer to it.

Which quiet rules a message meets depends on its category. Marketing meets all three.
Transactional mail meets what ``transactional_quiet`` says: ``"hours"`` (the default) quiet
hours only — a thank-you for a Saturday-evening purchase goes out on Sunday morning, not on
Monday; ``"all"`` quiet days and holidays too; ``"none"`` nothing, it goes out at once.

Public holidays are one region's calendar (``public_holidays = "DE"``, ``"DE-BY"``) for
everyone, or with ``"auto"`` the recipient's own: ``Recipient.region`` (the caller derives it
from the customer's ``country``, else the phone number's country, see
:func:`campaigns.timewindows.own_region`), else ``default_region``. Calendars are built once
per (region, year) and cached.

A step may carry its own send window (``Candidate.send_window``, ``"10:00-18:00 mon-fri"``
in the recipient's local time, any category): it applies on top of the quiet rules, and a
message held by it alone is deferred (or, at expiry, skipped) with ``send_window``.

Reasons: ``quiet_hours``, ``quiet_days``, ``public_holiday``, ``send_window`` or a cap's
``frequency_cap:<channel>:<max>/<per>``. When several rules pushed the instant, the one that
pushed it last is reported; among the quiet rules a quiet day or holiday that was crossed
outranks the quiet hours that then held the message until morning. A skip at expiry looks
no further than the expiry: it names the rule whose hold reached it (a cap that held the
message past its expiry, not the Sunday that would have followed).

Local time is the recipient's wall clock (``Recipient.timezone``, else the rules' default
zone; an unknown zone name falls back to the default too). Daylight-saving changes are
followed exactly: a quiet window ending inside the skipped spring hour ends at the jump,
and in the repeated autumn hour the wall clock is read as it is shown.

Caps count the ``history`` the caller passes (marketing messages sending, sent or unknown):
at instant ``t`` the cap (channel X, max M, per P) holds iff fewer than M contacts on X
("any": on every channel) have ``t - P < at <= t``. Windows are absolute durations ("7d" is
168 hours even across a DST change); all arithmetic is done in UTC and the instants this
module returns are in UTC.

When messages compete for one slot, the dispatcher decides them in
:func:`order_competitors` order: higher ``priority`` first, then earlier ``due_at``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from campaigns.consent import consents_to
from campaigns.durations import SETTING_SPAN, SETTING_UNITS
from campaigns.holds import (
    FATIGUE_AFTER,
    FATIGUE_REST,
    UNSATISFIED_AT_MOST,
    UNSATISFIED_HOLD,
    Fatigue,
    KeyedError,
    held,
    parse_fatigue,
    parse_hold,
)
from campaigns.timewindows import (
    NoFreeTime,
    QuietCalendar,
    QuietHours,
    SendWindow,
    check_region,
    known_region,
    known_zone,
    own_region,
    parse_weekdays,
    resolve_zone,
    split_region,
)

__all__ = [
    "AUTO",
    "Allow",
    "Candidate",
    "Category",
    "Channel",
    "Contact",
    "ContactPolicy",
    "Decision",
    "Defer",
    "FATIGUE_AFTER",
    "FATIGUE_REST",
    "UNSATISFIED_AT_MOST",
    "UNSATISFIED_HOLD",
    "Fatigue",
    "FrequencyCap",
    "PolicyRules",
    "QuietHours",
    "Recipient",
    "SKIP_REASONS",
    "SKIP_REASON_PREFIXES",
    "Skip",
    "no_consent_reason",
    "TRANSACTIONAL_QUIET",
    "order_competitors",
    "parse_weekdays",
]

Channel = Literal["email", "sms"]
Category = Literal["marketing", "transactional"]
CapChannel = Literal["email", "sms", "any"]

#: Every skip reason is one of these or starts with one of the prefixes below.
SKIP_REASONS: frozenset[str] = frozenset(
    {
        "expired",
        "complaint_open",
        "quiet_hours",
        "quiet_days",
        "public_holiday",
        "send_window",
        "unsatisfied",
        "fatigue",
    }
)
SKIP_REASON_PREFIXES: tuple[str, ...] = ("suppressed:", "no_consent:", "frequency_cap:")

_CAP_CHANNELS = ("email", "sms", "any")
_POLICY_KEYS = (
    "default_timezone",
    "quiet_hours",
    "quiet_days",
    "public_holidays",
    "default_region",
    "transactional_quiet",
    "caps",
    "unsatisfied_hold",
    "fatigue",
)
#: ``public_holidays`` value that gives every recipient the calendar of their own region.
AUTO = "auto"
#: What quiet rules transactional messages meet: quiet hours only, all of them, or none.
TRANSACTIONAL_QUIET = ("hours", "all", "none")
_CAP_KEYS = ("channel", "max", "per")
_OFF = ("", "none", "off")


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``max`` marketing messages on ``channel`` within any rolling ``per`` window."""

    channel: CapChannel
    max: int
    per: timedelta
    # How ``per`` was written ("7d"), so reasons read the way the marketer configured them.
    per_label: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.channel not in _CAP_CHANNELS:
            raise ValueError(f"cap channel must be email, sms or any, got {self.channel!r}")
        if isinstance(self.max, bool) or not isinstance(self.max, int) or self.max < 1:
            raise ValueError(f"cap max must be a whole number >= 1, got {self.max!r}")
        if self.per <= timedelta(0):
            raise ValueError(f"cap window must be positive, got {self.per!r}")

    @classmethod
    def parse(cls, channel: str, max: int, per: str) -> FrequencyCap:
        """Build a cap from configuration values; ``per`` like "30m", "24h", "7d", "2w"."""
        match = SETTING_SPAN.match(per) if isinstance(per, str) else None
        if not match:
            raise ValueError(f"cap window must look like 30m, 24h, 7d or 2w, got {per!r}")
        amount, unit = int(match.group(1)), match.group(2)
        return cls(channel, max, amount * SETTING_UNITS[unit], f"{amount}{unit}")  # type: ignore[arg-type]

    @property
    def reason(self) -> str:
        """The skip/defer reason, e.g. ``frequency_cap:email:2/7d``."""
        return f"frequency_cap:{self.channel}:{self.max}/{self.per_label or _format_span(self.per)}"

    def applies_to(self, channel: str) -> bool:
        """Whether messages on ``channel`` count against (and are limited by) this cap."""
        return self.channel == "any" or self.channel == channel

    def count_at(self, at_utc: datetime, history: Sequence[Contact]) -> int:
        """How many contacts in ``history`` fall inside the window ending at ``at_utc``."""
        since = at_utc - self.per
        return sum(1 for h in history if self.applies_to(h.channel) and since < h.at <= at_utc)

    def earliest_free(self, times: Sequence[datetime], at: datetime) -> datetime:
        """The earliest instant ``>= at`` at which this cap holds.

        ``times`` are the counting contacts' instants, sorted, in UTC. The count only drops
        when a contact leaves the window (at ``contact + per``), so those are the only
        candidates after ``at``.
        """
        if self._count_sorted(times, at) < self.max:
            return at
        for leaves in times[bisect_right(times, at - self.per) :]:
            moment = leaves + self.per
            if self._count_sorted(times, moment) < self.max:
                return moment
        raise AssertionError("a window past every contact is empty")  # pragma: no cover

    def _count_sorted(self, times: Sequence[datetime], at: datetime) -> int:
        return bisect_right(times, at) - bisect_right(times, at - self.per)


def _format_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit in ("d", "h", "m"):
        size = int(SETTING_UNITS[unit].total_seconds())
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class PolicyRules:
    """The validated ``[policy]`` settings."""

    default_timezone: str = "Europe/Berlin"
    quiet_hours: QuietHours | None = QuietHours(time(20), time(9))
    quiet_days: frozenset[int] = frozenset()
    public_holidays: str | None = None  # a region, "auto" (each recipient's own) or None
    caps: tuple[FrequencyCap, ...] = ()
    default_region: str | None = None  # "auto": for recipients without a region of their own
    transactional_quiet: str = "hours"
    unsatisfied_hold: timedelta | None = UNSATISFIED_HOLD
    fatigue: Fatigue | None = None

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        *,
        default_region: str | None = None,
        fatigue: Fatigue | None = None,
    ) -> PolicyRules:
        """Build rules from the ``[policy]`` table of ``aftersale.toml``.

        Missing keys take the defaults above; ``quiet_hours = ""`` (or "off") and
        ``public_holidays = ""`` switch those rules off. Without ``policy.default_region``
        the ``default_region`` given here (the project's) is used if it names a calendar.
        Without ``policy.fatigue`` the ``fatigue`` given here applies (the shell gives one
        only for an e-mail provider that reports opens); ``fatigue = "off"`` switches it off.
        Raises ``ValueError`` naming the offending key (``policy.caps[1].per: ...``).
        """
        unknown = sorted(set(cfg) - set(_POLICY_KEYS))
        if unknown:
            raise ValueError(f"policy.{unknown[0]}: unknown setting")
        defaults = cls(default_region=known_region(default_region or ""), fatigue=fatigue)
        return cls(
            default_timezone=_named("default_timezone", _timezone, cfg, defaults),
            quiet_hours=_named("quiet_hours", _quiet_hours, cfg, defaults),
            quiet_days=_named("quiet_days", _quiet_days, cfg, defaults),
            public_holidays=_named("public_holidays", _holidays_setting, cfg, defaults),
            caps=_named("caps", _caps, cfg, defaults),
            default_region=_named("default_region", _holiday_region, cfg, defaults),
            transactional_quiet=_named("transactional_quiet", _transactional, cfg, defaults),
            unsatisfied_hold=_named("unsatisfied_hold", parse_hold, cfg, defaults),
            fatigue=_named("fatigue", parse_fatigue, cfg, defaults),
        )


class _KeyedError(KeyedError):
    """A configuration error whose message already names the exact key (``policy.caps[1].max``)."""


def _named(key: str, parse: Callable[[Any], Any], cfg: Mapping[str, Any], defaults: Any) -> Any:
    if key not in cfg:
        return getattr(defaults, key)
    try:
        return parse(cfg[key])
    except _KeyedError:
        raise
    except (ValueError, TypeError) as exc:
        raise ValueError(f"policy.{key}: {exc}") from exc


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or not known_zone(value):
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


def _quiet_hours(value: Any) -> QuietHours | None:
    if value is None or value is False or (isinstance(value, str) and value.lower() in _OFF):
        return None
    hours = QuietHours.parse(value)
    return None if hours.empty else hours


def _quiet_days(value: Any) -> frozenset[int]:
    days = parse_weekdays([value] if isinstance(value, str) else value)
    if len(days) == 7:
        raise ValueError("every day is quiet; nobody could ever be contacted")
    return days


def _holidays_setting(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    return _holiday_region(value)


def _transactional(value: Any) -> str:
    if value not in TRANSACTIONAL_QUIET:
        allowed = ", ".join(f'"{v}"' for v in TRANSACTIONAL_QUIET)
        raise ValueError(f"must be one of {allowed}, got {value!r}")
    return value


def _holiday_region(value: Any) -> str | None:
    if value is None or value is False or (isinstance(value, str) and value.lower() in _OFF):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a region like 'DE' or 'DE-BY', got {value!r}")
    country, subdiv = split_region(value)
    region = f"{country}-{subdiv}" if subdiv else country
    check_region(region)  # raises ValueError for an unknown country or subdivision
    return region


def _caps(value: Any) -> tuple[FrequencyCap, ...]:
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise ValueError("expected a list of tables with channel, max and per")
    return tuple(_cap(i, item) for i, item in enumerate(value))


def _cap(index: int, item: Any) -> FrequencyCap:
    where = f"policy.caps[{index}]"
    if not isinstance(item, Mapping):
        raise _KeyedError(f"{where}: expected a table with channel, max and per")
    for key in (*_CAP_KEYS, *item):
        if key not in _CAP_KEYS:
            raise _KeyedError(f"{where}.{key}: unknown setting")
        if key not in item:
            raise _KeyedError(f"{where}.{key}: missing")
    if item["channel"] not in _CAP_CHANNELS:
        raise _KeyedError(f"{where}.channel: must be email, sms or any, got {item['channel']!r}")
    limit = item["max"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise _KeyedError(f"{where}.max: must be a whole number >= 1, got {limit!r}")
    try:
        return FrequencyCap.parse(item["channel"], limit, item["per"])
    except ValueError as exc:
        raise _KeyedError(f"{where}.per: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Candidate:
    """The planned message being decided."""

    channel: Channel
    category: Category
    due_at: datetime
    expires_at: datetime | None = None
    priority: int = 0
    # The step's own window (``send_window: "10:00-18:00 mon-fri"``), None: any time.
    send_window: SendWindow | None = None
    topic: str | None = None  # its journey's consent topic (campaigns.consent.TOPICS)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the policy needs to know about the customer.

    ``timezone`` is an IANA name; None or an unknown name means the rules' default zone.
    ``suppressed`` maps a channel to why it is blocked ("bounce", "spamreport", "stop").
    ``region`` is the customer's own holiday region (``"US"``, ``"DE-BY"``), read only under
    ``public_holidays = "auto"``; None or an unknown region means ``default_region``.
    """

    timezone: str | None
    consent: Mapping[str, bool]
    suppressed: Mapping[str, str]
    complaint_open: bool = False
    region: str | None = None
    # Consent per channel and topic ({"email:offers": False}); a pair not named follows
    # the channel's consent.
    topic_consent: Mapping[str, bool] | None = None
    # The customer's last satisfaction rating and when it was given (rule 4a).
    last_rating: tuple[int, datetime] | None = None
    # When the marketing e-mails since their last open, click or purchase went out (4b).
    unanswered: Sequence[datetime] = ()


@dataclass(frozen=True, slots=True)
class Contact:
    """An earlier marketing message (sending, sent or unknown) that counts against caps."""

    channel: Channel
    at: datetime


@dataclass(frozen=True, slots=True)
class Allow:
    """Send now."""


@dataclass(frozen=True, slots=True)
class Defer:
    """Move the message to ``until`` (UTC); None means held until an event, no expiry."""

    until: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Never send; ``reason`` is one of :data:`SKIP_REASONS` or has a known prefix."""

    reason: str


Decision = Allow | Defer | Skip
_ALLOW = Allow()

T = TypeVar("T")


def no_consent_reason(channel: str, topic: str | None = None) -> str:
    """The skip reason of marketing without consent for a channel (``no_consent:email``)
    or, with ``topic``, for that topic on it (``no_consent:email:offers``)."""
    return f"no_consent:{channel}:{topic}" if topic else f"no_consent:{channel}"


def _itself(item: Any) -> Any:
    return item


def order_competitors(items: Iterable[T], key: Callable[[T], Candidate] = _itself) -> list[T]:
    """Sort competing messages into decision order: higher priority first, then earlier due.

    ``key`` extracts the :class:`Candidate` when the items are something richer (rows).
    The sort is stable, so equal messages keep the caller's order.
    """
    return sorted(items, key=lambda item: (-key(item).priority, key(item).due_at))


class ContactPolicy:
    """Decides allow / defer / skip for one message at one instant under fixed rules."""

    def __init__(self, rules: PolicyRules) -> None:
        self.rules = rules
        self._default_zone = ZoneInfo(rules.default_timezone)
        self._window = max((cap.per for cap in rules.caps), default=timedelta(0))
        self._auto = rules.public_holidays == AUTO
        # One calendar per (transactional?, holiday region): a handful, built on first use.
        self._calendars: dict[tuple[bool, str | None, SendWindow | None], QuietCalendar] = {}

    @property
    def per_customer_holidays(self) -> bool:
        """Whether each recipient's own region decides their holidays (``"auto"``)."""
        return self._auto

    def holiday_region(self, r: Recipient) -> str | None:
        """The holiday calendar that applies to ``r``: a region code, or None for none."""
        if not self._auto:
            return self.rules.public_holidays
        return (known_region(r.region) if r.region else None) or self.rules.default_region

    def holiday_calendar(self, country: str | None, phone: str | None) -> str:
        """Which holiday calendar applies to a customer and why: "US (from country)"."""
        if not self._auto:
            region = self.rules.public_holidays
            return f"{region} (the project's calendar)" if region else "none"
        region, source = own_region(country, phone)
        if region is not None:
            return f"{region} (from {source})"
        default = self.rules.default_region
        return f"{default} (default region)" if default else "none (no region known)"

    def _calendar(self, c: Candidate, r: Recipient) -> QuietCalendar:
        transactional = c.category != "marketing"
        mode = self.rules.transactional_quiet if transactional else "all"
        region = self.holiday_region(r) if mode == "all" else None
        key = (transactional, region, c.send_window)
        calendar = self._calendars.get(key)
        if calendar is None:
            rules = self.rules
            if mode == "all":
                calendar = QuietCalendar(rules.quiet_hours, rules.quiet_days, region)
            elif mode == "hours":
                calendar = QuietCalendar(rules.quiet_hours)
            else:
                calendar = QuietCalendar()
            if c.send_window is not None:
                calendar = replace(calendar, window=c.send_window)
            self._calendars[key] = calendar
        return calendar

    def decide(
        self, c: Candidate, r: Recipient, history: Sequence[Contact], now: datetime
    ) -> Decision:
        """Apply the rules (see the module docstring) to ``c`` for ``r`` at ``now``."""
        if now.utcoffset() is None:
            raise ValueError("now must be an aware datetime")
        if c.expires_at is not None and now >= c.expires_at:
            return Skip("complaint_open" if _complaint_holds(c, r) else "expired")
        if c.channel in r.suppressed:
            return Skip(f"suppressed:{r.suppressed[c.channel] or 'unknown'}")
        if c.category == "marketing":
            if not r.consent.get(c.channel, False):
                return Skip(no_consent_reason(c.channel))
            if c.topic and not consents_to(True, r.topic_consent, c.channel, c.topic):
                return Skip(no_consent_reason(c.channel, c.topic))
            if r.complaint_open:
                return Defer(c.expires_at, "complaint_open")
            held = self.held(r, now)
            if held is not None:
                until, why = held
                return (
                    Skip(why)
                    if c.expires_at is not None and until >= c.expires_at
                    else Defer(until, why)
                )
        try:
            until, why = self.next_allowed(c, r, history, now, limit=c.expires_at)
        except NoFreeTime:
            if c.send_window is None:
                raise
            return Skip("send_window")  # the step's window lies wholly in quiet time
        if why is None:
            return _ALLOW
        if c.expires_at is not None and until >= c.expires_at:
            return Skip(why)
        return Defer(until, why)

    def held(self, r: Recipient, now: datetime) -> tuple[datetime, str] | None:
        """Until when, and why, ``r`` hears no marketing after ``now`` (rules 4a and 4b);
        None when nothing holds them (see :mod:`campaigns.holds`)."""
        rules = self.rules
        return held(rules.unsatisfied_hold, rules.fatigue, r.last_rating, r.unanswered, now)

    def next_allowed(
        self,
        c: Candidate,
        r: Recipient,
        history: Sequence[Contact],
        after: datetime,
        *,
        limit: datetime | None = None,
    ) -> tuple[datetime, str | None]:
        """The earliest instant ``>= after`` that quiet rules and (marketing) caps allow.

        Returns it in UTC with the reason of the rule that bound last, or ``(after, None)``
        when ``after`` itself is allowed. Consent, suppression, complaints and expiry are
        not considered here. With a ``limit`` the search stops once it reaches it: the
        instant is then some instant ``>= limit`` and the reason the rule that held the
        message up to ``limit``.
        """
        zone = resolve_zone(r.timezone, self._default_zone)
        caps = self._caps_for(c)
        calendar = self._calendar(c, r)
        at = after.astimezone(UTC)
        if calendar.reason_at(at, zone) is None and _caps_hold(caps, history, at):
            return after, None
        return self._walk(calendar, at, zone, caps, history, limit)

    def _walk(
        self,
        calendar: QuietCalendar,
        at: datetime,
        zone: ZoneInfo,
        caps: tuple[FrequencyCap, ...],
        history: Sequence[Contact],
        limit: datetime | None,
    ) -> tuple[datetime, str | None]:
        """Alternate quiet rules and caps until neither moves the instant (a fixpoint), or
        until the instant reaches ``limit``."""
        timelines = [(cap, _times_for(cap, history)) for cap in caps]
        reason: str | None = None
        while True:
            at, why = calendar.next_free(at, zone, limit)
            reason = why or reason
            if limit is not None and at >= limit:
                return at, reason
            moved = _cap_free(timelines, at, limit)
            if moved is None:
                return at, reason
            at, reason = moved
            if limit is not None and at >= limit:
                return at, reason

    def history_window(self) -> timedelta:
        """The longest cap window: how far back before ``now`` the caller must load history."""
        return self._window

    def is_quiet(
        self,
        at: datetime,
        tz: str | None,
        *,
        region: str | None = None,
        category: Category = "marketing",
    ) -> bool:
        """Whether quiet hours, a quiet day or a public holiday covers ``at`` in zone ``tz``
        for a ``category`` message to someone of ``region`` (read under "auto")."""
        zone = resolve_zone(tz, self._default_zone)
        probe = Candidate("email", category, at)
        calendar = self._calendar(probe, Recipient(tz, {}, {}, region=region))
        return calendar.reason_at(at, zone) is not None

    def _caps_for(self, c: Candidate) -> tuple[FrequencyCap, ...]:
        if c.category != "marketing":
            return ()
        return tuple(cap for cap in self.rules.caps if cap.applies_to(c.channel))


def _complaint_holds(c: Candidate, r: Recipient) -> bool:
    return c.category == "marketing" and r.complaint_open


def _caps_hold(caps: tuple[FrequencyCap, ...], history: Sequence[Contact], at: datetime) -> bool:
    return all(cap.count_at(at, history) < cap.max for cap in caps)


def _times_for(cap: FrequencyCap, history: Sequence[Contact]) -> list[datetime]:
    return sorted(h.at.astimezone(UTC) for h in history if cap.applies_to(h.channel))


def _cap_free(
    timelines: list[tuple[FrequencyCap, list[datetime]]], at: datetime, limit: datetime | None
) -> tuple[datetime, str] | None:
    """Move ``at`` until every cap holds; None if it already did, else (instant, last reason).

    Stops at the first move that reaches ``limit``: that cap held the message up to it.
    """
    reason: str | None = None
    changed = True
    while changed:
        changed = False
        for cap, times in timelines:
            free = cap.earliest_free(times, at)
            if free > at:
                at, reason, changed = free, cap.reason, True
                if limit is not None and at >= limit:
                    return at, reason
    return None if reason is None else (at, reason)

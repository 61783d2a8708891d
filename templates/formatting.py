"""Locale handling and the Babel-backed template filters.

Filters read the formatting locale from the template context (``locale``, set by
the renderer) so a template never passes it explicitly:

- ``{{ order.total | money(order.currency) }}`` → ``499,00 €`` (de), ``€499.00`` (en)
- ``{{ item.warranty_end | date }}`` / ``| date("long")`` → in the customer's
  time zone when the value is an aware datetime
- ``{{ now | datetime("short") }}``, ``{{ step.occurrence | ordinal }}`` → ``2.`` / ``2nd``,
  ``{{ 1234 | number }}``
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import pass_context
from jinja2.runtime import Context

__all__ = [
    "FILTERS",
    "fallback_chain",
    "language_of",
    "normalise_locale",
]


def normalise_locale(value: str | None) -> str:
    """``"de-at"``, ``"de_AT"``, ``" DE-AT "`` → ``"de_AT"``; empty → ``""``."""
    if not value:
        return ""
    parts = value.strip().replace("-", "_").split("_")
    language = parts[0].lower()
    rest = [p.upper() if len(p) == 2 else p.title() for p in parts[1:] if p]
    return "_".join([language, *rest])


def language_of(locale: str) -> str:
    """The language part of a normalised locale (``"de_AT"`` → ``"de"``)."""
    return locale.split("_", 1)[0]


def fallback_chain(locale: str | None, default_locale: str) -> list[str]:
    """Customer locale → its language → project default → its language → ``en``."""
    chain: list[str] = []
    for candidate in (locale, default_locale, "en"):
        norm = normalise_locale(candidate)
        for key in (norm, language_of(norm)):
            if key and key not in chain:
                chain.append(key)
    return chain


@lru_cache(maxsize=256)
def babel_locale(locale: str) -> Locale:
    """A Babel ``Locale`` for a normalised locale, falling back to its language, then en."""
    for candidate in (locale, language_of(locale), "en"):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    raise AssertionError("Babel always knows 'en'")  # pragma: no cover


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _locale_name(context: Context) -> str:
    """The context's formatting locale, as the key the caches below take."""
    return str(context.get("locale") or "en")


def _customer_zone(context: Context, tz: str | None) -> ZoneInfo | None:
    """The zone to show times in: explicit ``tz``, else the customer's own."""
    if tz:
        return _zone(tz)
    customer = context.get("customer")
    name = customer.get("timezone") if isinstance(customer, Mapping) else None
    return _zone(name) if name else None


def _localised(value: dt.datetime, zone: ZoneInfo | None) -> dt.datetime:
    # Naive datetimes are taken as already local: converting them would guess.
    if zone is not None and value.tzinfo is not None:
        return value.astimezone(zone)
    return value


# Babel formatting costs tens of microseconds; a batch repeats the same prices,
# points and dates, so the results are remembered (all arguments are immutable).
# Locales are keyed by name: a Babel Locale hashes in Python, a str hash is cached.
@lru_cache(maxsize=8192)
def _money(amount: Decimal, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=babel_locale(locale))


@lru_cache(maxsize=8192)
def _number(text: str, locale: str) -> str:
    # Keyed by text: 1 == 1.0 == True and Decimal("1.5") == Decimal("1.50") as keys.
    return format_decimal(Decimal(text), locale=babel_locale(locale))


@lru_cache(maxsize=8192)
def _date(value: dt.date, format: str, locale: str) -> str:
    return format_date(value, format=format, locale=babel_locale(locale))


@pass_context
def money(context: Context, amount: Any, currency: str = "EUR") -> str:
    """Format an amount in a currency for the context locale."""
    return _money(Decimal(str(amount)), currency, _locale_name(context))


@pass_context
def date(context: Context, value: Any, format: str = "medium", tz: str | None = None) -> str:
    """Format a date (or the local date of a datetime) for the context locale."""
    if isinstance(value, dt.datetime):
        value = _localised(value, _customer_zone(context, tz)).date()
    return _date(value, format, _locale_name(context))


@pass_context
def datetime(
    context: Context, value: dt.datetime, format: str = "medium", tz: str | None = None
) -> str:
    """Format a datetime in the customer's time zone for the context locale."""
    local = _localised(value, _customer_zone(context, tz))
    return format_datetime(
        local, format=format, tzinfo=local.tzinfo, locale=babel_locale(_locale_name(context))
    )


@pass_context
def number(context: Context, value: Any) -> str:
    """Format a number with the context locale's separators."""
    return _number(str(value), _locale_name(context))


_EN_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


@pass_context
def ordinal(context: Context, value: int) -> str:
    """``2`` → ``2nd`` in English, ``2.`` in German and most other languages."""
    n = int(value)
    if babel_locale(_locale_name(context)).language != "en":
        return f"{n}."
    suffix = "th" if 10 <= n % 100 <= 20 else _EN_SUFFIXES.get(n % 10, "th")
    return f"{n}{suffix}"


FILTERS = {
    "money": money,
    "date": date,
    "datetime": datetime,
    "number": number,
    "ordinal": ordinal,
}

"""The bounds of what the outside world may hand us: one check for every way in.

Imports (customers.csv, events.jsonl), the events API and the Shopify webhook all pass
through these functions, so a value means, and is refused, the same however it came. The
limits keep every later step safe: a warranty of 83 million years, an inspection every
270,000 years or a quantity of 10**30 would overflow the dates and integers that planning
and the databases use, and one such record must never reach the engine.

=========================  =================================================================
what                       limit
=========================  =================================================================
ids (customer, event,      1–128 characters (``MAX_ID``)
order, SKU)
other text fields          at most 1,000 characters (``MAX_TEXT``)
``at``                     ISO 8601 with a UTC offset, 1970-01-01 to 2200-12-31 (UTC)
``warranty_months``        0–600 (50 years)
``inspection_interval_     1–3,660 (10 years)
days``
``quantity``               1–100,000
prices and totals          decimal, 0 to 1,000,000,000, no more decimals than the
                           currency's minor units (EUR 2, JPY 0, BHD 3)
``currency``               a known ISO 4217 code
items per order            at most 1,000
a line (JSONL, CSV)        at most 1 MiB, UTF-8, no NUL character
JSON nesting               at most 32 levels
JSON strings               no NUL character, no lone surrogate (``\\ud800``–``\\udfff``
                           without its pair)
a CSV field                at most 131,072 characters (Python's csv default)
=========================  =================================================================

A value out of bounds raises :class:`RowInvalid` naming the field, which each way in
reports in its own form: ``file:line: field: reason`` for files, a 422 with the field over
HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, BinaryIO

from babel.numbers import get_currency_precision, is_currency

MAX_ID = 128
MAX_TEXT = 1000
MAX_LINE_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_WARRANTY_MONTHS = 600
MAX_INSPECTION_DAYS = 3660
MAX_QUANTITY = 100_000
MAX_AMOUNT = Decimal(1_000_000_000)
MAX_ITEMS = 1000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_PLAIN_AMOUNT = re.compile(r"\d{1,9}(?:\.\d{1,4})?\Z")  # below 10**9, no sign
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


class RowInvalid(Exception):
    """One field of one record is out of bounds or malformed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def shown(value: Any, width: int = 40) -> str:
    """A value for an error message, cut short: a reason never echoes a whole payload."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------------- scalars


def identifier(value: Any, field: str) -> str:
    """An id: a non-empty string of at most :data:`MAX_ID` characters."""
    if type(value) is str and 0 < len(value) <= MAX_ID and "\x00" not in value:
        return value
    if value is None or value == "":
        raise RowInvalid(field, "missing")
    if not isinstance(value, str):
        raise RowInvalid(field, "must be a string")
    if len(value) > MAX_ID:
        raise RowInvalid(field, f"longer than {MAX_ID} characters")
    if "\x00" in value:
        raise RowInvalid(field, "contains a NUL character")
    return value


def text(value: Any, field: str, limit: int = MAX_TEXT) -> str:
    """A text field of at most ``limit`` characters."""
    if type(value) is str and len(value) <= limit:
        return value
    value = "" if value is None else str(value)
    if len(value) > limit:
        raise RowInvalid(field, f"longer than {limit} characters")
    return value


def whole(value: Any, field: str, *, minimum: int, maximum: int) -> int | None:
    """A whole number within [minimum, maximum], given as a number or as digits; None stays."""
    if type(value) is int and minimum <= value <= maximum:
        return value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RowInvalid(field, f"{shown(value)} is not a whole number")
    if isinstance(value, str) and not (value.strip().lstrip("+-").isdigit() and len(value) < 20):
        raise RowInvalid(field, f"{shown(value)} is not a whole number")
    number = int(value)
    if not minimum <= number <= maximum:
        raise RowInvalid(field, f"{shown(value)} is not between {minimum} and {maximum}")
    return number


def currency(value: Any, field: str = "order.currency") -> str:
    """A known ISO 4217 code, upper case."""
    if not (isinstance(value, str) and len(value) == 3 and _known_currency(value.upper())):
        raise RowInvalid(field, f"{shown(value)} is not an ISO 4217 currency code")
    return value.upper()


def amount(value: Any, field: str, currency_code: str = "EUR") -> str:
    """A price or total: a decimal from 0 to :data:`MAX_AMOUNT` in the currency's minor units."""
    if type(value) is str and _PLAIN_AMOUNT.match(value):
        whole_part, _, fraction = value.partition(".")
        if len(fraction) <= _minor_units(currency_code):
            return str(Decimal(value))
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RowInvalid(field, f"{shown(value)} is not a number")
    if isinstance(value, str) and len(value) > 40:
        raise RowInvalid(field, "is not a number of a sane length")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RowInvalid(field, f"{shown(value)} is not a number") from None
    if not number.is_finite() or number < 0:
        raise RowInvalid(field, f"{shown(value)} is not a non-negative amount")
    if number > MAX_AMOUNT:
        raise RowInvalid(field, f"{shown(value)} is above {MAX_AMOUNT}")
    minor = _minor_units(currency_code)
    if number != number.quantize(Decimal(1).scaleb(-minor)):
        raise RowInvalid(
            field, f"{shown(value)} has more than {minor} decimals for {currency_code}"
        )
    return str(number)


def moment(value: Any, field: str = "at") -> datetime:
    """An ISO 8601 time with a UTC offset, from 1970 to 2200, in UTC."""
    if not isinstance(value, str) or not value:
        raise RowInvalid(field, "missing")
    if len(value) > 64:
        raise RowInvalid(field, "is not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowInvalid(field, f"{shown(value)} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise RowInvalid(field, f"{shown(value)} has no UTC offset (add +01:00 or Z)")
    try:
        at = parsed.astimezone(UTC)
    except OverflowError:
        at = None
    if at is None or not EARLIEST <= at <= LATEST:
        raise RowInvalid(field, f"{shown(value)} is not between 1970 and 2200")
    return at


@lru_cache(maxsize=512)
def _known_currency(code: str) -> bool:
    return is_currency(code)


@lru_cache(maxsize=512)
def _minor_units(code: str) -> int:
    return get_currency_precision(code)


@lru_cache(maxsize=1)
def _regions() -> dict[str, dict[str, str]]:
    import holidays

    return {
        country.upper(): {sub.upper(): sub for sub in subdivisions}
        for country, subdivisions in holidays.list_supported_countries().items()
    }


def country(value: Any, field: str = "country") -> str | None:
    """An ISO 3166-1 alpha-2 country, optionally ``-SUBDIVISION`` (``US``, ``DE-BY``), that
    the holiday calendars know; upper case. Empty is None."""
    code = str(value or "").strip().upper()
    if not code:
        return None
    land, _, sub = code.partition("-")
    regions = _regions()
    if len(land) != 2 or land not in regions:
        raise RowInvalid(field, f"{shown(value)} is not a known ISO 3166-1 country code")
    if sub and sub not in regions[land]:
        raise RowInvalid(field, f"{shown(value)}: {land} has no subdivision {sub!r}")
    return code


# ----------------------------------------------------------------------------- JSON


def json_value(
    line: str, field: str = "json", *, nul: bool = True, depth: int = MAX_JSON_DEPTH
) -> Any:
    """One JSON document, refused if nested deeper than ``depth`` or (with ``nul``)
    carrying a string that cannot be stored (:func:`unstorable_path`)."""
    if line.count("[") + line.count("{") > depth and _depth(line) > depth:
        raise RowInvalid(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(line)
    except RecursionError:
        raise RowInvalid(field, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # int() refuses over 4,300 digits
            raise RowInvalid(field, "a number with more than 4,300 digits") from None
        raise RowInvalid(field, getattr(exc, "msg", None) or str(exc)[:200]) from None
    if nul and may_be_unstorable(line):
        found = unstorable_path(data)
        if found is not None:
            raise RowInvalid(found[0] or field, found[1])
    return data


def _depth(text: str) -> int:
    deepest = depth = 0
    for char in _STRINGS.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


# The escapes in a JSON text that can make a string nothing can store: a NUL (PostgreSQL
# keeps it neither in text nor in JSON) and a surrogate, which Python's JSON decoder leaves
# in a string when it is not one of a pair (no database, file or UTF-8 encoder takes it).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def may_be_unstorable(text: str) -> bool:
    """Whether a JSON text holds an escape that :func:`unstorable_path` must look for."""
    return _SUSPECT_ESCAPE.search(text) is not None


def unstorable(value: str) -> str | None:
    """Why a string cannot be stored, else None."""
    if "\x00" in value:
        return "contains a NUL character"
    if _LONE_SURROGATE.search(value):
        return "contains a lone surrogate (an escape from \\ud800 to \\udfff without its pair)"
    return None


def unstorable_path(data: Any, path: str = "") -> tuple[str, str] | None:
    """The path of the first string (keys included) that cannot be stored, and why;
    else None."""
    if isinstance(data, str):
        reason = unstorable(data)
        return None if reason is None else (path, reason)
    if isinstance(data, dict):
        for key, value in data.items():
            if (reason := unstorable(key)) is not None:  # escaped: the path is shown and stored
                shown = key.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
                return (f"{path}.{shown}" if path else shown), reason
            here = f"{path}.{key}" if path else str(key)
            found = unstorable_path(value, here)
            if found is not None:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = unstorable_path(value, f"{path}[{index}]")
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------- lines


def lines(handle: BinaryIO) -> Iterator[tuple[int, str | RowInvalid]]:
    """(line number, text) of a file, each line decoded on its own.

    A line that is not UTF-8, holds a NUL or runs past :data:`MAX_LINE_BYTES` comes as a
    :class:`RowInvalid` in its place (never read whole into memory), so one Latin-1 byte
    fails its line, not the file. A UTF-8 byte order mark at the start is dropped.
    """
    number = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, RowInvalid("line", f"longer than {MAX_LINE_BYTES} bytes")
            continue
        yield number, _decoded(raw)


def _decoded(raw: bytes) -> str | RowInvalid:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowInvalid(
            "line", f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        )
    if "\x00" in line:
        return RowInvalid("line", f"contains a NUL character at column {line.index(chr(0)) + 1}")
    return line

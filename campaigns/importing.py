"""Importing customers (CSV) and events (JSONL), streamed in batches.

Every bad row is reported with its line, field and reason, and the good rows still land
(unless ``strict``, where one bad row rejects the file). Re-importing is idempotent: customers
are upserted by id, events with a known id are left alone.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import sqlalchemy as sa
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from campaigns.bulk import executemany
from campaigns.models import Customer, Event, reading

customers_t = Customer.__table__
events_t = Event.__table__

CUSTOMER_COLUMNS = (
    "id", "email", "phone", "first_name", "last_name",
    "locale", "timezone", "email_consent", "sms_consent",
)  # fmt: skip
REQUIRED_COLUMNS = ("id",)
BATCH = 1000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RowError:
    """One problem in one row of an input file."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    rejected: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


class RowInvalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ----------------------------------------------------------------------------- customers


def parse_consent(value: str | None, column: str) -> bool:
    text = (value or "").strip().lower()
    if text in ("yes", "y", "true", "1", "ja"):
        return True
    if text in ("no", "n", "false", "0", "nein", ""):
        return False
    raise RowInvalid(column, f"{value!r} is not yes or no")


def parse_email(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowInvalid("email", str(exc)) from None


def parse_phone(value: str, region: str) -> str | None:
    if not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise RowInvalid("phone", f"{value!r}: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise RowInvalid("phone", f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_timezone(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise RowInvalid("timezone", f"{value!r} is not an IANA time zone") from None
    return value.strip()


def parse_locale(value: str, default: str) -> str:
    text = value.strip().replace("_", "-")
    if not text:
        return default
    try:
        Locale.parse(text, sep="-")
    except (UnknownLocaleError, ValueError):
        raise RowInvalid("locale", f"{value!r} is not a known locale") from None
    return text


# Codes written in digits that are not numbers: compared as text (prefixes, leading zeros).
TEXT_ATTRIBUTES = frozenset({"postal_code", "postcode", "zip", "zip_code", "plz"})


def _attribute(name: str, value: str) -> Any:
    """A customer attribute: a whole number as a number (``birth_year``), anything else,
    postal codes included, as the text it is."""
    text = value.strip()
    if name.lower() in TEXT_ATTRIBUTES:
        return text
    if text.isdigit() and len(text) < 12 and not text.startswith("0"):
        return int(text)
    return text


def customer_row(
    raw: dict[str, str], *, region: str, default_locale: str, now: datetime
) -> dict[str, Any]:
    """A validated ``customers`` row from one CSV record, or :class:`RowInvalid`."""
    cid = (raw.get("id") or "").strip()
    if not cid:
        raise RowInvalid("id", "missing")
    email = parse_email(raw.get("email") or "")
    phone = parse_phone(raw.get("phone") or "", region)
    if email is None and phone is None:
        raise RowInvalid("email", "a customer needs an e-mail address or a phone number")
    attributes = {
        k: _attribute(k, v)
        for k, v in raw.items()
        if k and k not in CUSTOMER_COLUMNS and v not in ("", None)
    }
    return {
        "id": cid,
        "email": email,
        "phone": phone,
        "first_name": (raw.get("first_name") or "").strip(),
        "last_name": (raw.get("last_name") or "").strip(),
        "locale": parse_locale(raw.get("locale") or "", default_locale),
        "timezone": parse_timezone(raw.get("timezone") or ""),
        "email_consent": parse_consent(raw.get("email_consent"), "email_consent"),
        "sms_consent": parse_consent(raw.get("sms_consent"), "sms_consent"),
        "email_consent_source": "import",
        "sms_consent_source": "import",
        "open_complaints": 0,
        "attributes": attributes,
        "created_at": now,
        "updated_at": now,
    }


def import_customers(
    db: Engine,
    path: Path,
    *,
    region: str = "DE",
    default_locale: str = "de",
    strict: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ImportReport:
    now = now or datetime.now(UTC)
    report = ImportReport()
    staged: list[dict[str, Any]] = []
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            report.errors.append(RowError(str(path), 1, missing[0], "column missing from header"))
            report.rejected = True
            return report
        batch: list[dict[str, Any]] = []
        for raw in reader:
            report.rows += 1
            line = reader.line_num
            try:
                batch.append(
                    customer_row(raw, region=region, default_locale=default_locale, now=now)
                )
            except RowInvalid as exc:
                report.errors.append(RowError(str(path), line, exc.field, exc.reason))
            if len(batch) >= BATCH:
                _flush_customers(db, batch, report, strict, staged)
                batch = []
            if progress:
                progress(handle.tell_bytes())
        _flush_customers(db, batch, report, strict, staged)
    return _finish(db, report, strict, staged)


def _flush_customers(db: Engine, batch, report: ImportReport, strict: bool, staged) -> None:
    if not batch:
        return
    if strict:
        staged.extend(batch)
        return
    _upsert_customers(db, batch)
    report.imported += len(batch)


def _upsert_customers(db: Engine, rows: list[dict[str, Any]]) -> None:
    insert = dialect_insert(db)
    stmt = insert(customers_t)
    update_cols = {
        c: getattr(stmt.excluded, c)
        for c in (
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "email_consent",
            "sms_consent",
            "attributes",
            "updated_at",
        )  # fmt: skip
    }
    with db.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update_cols), rows)


def _finish(db: Engine, report: ImportReport, strict: bool, staged: list[dict[str, Any]]):
    if strict:
        rows = list(staged)
        staged.clear()
        if report.errors:
            report.rejected = True
            return report
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            if chunk and "type" in chunk[0]:
                _insert_events(db, chunk, report)
            else:
                _upsert_customers(db, chunk)
                report.imported += len(chunk)
    return report


# ------------------------------------------------------------------------------- events

ORDER_EVENTS = {"warranty_extended", "return"}
CHANNELS = {"email", "sms"}


def parse_time(value: Any, field_name: str = "at") -> datetime:
    if not isinstance(value, str) or not value:
        raise RowInvalid(field_name, "missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowInvalid(field_name, f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise RowInvalid(field_name, f"{value!r} has no UTC offset (add +01:00 or Z)")
    return moment.astimezone(UTC)


def _decimal(value: Any, field_name: str) -> str:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RowInvalid(field_name, f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise RowInvalid(field_name, f"{value!r} is not a non-negative amount")
    return str(number)


def _int(value: Any, field_name: str, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RowInvalid(field_name, f"{value!r} is not a whole number")
    try:
        number = int(value)
    except ValueError:
        raise RowInvalid(field_name, f"{value!r} is not a whole number") from None
    if number < minimum:
        raise RowInvalid(field_name, f"{value!r} is below {minimum}")
    return number


def validate_order(order: Any) -> dict[str, Any]:
    if not isinstance(order, dict):
        raise RowInvalid("order", "a purchase needs an order object")
    if not order.get("id"):
        raise RowInvalid("order.id", "missing")
    items = order.get("items") or []
    if not isinstance(items, list):
        raise RowInvalid("order.items", "must be a list")
    clean_items = []
    for i, item in enumerate(items):
        where = f"order.items[{i}]"
        if not isinstance(item, dict):
            raise RowInvalid(where, "must be an object")
        clean = dict(item)
        clean["price"] = _decimal(item.get("price", "0"), f"{where}.price")
        clean["quantity"] = _int(item.get("quantity", 1), f"{where}.quantity", minimum=1)
        clean["warranty_months"] = _int(item.get("warranty_months"), f"{where}.warranty_months")
        clean["inspection_interval_days"] = _int(
            item.get("inspection_interval_days"), f"{where}.inspection_interval_days", minimum=1
        )
        clean_items.append(clean)
    currency = order.get("currency", "EUR")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise RowInvalid("order.currency", f"{currency!r} is not an ISO 4217 code")
    return {
        **order,
        "id": str(order["id"]),
        "total": _decimal(order.get("total", "0"), "order.total"),
        "currency": currency.upper(),
        "items": clean_items,
    }


def event_row(data: Any, *, source: str = "import") -> dict[str, Any]:
    """A validated ``events`` row from one decoded JSON object, or :class:`RowInvalid`."""
    if not isinstance(data, dict):
        raise RowInvalid("event", "each line must be a JSON object")
    for key in ("id", "type", "customer"):
        if not data.get(key) or not isinstance(data[key], str):
            raise RowInvalid(key, "missing" if not data.get(key) else "must be a string")
    at = parse_time(data.get("at"))
    payload = {k: v for k, v in data.items() if k not in ("id", "type", "customer", "at")}
    kind = data["type"]
    if kind == "purchase":
        payload["order"] = validate_order(data.get("order"))
    elif kind in ORDER_EVENTS and not data.get("order"):
        raise RowInvalid("order", f"a {kind} event names the order it concerns")
    elif kind in ("unsubscribed", "subscribed") and data.get("channel") not in CHANNELS:
        raise RowInvalid("channel", f"{data.get('channel')!r} is not email or sms")
    return {
        "id": data["id"],
        "type": kind,
        "customer_id": data["customer"],
        "at": at,
        "payload": payload,
        "applied": False,
        "source": source,
    }


def import_events(
    db: Engine,
    path: Path,
    *,
    strict: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    report = ImportReport()
    staged: list[dict[str, Any]] = []
    with _open_text(path) as handle:
        batch: list[tuple[int, dict[str, Any]]] = []
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            report.rows += 1
            try:
                batch.append((line_no, event_row(json.loads(line))))
            except json.JSONDecodeError as exc:
                report.errors.append(RowError(str(path), line_no, "json", exc.msg))
            except RowInvalid as exc:
                report.errors.append(RowError(str(path), line_no, exc.field, exc.reason))
            if len(batch) >= BATCH:
                _flush_events(db, path, batch, report, strict, staged)
                batch = []
            if progress:
                progress(handle.tell_bytes())
        _flush_events(db, path, batch, report, strict, staged)
    report.errors.sort(key=lambda e: e.line)
    return _finish(db, report, strict, staged)


def _flush_events(db, path, batch, report, strict, staged) -> None:
    if not batch:
        return
    ids = {row["customer_id"] for _, row in batch}
    with reading(db) as conn:
        known = {
            r[0] for r in conn.execute(sa.select(customers_t.c.id).where(customers_t.c.id.in_(ids)))
        }
    good = []
    for line_no, row in batch:
        if row["customer_id"] in known:
            good.append(row)
        else:
            report.errors.append(
                RowError(str(path), line_no, "customer", f"unknown customer {row['customer_id']!r}")
            )
    if strict:
        staged.extend(good)
    else:
        _insert_events(db, good, report)


def insert_events(db: Engine, rows: list[dict[str, Any]]) -> int:
    """Insert events, ignoring ids already known; returns how many were new."""
    if not rows:
        return 0
    # In id order, so the rows land side by side in the key's index; the sort is stable, so
    # of two rows with one id the first still wins.
    rows = sorted(rows, key=operator.itemgetter("id"))
    stmt = insert_ignore_statement(db, events_t, ("id",))
    with db.begin() as conn:
        # Rows the conflict clause left alone are not counted. (Counting the table before
        # and after grew with the table.) SQLite's driver sums an executemany's row counts;
        # psycopg's does not, so there the inserted ids come back instead.
        if conn.dialect.name == "sqlite":
            return executemany(conn, stmt, rows)
        return len(conn.execute(stmt.returning(events_t.c.id), rows).all())


def _insert_events(db: Engine, rows: list[dict[str, Any]], report: ImportReport) -> None:
    new = insert_events(db, rows)
    report.imported += new
    report.unchanged += len(rows) - new


def dialect_insert(bind: Engine | Connection) -> Any:
    """The ``insert`` construct with ``on_conflict_do_*`` for the bind's database."""
    return pg_insert if bind.dialect.name == "postgresql" else sqlite_insert


def insert_ignore_statement(bind: Engine | Connection, table: sa.Table, keys: tuple[str, ...]):
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` into ``table`` for the bind's database.

    Built once per database, table and keys: :mod:`campaigns.bulk` keeps its compilation
    per statement object.
    """
    return _insert_ignore_statement(dialect_insert(bind), table, keys)


@lru_cache(maxsize=64)
def _insert_ignore_statement(insert: Any, table: sa.Table, keys: tuple[str, ...]) -> Any:
    return insert(table).on_conflict_do_nothing(index_elements=list(keys))


class _CountingReader(io.TextIOWrapper):
    """A text reader that can say how many bytes it has consumed, for progress bars."""

    def tell_bytes(self) -> int:
        return self.buffer.tell()


def _open_text(path: Path) -> _CountingReader:
    return _CountingReader(open(path, "rb"), encoding="utf-8-sig", newline="")  # noqa: SIM115

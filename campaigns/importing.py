"""Importing customers (CSV) and events (JSONL), streamed in batches.

Every bad row is reported with its line, field and reason, and the good rows still land
(unless ``strict``, where one bad row rejects the file). Re-importing is idempotent: customers
are upserted by id, events with a known id are left alone. Values are held to the bounds of
:mod:`campaigns.bounds`; a line that is not UTF-8, holds a NUL or is too long fails alone, an
id seen twice in one file is reported on its second line, and a batch the database refuses
is retried row by row so that only the row at fault is reported (never the batch's values).
"""

from __future__ import annotations

import csv
import logging
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import sqlalchemy as sa
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from campaigns import bounds
from campaigns.bounds import RowInvalid
from campaigns.bulk import executemany
from campaigns.consent import TOPICS, topic_key
from campaigns.heap import long_lived_frozen
from campaigns.models import Customer, Event, PurchaseItem, reading

customers_t = Customer.__table__
events_t = Event.__table__

# Consent per channel and topic (campaigns.consent): email_offers_consent = no keeps the
# e-mail consent for service messages only; an empty cell follows the channel's consent.
TOPIC_COLUMNS = {
    f"{channel}_{topic}_consent": topic_key(channel, topic)
    for channel in ("email", "sms")
    for topic in TOPICS
}
CUSTOMER_COLUMNS = (
    "id", "email", "phone", "first_name", "last_name",
    "locale", "timezone", "email_consent", "sms_consent", *TOPIC_COLUMNS,
)  # fmt: skip
REQUIRED_COLUMNS = ("id",)
BATCH = 1000
log = logging.getLogger(__name__)
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
    header_unusable: bool = False  # rejected for its header, not for --strict

    @property
    def ok(self) -> bool:
        return not self.errors


# ----------------------------------------------------------------------------- customers


def parse_consent(value: str | None, column: str) -> bool:
    text = (value or "").strip().lower()
    if text in ("yes", "y", "true", "1", "ja"):
        return True
    if text in ("no", "n", "false", "0", "nein", ""):
        return False
    raise RowInvalid(column, f"{value!r} is not yes or no")


def parse_topic_consent(raw: dict[str, Any]) -> dict[str, bool] | None:
    """The topics a row decides on (``email_offers_consent``, …); None when it names none."""
    chosen = {
        key: parse_consent(raw[column], column)
        for column, key in TOPIC_COLUMNS.items()
        if (raw.get(column) or "").strip()
    }
    return chosen or None


def parse_email(value: str) -> str | None:
    if not value.strip():
        return None
    if len(value) > 320:
        raise RowInvalid("email", "longer than 320 characters")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowInvalid("email", str(exc)) from None


def parse_phone(value: str, region: str) -> str | None:
    if not value.strip():
        return None
    if len(value) > 40:
        raise RowInvalid("phone", "longer than 40 characters")
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
    cid = bounds.identifier((raw.get("id") or "").strip(), "id")
    email = parse_email(raw.get("email") or "")
    phone = parse_phone(raw.get("phone") or "", region)
    if email is None and phone is None:
        raise RowInvalid("email", "a customer needs an e-mail address or a phone number")
    attributes = {
        k: _attribute(k, bounds.text(v, k))
        for k, v in raw.items()
        if k and k not in CUSTOMER_COLUMNS and v not in ("", None)
    }
    if "country" in attributes:
        attributes["country"] = bounds.country(attributes["country"])
    return {
        "id": cid,
        "email": email,
        "phone": phone,
        "first_name": bounds.text(raw.get("first_name"), "first_name").strip(),
        "last_name": bounds.text(raw.get("last_name"), "last_name").strip(),
        "locale": parse_locale(bounds.text(raw.get("locale"), "locale", 35), default_locale),
        "timezone": parse_timezone(bounds.text(raw.get("timezone"), "timezone", 64)),
        "email_consent": parse_consent(raw.get("email_consent"), "email_consent"),
        "sms_consent": parse_consent(raw.get("sms_consent"), "sms_consent"),
        "email_consent_source": "import",
        "sms_consent_source": "import",
        "open_complaints": 0,
        "attributes": attributes,
        "topic_consent": parse_topic_consent(raw),
        "created_at": now,
        "updated_at": now,
    }


# Characters a spreadsheet may have used instead of the comma.
OTHER_DELIMITERS = (";", "\t", "|")


def _header_problem(header: list[str]) -> tuple[str, str] | None:
    """(field, reason) when the header cannot be used, else None."""
    if len(header) == 1:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in header[0]:
                shown = "a tab" if delimiter == "\t" else repr(delimiter)
                return "header", (
                    f"the file is not comma-separated (its header is split by {shown}); "
                    "save it as CSV with commas"
                )
    for column in REQUIRED_COLUMNS:
        if column not in header:
            return column, "column missing from header"
    return None


def csv_records(handle: BinaryIO) -> Iterator[tuple[int, list[str] | RowInvalid]]:
    """(first line, fields) of each CSV record; a line or record that cannot be read comes
    as a :class:`RowInvalid` in its place, and reading goes on with the next line."""
    fetched: list[int] = []
    refused: list[tuple[int, RowInvalid]] = []

    def good_lines() -> Iterator[str]:
        for number, line in bounds.lines(handle):
            if isinstance(line, RowInvalid):
                refused.append((number, line))
            else:
                fetched.append(number)
                yield line

    reader = csv.reader(good_lines())
    while True:
        fetched.clear()
        record: list[str] | RowInvalid | None
        try:
            record = next(reader)
        except StopIteration:
            record = None
        except csv.Error as exc:  # a field past csv's limit, a stray quote at the end
            record = RowInvalid("line", str(exc))
        yield from refused
        refused.clear()
        if record is None:
            return
        if record:  # a blank line is no record
            yield (fetched[0] if fetched else 0), record


@long_lived_frozen()
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
    staged: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    with open(path, "rb") as handle:
        records = csv_records(handle)
        first = next(records, (1, []))
        if isinstance(first[1], RowInvalid):
            problem: tuple[str, str] | None = ("header", first[1].reason)
        else:
            header = [name.strip() for name in first[1]]
            problem = _header_problem(header)
        if problem:
            report.errors.append(RowError(str(path), first[0], *problem))
            report.rejected = True
            report.header_unusable = True
            return report
        batch: list[tuple[int, dict[str, Any]]] = []
        for line, fields in records:
            report.rows += 1
            try:
                if isinstance(fields, RowInvalid):
                    raise fields
                row = customer_row(
                    _record(header, fields), region=region, default_locale=default_locale, now=now
                )
                _once(seen, row["id"], line)
                batch.append((line, row))
            except RowInvalid as exc:
                report.errors.append(RowError(str(path), line, exc.field, exc.reason))
            if len(batch) >= BATCH:
                _flush_customers(db, path, batch, report, strict, staged)
                batch = []
            if progress:
                progress(handle.tell())
        _flush_customers(db, path, batch, report, strict, staged)
    report.errors.sort(key=lambda e: e.line)
    return _finish(db, path, report, strict, staged, _store_customers)


def _record(header: list[str], fields: list[str]) -> dict[str, str]:
    if len(fields) != len(header):
        raise RowInvalid("line", f"{len(fields)} fields where the header has {len(header)}")
    return dict(zip(header, fields, strict=True))


def _once(seen: dict[str, int], key: str, line: int) -> None:
    """Refuse an id already given on an earlier line of the same file."""
    first = seen.setdefault(key, line)
    if first != line:
        raise RowInvalid(
            "id", f"{bounds.shown(key)} is given twice in the file (first on line {first})"
        )


def _flush_customers(db: Engine, path, batch, report: ImportReport, strict: bool, staged) -> None:
    if not batch:
        return
    if strict:
        staged.extend(batch)
        return
    _store_customers(db, path, batch, report)


def _store_customers(db: Engine, path: Path, batch: list[tuple[int, dict]], report) -> None:
    stored, _refused = _stored(db, path, batch, report, _upsert_customers)
    report.imported += stored


def _upsert_customers(db: Engine, rows: list[dict[str, Any]]) -> int:
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
    # A file without topic columns keeps the topics a customer chose.
    update_cols["topic_consent"] = sa.func.coalesce(
        stmt.excluded.topic_consent, customers_t.c.topic_consent
    )
    with db.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update_cols), rows)
    return len(rows)


Store = Callable[[Engine, list[dict[str, Any]]], int]
Batch = list[tuple[int, dict[str, Any]]]


def _stored(db: Engine, path: Path, batch: Batch, report, store: Store) -> tuple[int, int]:
    """(stored, refused) of a batch. If the database refuses the batch, it is stored row by
    row and each refused row reported by its line with the database's reason (never the
    SQL or its parameters, which hold customer data)."""
    try:
        return store(db, [row for _, row in batch]), 0
    except sa.exc.DBAPIError:
        pass
    stored = refused = 0
    for line, row in batch:
        try:
            stored += store(db, [row])
        except sa.exc.DBAPIError as exc:
            refused += 1
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            log.warning("%s:%s: the database refused the row: %s", path, line, reason)
            report.errors.append(
                RowError(str(path), line, "row", f"refused by the database: {reason}")
            )
    return stored, refused


Flush = Callable[[Engine, Path, Batch, "ImportReport"], None]


def _finish(
    db: Engine, path: Path, report: ImportReport, strict: bool, staged: Batch, flush: Flush
):
    if strict:
        rows = list(staged)
        staged.clear()
        if report.errors:
            report.rejected = True
            return report
        for start in range(0, len(rows), BATCH):
            flush(db, path, rows[start : start + BATCH], report)
        report.errors.sort(key=lambda e: e.line)
    return report


# ------------------------------------------------------------------------------- events

ORDER_EVENTS = {"warranty_extended", "return"}
CHANNELS = {"email", "sms"}


def parse_time(value: Any, field_name: str = "at") -> datetime:
    return bounds.moment(value, field_name)


def validate_order(order: Any) -> dict[str, Any]:
    if not isinstance(order, dict):
        raise RowInvalid("order", "a purchase needs an order object")
    order_id = order.get("id")
    order_id = bounds.identifier(
        str(order_id) if isinstance(order_id, int) and not isinstance(order_id, bool) else order_id,
        "order.id",
    )
    items = order.get("items") or []
    if not isinstance(items, list):
        raise RowInvalid("order.items", "must be a list")
    if len(items) > bounds.MAX_ITEMS:
        raise RowInvalid("order.items", f"more than {bounds.MAX_ITEMS} items")
    code = bounds.currency(order.get("currency", "EUR"))
    return {
        **order,
        "id": order_id,
        "total": bounds.amount(order.get("total", "0"), "order.total", code),
        "currency": code,
        "items": [_item(i, item, code) for i, item in enumerate(items)],
    }


_ITEM_TEXTS = (("sku", bounds.MAX_ID), ("name", bounds.MAX_TEXT), ("category", bounds.MAX_TEXT))


def _item(i: int, item: Any, code: str) -> dict[str, Any]:
    where = f"order.items[{i}]"
    if not isinstance(item, dict):
        raise RowInvalid(where, "must be an object")
    clean = dict(item)
    for key, limit in _ITEM_TEXTS:
        value = item.get(key)
        if value is not None and not (type(value) is str and len(value) <= limit):
            clean[key] = bounds.text(value, f"{where}.{key}", limit)
    clean["price"] = bounds.amount(item.get("price", "0"), f"{where}.price", code)
    clean["quantity"] = bounds.whole(
        item.get("quantity", 1), f"{where}.quantity", minimum=1, maximum=bounds.MAX_QUANTITY
    )
    clean["warranty_months"] = bounds.whole(
        item.get("warranty_months"), f"{where}.warranty_months",
        minimum=0, maximum=bounds.MAX_WARRANTY_MONTHS,
    )  # fmt: skip
    clean["inspection_interval_days"] = bounds.whole(
        item.get("inspection_interval_days"), f"{where}.inspection_interval_days",
        minimum=1, maximum=bounds.MAX_INSPECTION_DAYS,
    )  # fmt: skip
    return clean


COMPLAINT_EVENTS = ("complaint_opened", "complaint_resolved")


def complaint_subject(data: dict[str, Any]) -> dict[str, Any]:
    """A complaint's optional ``order``, ``sku`` and ``reason``, each within bounds."""
    subject: dict[str, Any] = {}
    for key in ("order", "sku"):
        if data.get(key) not in (None, ""):
            subject[key] = bounds.identifier(data[key], key)
    if data.get("reason") not in (None, ""):
        subject["reason"] = bounds.text(data["reason"], "reason")
    return subject


def satisfaction(data: dict[str, Any]) -> dict[str, Any]:
    """A rating's ``value`` (a whole number 1–5) and optional ``comment``."""
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RowInvalid(
            "value", f"a rating is a whole number from 1 to 5, got {bounds.shown(value)}"
        )
    rated: dict[str, Any] = {"value": value}
    if data.get("comment") not in (None, ""):
        rated["comment"] = bounds.text(data["comment"], "comment")
    return rated


def unknown_sku(row: dict[str, Any], known: set[str]) -> RowInvalid | None:
    """The error for a complaint naming a SKU no purchase contains, else None."""
    sku = row["payload"].get("sku") if row["type"] in COMPLAINT_EVENTS else None
    if sku is None or sku in known:
        return None
    return RowInvalid("sku", f"unknown SKU {bounds.shown(sku)}: no purchase contains it")


def skus_named(rows: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The SKUs ``rows``' purchases contain, and those their complaints name."""
    bought: set[str] = set()
    named: set[str] = set()
    for row in rows:
        if row["type"] == "purchase":
            bought.update(
                str(i.get("sku")) for i in row["payload"]["order"]["items"] if i.get("sku")
            )
        elif row["type"] in COMPLAINT_EVENTS and row["payload"].get("sku"):
            named.add(row["payload"]["sku"])
    return bought, named


def known_skus(conn: Connection, skus: Iterable[str], customers: Iterable[str] = ()) -> set[str]:
    """Which of ``skus`` a stored purchase contains, or a purchase of one of ``customers``
    imported and not yet applied."""
    wanted = sorted(set(skus))
    if not wanted:
        return set()
    sku = PurchaseItem.__table__.c.sku
    found = {r[0] for r in conn.execute(sa.select(sku).where(sku.in_(wanted)).distinct())}
    e = events_t.c
    pending = sa.select(e.payload).where(
        e.customer_id.in_(sorted(set(customers))), e.type == "purchase", e.applied.is_(False)
    )
    for (payload,) in conn.execute(pending) if set(wanted) - found else ():
        items = ((payload or {}).get("order") or {}).get("items") or []
        found.update(str(i.get("sku")) for i in items if isinstance(i, dict) and i.get("sku"))
    return found & set(wanted)


def event_row(data: Any, *, source: str = "import") -> dict[str, Any]:
    """A validated ``events`` row from one decoded JSON object, or :class:`RowInvalid`."""
    if not isinstance(data, dict):
        raise RowInvalid("event", "each line must be a JSON object")
    for key in ("id", "type", "customer"):
        bounds.identifier(data.get(key), key)
    at = bounds.moment(data.get("at"))
    payload = {k: v for k, v in data.items() if k not in ("id", "type", "customer", "at")}
    kind = data["type"]
    if kind == "purchase":
        payload["order"] = validate_order(data.get("order"))
    elif kind in ORDER_EVENTS and not data.get("order"):
        raise RowInvalid("order", f"a {kind} event names the order it concerns")
    elif kind in ("unsubscribed", "subscribed") and data.get("channel") not in CHANNELS:
        raise RowInvalid("channel", f"{bounds.shown(data.get('channel'))} is not email or sms")
    elif kind in COMPLAINT_EVENTS:
        payload.update(complaint_subject(data))
    elif kind == "satisfaction_rated":
        payload.update(satisfaction(data))
    return {
        "id": data["id"],
        "type": kind,
        "customer_id": data["customer"],
        "at": at,
        "payload": payload,
        "applied": False,
        "source": source,
    }


@long_lived_frozen()
def import_events(
    db: Engine,
    path: Path,
    *,
    strict: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    report = ImportReport()
    staged: Batch = []
    seen: dict[str, int] = {}
    skus: set[str] = set()  # bought in this file so far: a complaint may name them
    with open(path, "rb") as handle:
        batch: Batch = []
        for line_no, line in bounds.lines(handle):
            if isinstance(line, str) and not line.strip():
                continue
            report.rows += 1
            try:
                if isinstance(line, RowInvalid):
                    raise line
                row = event_row(bounds.json_value(line))
                _once(seen, row["id"], line_no)
                batch.append((line_no, row))
            except RowInvalid as exc:
                report.errors.append(RowError(str(path), line_no, exc.field, exc.reason))
            if len(batch) >= BATCH:
                _flush_events(db, path, batch, report, strict, staged, skus)
                batch = []
            if progress:
                progress(handle.tell())
        _flush_events(db, path, batch, report, strict, staged, skus)
    report.errors.sort(key=lambda e: e.line)
    return _finish(db, path, report, strict, staged, _store_events)


def _flush_events(db, path, batch, report, strict, staged, skus: set[str]) -> None:
    if not batch:
        return
    ids = {row["customer_id"] for _, row in batch}
    bought, named = skus_named(row for _, row in batch)
    skus |= bought
    with reading(db) as conn:
        known = {
            r[0] for r in conn.execute(sa.select(customers_t.c.id).where(customers_t.c.id.in_(ids)))
        }
        known_sku = skus | known_skus(conn, named - skus, ids)
    good = []
    for line_no, row in batch:
        bad_sku = unknown_sku(row, known_sku)
        if row["customer_id"] not in known:
            reason = f"unknown customer {bounds.shown(row['customer_id'])}"
            report.errors.append(RowError(str(path), line_no, "customer", reason))
        elif bad_sku is not None:
            report.errors.append(RowError(str(path), line_no, bad_sku.field, bad_sku.reason))
        else:
            good.append((line_no, row))
    if strict:
        staged.extend(good)
    else:
        _store_events(db, path, good, report)


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


def _store_events(db: Engine, path: Path, batch: Batch, report: ImportReport) -> None:
    if not batch:
        return
    new, refused = _stored(db, path, batch, report, insert_events)
    report.imported += new
    report.unchanged += len(batch) - new - refused


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

"""Bounds at the edge: every bad line of an import fails alone, named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaigns.bounds import MAX_LINE_BYTES
from campaigns.importing import import_customers, import_events
from campaigns.models import Customer, Event
from tests.conftest import CUSTOMER_HEADER, Harness, item, purchase

AT = "2026-01-05T10:00:00+01:00"


def stored_events(h: Harness) -> set[str]:
    with h.project.db.connect() as conn:
        return {r.id for r in conn.execute(sa.select(Event.__table__))}


def stored_customers(h: Harness) -> dict[str, dict]:
    with h.project.db.connect() as conn:
        return {r.id: r.attributes for r in conn.execute(sa.select(Customer.__table__))}


def poison_events() -> list[tuple[bytes, str | None]]:
    """(line, the field its error names) — None for a good line."""

    def line(event: dict) -> bytes:
        return json.dumps(event).encode()

    deep = {
        "id": "deep",
        "type": "note",
        "customer": "c1",
        "at": AT,
        "x": json.loads("[" * 40 + "]" * 40),
    }
    return [
        (line(purchase("good1", "c1", AT, "o1", item(warranty_months=24))), None),
        (line(purchase("w", "c1", AT, "o2", item(warranty_months=999999999))), "order.items[0].warranty_months"),
        (line(purchase("i", "c1", AT, "o3", item(inspection_interval_days=99999999))), "order.items[0].inspection_interval_days"),
        (line(purchase("q", "c1", AT, "o4", item(quantity=10**30))), "order.items[0].quantity"),
        (line(purchase("y1", "c1", "0001-01-01T00:00:00+01:00", "o5", item())), "at"),
        (line(purchase("y9", "c1", "9999-12-31T23:00:00-01:00", "o6", item())), "at"),
        (line(purchase("p", "c1", AT, "o7", item(price="1.999"))), "order.items[0].price"),
        (line(purchase("cur", "c1", AT, "o8", item(), total="1")) .replace(b'"EUR"', b'"XQZ"'), "order.currency"),
        (line({"id": "x" * 129, "type": "note", "customer": "c1", "at": AT}), "id"),
        (line(deep), "json"),
        (b'{"id": "big", "type": "note", "customer": "c1", "at": "' + AT.encode() + b'", "n": ' + b"9" * 5000 + b"}", "json"),
        (line({"id": "nul", "type": "note", "customer": "c1", "at": AT, "note": "a\x00b"}), "note"),
        (line({"id": "lone", "type": "note", "customer": "c1", "at": AT, "note": "a\ud800b"}), "note"),
        (line({"id": "pair", "type": "note", "customer": "c1", "at": AT, "note": "\U0001f600"}), None),
        ('{"id": "latin", "type": "note", "customer": "c1", "at": "%s", "city": "K\xf6ln"}'.encode("latin-1") % AT.encode(), "line"),
        (b'{"id": "raw-nul", "type": "note", "customer": "c1", "at": "' + AT.encode() + b'"}\x00', "line"),
        (b'{"pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}', "line"),
        (line({"id": "good1", "type": "note", "customer": "c1", "at": AT}), "id"),
        (line({"id": "good2", "type": "complaint_opened", "customer": "c1", "at": AT}), None),
    ]  # fmt: skip


def test_poison_event_lines_fail_alone(harness: Harness, tmp_path: Path) -> None:
    """On SQLite and PostgreSQL: a NUL never reaches the database, no line ends the file."""
    harness.customers([{"id": "c1", "email": "anna@example.org"}])
    lines = poison_events()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(text for text, _ in lines) + b"\n")

    report = import_events(harness.project.db, path)

    expected = [(n, f) for n, (_, f) in enumerate(lines, 1) if f is not None]
    assert [(e.line, e.field) for e in report.errors] == expected
    assert all(str(e).startswith(f"{path}:{e.line}: {e.field}: ") for e in report.errors)
    assert all(len(e.reason) < 200 for e in report.errors)  # no echo of a whole line
    assert stored_events(harness) == {"good1", "good2", "pair"}
    assert report.imported == 3


def test_strict_rejects_a_file_with_a_poison_line(sqlite_harness: Harness, tmp_path: Path) -> None:
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "anna@example.org"}])
    good = purchase("good", "c1", AT, "o1", item())
    bad = purchase("bad", "c1", AT, "o2", item(quantity=10**30))
    path = tmp_path / "events.jsonl"
    path.write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n", encoding="utf-8")
    report = import_events(h.project.db, path, strict=True)
    assert report.rejected and [(e.line, e.field) for e in report.errors] == [
        (2, "order.items[0].quantity")
    ]
    assert stored_events(h) == set()


def write_customers(path: Path, *rows: bytes, header: bytes | None = None) -> Path:
    head = header if header is not None else (CUSTOMER_HEADER + ",city,country").encode()
    path.write_bytes(b"\n".join([head, *rows]) + b"\n")
    return path


def test_poison_customer_lines_fail_alone(harness: Harness, tmp_path: Path) -> None:
    def row(cid: str, city: str = "Berlin", country: str = "") -> bytes:
        return f"{cid},{cid}@example.org,,A,B,de,,yes,no,{city},{country}".encode()

    path = write_customers(
        tmp_path / "customers.csv",
        row("c1", country="de-by"),                       # 2: good, country normalised
        row("c2", city="x" * 200_000),                    # 3: a field past csv's limit
        row("c3", city="K\xf6ln").decode().encode("latin-1"),  # 4: Latin-1
        row("c4", city="a\x00b"),                         # 5: NUL
        row("c1"),                                        # 6: c1 again
        row("x" * 129),                                   # 7: id too long
        row("c5", country="XX"),                          # 8: no such country
        row("c6", country="DE-ZZ"),                       # 9: no such subdivision
        row("c7", country="US"),                          # 10: good
        b"c8,c8@example.org,,A,B",                        # 11: too few fields
        row("c9"),                                        # 12: good
    )  # fmt: skip

    report = import_customers(harness.project.db, path)

    assert [(e.line, e.field) for e in report.errors] == [
        (3, "line"), (4, "line"), (5, "line"), (6, "id"), (7, "id"),
        (8, "country"), (9, "country"), (11, "line"),
    ]  # fmt: skip
    assert "0xf6" in report.errors[1].reason and "first on line 2" in report.errors[3].reason
    found = stored_customers(harness)
    assert set(found) == {"c1", "c7", "c9"}
    assert (found["c1"]["country"], found["c7"]["country"]) == ("DE-BY", "US")
    assert "country" not in found["c9"]


def test_a_semicolon_file_is_called_what_it_is(sqlite_harness: Harness, tmp_path: Path) -> None:
    path = write_customers(
        tmp_path / "customers.csv",
        b"c1;c1@example.org;;A;B;de;;yes;no",
        header=CUSTOMER_HEADER.replace(",", ";").encode(),
    )
    report = import_customers(sqlite_harness.project.db, path)
    (error,) = report.errors
    assert (error.line, error.field) == (1, "header")
    assert "not comma-separated" in error.reason and "';'" in error.reason
    assert report.header_unusable and stored_customers(sqlite_harness) == {}


@pytest.mark.parametrize("country", ["us", "DE-BY", "de-by", "GB"])
def test_known_countries_are_stored_upper_case(
    sqlite_harness: Harness, tmp_path: Path, country: str
) -> None:
    sqlite_harness.customers([{"id": "c1", "email": "a@example.org", "country": country}])
    assert stored_customers(sqlite_harness)["c1"]["country"] == country.upper()


def test_a_row_the_database_refuses_fails_alone_without_printing_the_batch(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database rule the bounds do not know (here one added by hand) refuses one row: the
    batch is stored row by row, and the report names the line, not the batch's values."""
    db = harness.project.db
    with db.begin() as conn:
        if db.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE customers ADD CONSTRAINT no_zz CHECK (id <> 'zz')")
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER no_zz BEFORE INSERT ON customers WHEN NEW.id = 'zz' "
                "BEGIN SELECT RAISE(ABORT, 'no zz here'); END"
            )
    rows = [f"c{n},secret{n}@example.org,,A,B,de,,yes,no,," for n in range(5)]
    rows.insert(2, "zz,zz@example.org,,A,B,de,,yes,no,,")
    path = write_customers(tmp_path / "customers.csv", *(r.encode() for r in rows))

    report = import_customers(db, path)

    (error,) = report.errors
    assert (error.line, error.field) == (4, "row")
    assert error.reason.startswith("refused by the database")
    shown = str(error) + caplog.text
    assert "secret" not in shown and "INSERT" not in shown
    assert set(stored_customers(harness)) == {f"c{n}" for n in range(5)}


def test_an_unreadable_header_rejects_the_file(sqlite_harness: Harness, tmp_path: Path) -> None:
    path = write_customers(
        tmp_path / "customers.csv",
        b"c1,c1@example.org,,A,B,de,,yes,no",
        header=(CUSTOMER_HEADER + ",Stra\xdfe").encode("latin-1"),
    )
    report = import_customers(sqlite_harness.project.db, path)
    (error,) = report.errors
    assert (error.line, error.field) == (1, "header") and "not UTF-8" in error.reason
    assert report.header_unusable and stored_customers(sqlite_harness) == {}

"""Importing customers and events: validation, partial success, --strict, idempotency."""

from __future__ import annotations

import json

import sqlalchemy as sa

from campaigns.importing import import_customers, import_events
from campaigns.models import Customer, Event

HEADER = "id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent,city,birth_year\n"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def customers(db):
    with db.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(Customer.__table__))}


def test_bad_rows_are_reported_and_good_rows_land(sqlite_harness, tmp_path):
    db = sqlite_harness.project.db
    path = write(
        tmp_path / "customers.csv",
        HEADER
        + "c1,Anna@Example.com,0151 12345678,Anna,Muster,de,Europe/Berlin,yes,no,Berlin,1980\n"
        + "c2,not-an-email,,Bob,X,de,,yes,no,,\n"
        + "c3,c3@example.com,12,C,X,de,,yes,no,,\n"
        + "c4,c4@example.com,,D,X,de,Mars/Olympus,yes,no,,\n"
        + "c5,c5@example.com,,E,X,xx-YY-ZZ,,yes,no,,\n"
        + "c6,c6@example.com,,F,X,de,,maybe,no,,\n"
        + ",c7@example.com,,G,X,de,,yes,no,,\n"
        + "c8,c8@example.com,+1 212 555 0199,H,X,en-US,America/New_York,no,yes,New York,\n",
    )
    report = import_customers(db, path, region="DE")
    found = {(e.line, e.field) for e in report.errors}
    assert found == {(3, "email"), (4, "phone"), (5, "timezone"), (6, "locale"),
                     (7, "email_consent"), (8, "id")}  # fmt: skip
    assert all(str(path) in str(e) for e in report.errors)
    stored = customers(db)
    assert set(stored) == {"c1", "c8"}
    assert stored["c1"].email == "Anna@example.com"  # the domain is normalised
    assert stored["c1"].phone == "+4915112345678"
    assert stored["c1"].attributes == {"city": "Berlin", "birth_year": 1980}
    assert stored["c8"].phone == "+12125550199"
    assert (stored["c8"].email_consent, stored["c8"].sms_consent) == (False, True)


def test_strict_rejects_the_whole_file(sqlite_harness, tmp_path):
    db = sqlite_harness.project.db
    path = write(
        tmp_path / "c.csv",
        HEADER + "c1,a@example.com,,A,B,de,,yes,no,,\nc2,bad,,A,B,de,,yes,no,,\n",
    )
    report = import_customers(db, path, strict=True)
    assert report.rejected and len(report.errors) == 1
    assert customers(db) == {}


def test_events_are_validated_per_line(sqlite_harness, tmp_path):
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "a@example.com"}])
    lines = [
        {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+01:00",
         "order": {"id": "o1", "total": "499.00", "currency": "EUR", "items": []}},
        {"id": "e2", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00"},
        {"id": "e3", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z",
         "order": {"id": "o3", "items": [{"sku": "x", "price": "abc"}]}},
        {"id": "e4", "type": "complaint_opened", "customer": "nobody", "at": "2026-01-05T10:00:00Z"},
        {"id": "e5", "type": "unsubscribed", "customer": "c1", "channel": "fax", "at": "2026-01-05T10:00:00Z"},
        {"id": "e6", "type": "return", "customer": "c1", "at": "2026-01-05T10:00:00Z"},
    ]  # fmt: skip
    text = (
        "\n".join(json.dumps(x) for x in lines[:3])
        + "\n{not json\n"
        + "\n".join(json.dumps(x) for x in lines[3:])
        + "\n"
    )
    report = import_events(h.project.db, write(tmp_path / "events.jsonl", text))
    assert [(e.line, e.field) for e in report.errors] == [
        (2, "at"), (3, "order.items[0].price"), (4, "json"), (5, "customer"), (6, "channel"), (7, "order"),
    ]  # fmt: skip
    assert report.imported == 1
    with h.project.db.connect() as conn:
        assert [r.id for r in conn.execute(sa.select(Event.__table__))] == ["e1"]


def test_reimporting_customers_updates_in_place(sqlite_harness, tmp_path):
    db = sqlite_harness.project.db
    path = write(tmp_path / "c.csv", HEADER + "c1,a@example.com,,A,B,de,,yes,no,Berlin,\n")
    import_customers(db, path)
    import_customers(db, write(path, HEADER + "c1,a@example.com,,A,B,de,,no,no,Hamburg,\n"))
    [c1] = customers(db).values()
    assert (c1.email_consent, c1.attributes["city"]) == (False, "Hamburg")


def test_an_id_seen_twice_is_reported_keeps_its_first_event_and_reimporting_changes_nothing(
    sqlite_harness, tmp_path
):
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "a@example.com"}, {"id": "c2", "email": "b@example.com"}])
    lines = [
        {"id": "e9", "type": "complaint_opened", "customer": "c2", "at": "2026-01-05T10:00:00Z"},
        {"id": "e1", "type": "complaint_opened", "customer": "c1", "at": "2026-01-05T10:00:00Z"},
        {"id": "e1", "type": "complaint_resolved", "customer": "c1", "at": "2026-01-06T10:00:00Z"},
    ]  # fmt: skip
    path = write(tmp_path / "events.jsonl", "".join(json.dumps(x) + "\n" for x in lines))

    first = import_events(h.project.db, path)
    again = import_events(h.project.db, path)

    assert (first.imported, first.unchanged) == (2, 0)
    assert [(e.line, e.field) for e in first.errors] == [(3, "id")]
    assert "first on line 2" in first.errors[0].reason
    assert (again.imported, again.unchanged, len(again.errors)) == (0, 2, 1)
    with h.project.db.connect() as conn:
        stored = {r.id: r.type for r in conn.execute(sa.select(Event.__table__))}
    assert stored == {"e1": "complaint_opened", "e9": "complaint_opened"}


def test_whole_numbers_become_numbers_but_postal_codes_stay_text(sqlite_harness, tmp_path):
    db = sqlite_harness.project.db
    header = HEADER.rstrip("\n") + ",postal_code,zip,visits\n"
    rows = "c1,a@example.com,,A,B,de,,yes,no,Berlin,1980,10115,80331,12\n"
    rows += "c2,b@example.com,,A,B,de,,yes,no,Dresden,1975,01067,,3\n"
    import_customers(db, write(tmp_path / "c.csv", header + rows))
    found = {cid: c.attributes for cid, c in customers(db).items()}
    assert found["c1"] == {"city": "Berlin", "birth_year": 1980, "postal_code": "10115",
                           "zip": "80331", "visits": 12}  # fmt: skip
    assert found["c2"]["postal_code"] == "01067" and found["c2"]["birth_year"] == 1975

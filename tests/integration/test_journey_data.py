"""The names imported rows carry, read the same on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from campaigns.journey_data import (
    ImportedNames,
    data_warnings,
    imported_names,
    imported_names_in_file,
)
from campaigns.journeys import parse_journey
from campaigns.models import reading
from tests.conftest import Harness, item, purchase


def test_imported_names_on_either_database(harness: Harness):
    h = harness
    with reading(h.project.db) as conn:
        assert imported_names(conn) == ImportedNames(None, None, None)
    h.customers([{"id": "c1", "email": "a@example.com", "city": "Berlin", "plz": "10115"},
                 {"id": "c2", "email": "b@example.com"}])  # fmt: skip
    h.events([purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item(warranty_months=24)),
              {"id": "e2", "type": "complaint_opened", "customer": "c1",
               "at": "2026-01-06T10:00:00+01:00"}])  # fmt: skip
    with reading(h.project.db) as conn:
        names = imported_names(conn)
    assert names.attributes is not None and {"city", "plz"} <= names.attributes
    assert names.item_fields == frozenset({"warranty_months"})
    assert names.event_types == frozenset({"purchase", "complaint_opened"})


def test_an_event_type_the_engine_knows_is_no_mistake_even_before_it_happens():
    text = ("id: j\ntrigger: {event: purchase}\nexit: {events: [warranty_extended, retrun]}\n"
            "steps:\n  - id: one\n    send: {channel: email, template: thank_you}\n")  # fmt: skip
    journey, problems = parse_journey(text, "j.yaml")
    assert problems == []
    names = ImportedNames(frozenset(), frozenset(), frozenset({"purchase"}))
    [warning] = data_warnings(journey, "j.yaml", names)
    assert warning.level == "warning"
    assert warning.message == (
        "exit.events.1: no imported event has the type `retrun` — did you mean `return`?"
    )


def test_references_read_attributes_however_they_are_written():
    from campaigns.journey_data import references

    assert (
        references(
            "customer.stadt == 'x' and customer['plz'] and customer.attributes.land "
            "and customer.attributes['ort'] and item.sku and order.items[0].sku and x["
        )
        == set()
    )  # a broken expression is validation's to report
    assert references(
        "customer.stadt == 'x' and customer['plz'] and customer.attributes.land "
        "and customer.attributes['ort'] and item.sku and order.items[0]"
    ) == {("customer", "stadt"), ("customer", "plz"), ("customer", "land"),
          ("customer", "ort"), ("item", "sku"), ("order", "items")}  # fmt: skip


def test_the_standard_library_reads_the_same_names_from_a_sqlite_file(sqlite_harness: Harness):
    h = sqlite_harness
    path = Path(h.project.db.url.database)
    assert imported_names_in_file(path) == ImportedNames(None, None, None)
    h.customers([{"id": "c1", "email": "a@example.com", "city": "Berlin"}])
    h.events([purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item(warranty_months=24))])
    with reading(h.project.db) as conn:
        through_the_stack = imported_names(conn)
    assert imported_names_in_file(path) == through_the_stack
    assert through_the_stack.item_fields == frozenset({"warranty_months"})
    assert imported_names_in_file(path.with_name("missing.db")) == ImportedNames(None, None, None)

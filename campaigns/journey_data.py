"""Journeys checked against the imported data: names that no imported row carries.

A condition over ``customer.stadt`` is valid Jinja2 and an unknown attribute reads as
None, so it loads and then matches nobody; a trigger on ``purchse`` waits for an event
that never comes. Once customers or events are imported, :func:`data_warnings` names each
such reference as a warning (the journey still loads), with the nearest name the data does
carry. Nothing is said about a kind of data not imported yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from campaigns.journey_problems import JourneyProblem, nearest, source_line
from campaigns.journeys import Journey

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "ImportedNames",
    "data_warnings",
    "imported_names",
    "imported_names_in_file",
    "references",
]

# What every customer has, besides the attributes the import brought along.
CUSTOMER_FIELDS = frozenset(
    {"id", "first_name", "last_name", "email", "phone", "locale", "timezone", "email_consent",
     "sms_consent", "attributes", "age", "purchase_count"}
)  # fmt: skip
# Item fields that an imported row may leave empty; the others every item has.
OPTIONAL_ITEM_FIELDS = ("warranty_months", "inspection_interval_days")
# Event types aftersale itself acts on: naming one that no row has yet is no mistake.
KNOWN_EVENT_TYPES = frozenset(
    {"purchase", "return", "complaint_opened", "complaint_resolved", "unsubscribed",
     "subscribed", "warranty_extended", "inspection_booked", "coupon_redeemed", "review_written"}
)  # fmt: skip
_env = ImmutableSandboxedEnvironment()


@dataclass(frozen=True)
class ImportedNames:
    """What the imported rows carry: None for a kind of row not imported yet."""

    attributes: frozenset[str] | None
    item_fields: frozenset[str] | None  # the optional item fields some row fills
    event_types: frozenset[str] | None


# A query's rows: the same statements run through SQLAlchemy or the standard library.
Rows = Callable[[str], list[tuple]]


def imported_names(conn: Connection) -> ImportedNames:
    """Read, in a few statements, the attribute names, filled item fields and event types."""
    import sqlalchemy as sa

    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    return _names(lambda query: [tuple(r) for r in conn.execute(sa.text(query))], dialect)


def imported_names_in_file(path: Path) -> ImportedNames:
    """The same from a SQLite file, read-only through the standard library: what
    ``journeys validate`` reads for its warnings without loading the database stack. A file
    without the tables yet has nothing imported."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.OperationalError:  # no file
        return ImportedNames(None, None, None)
    try:
        return _names(lambda query: conn.execute(query).fetchall(), "sqlite")
    except sqlite3.OperationalError:  # no tables yet
        return ImportedNames(None, None, None)
    finally:
        conn.close()


def _names(rows: Rows, dialect: str) -> ImportedNames:
    customers = rows("SELECT count(*) FROM customers")[0][0]
    events = rows("SELECT count(*) FROM events")[0][0]
    items = events and rows(_ITEMS[dialect] + " LIMIT 1")
    return ImportedNames(
        attributes=frozenset(r[0] for r in rows(_ATTRIBUTES[dialect])) if customers else None,
        item_fields=frozenset(_filled_item_fields(rows, dialect)) if items else None,
        event_types=frozenset(r[0] for r in rows("SELECT DISTINCT type FROM events"))
        if events
        else None,
    )


_ATTRIBUTES = {
    "postgresql": "SELECT DISTINCT json_object_keys(attributes::json) FROM customers",
    "sqlite": "SELECT DISTINCT j.key FROM customers, json_each(customers.attributes) AS j",
}
# Every imported item, applied or not: the items of each event's order.
_ITEMS = {
    "sqlite": "SELECT 1 FROM events, json_each(events.payload, '$.order.items') AS i",
    "postgresql": "SELECT 1 FROM events, "
    "json_array_elements((events.payload::json) -> 'order' -> 'items') AS i "
    "WHERE json_typeof((events.payload::json) -> 'order' -> 'items') = 'array'",
}
_ITEM_FIELD = {
    "sqlite": "json_extract(i.value, '$.{field}') IS NOT NULL",
    "postgresql": "(i ->> '{field}') IS NOT NULL",
}


def _filled_item_fields(rows: Rows, dialect: str) -> Iterator[str]:
    joiner = " AND " if dialect == "postgresql" else " WHERE "
    for field in OPTIONAL_ITEM_FIELDS:
        query = _ITEMS[dialect] + joiner + _ITEM_FIELD[dialect].format(field=field) + " LIMIT 1"
        if rows(query):
            yield field


def references(source: str) -> set[tuple[str, str]]:
    """The (root, field) pairs an expression reads: ``customer.city``, ``item.sku``;
    ``customer.attributes.city`` counts as ``customer.city``."""
    try:
        tree = _env.parse(f"{{{{ {source} }}}}")
    except Exception:  # noqa: BLE001 - a broken expression is reported by validation
        return set()
    found = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        field = _field_name(node)
        inner = node.node
        if field is None:
            continue
        if isinstance(inner, nodes.Name):
            found.add((inner.name, field))
        elif _field_name(inner) == "attributes" and isinstance(inner.node, nodes.Name):
            found.add((inner.node.name, field))
    return {pair for pair in found if pair != ("customer", "attributes")}


def _field_name(node: nodes.Node) -> str | None:
    """``x.name`` or ``x['name']``: the name; anything else: None."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return node.arg.value if isinstance(node.arg.value, str) else None
    return None


def data_warnings(journey: Journey, source: str, names: ImportedNames) -> list[JourneyProblem]:
    """Warnings for ``journey`` (read from ``source``) about names no imported row has."""
    found = []
    for where, expression in journey.conditions():
        loc = tuple(int(p) if p.isdigit() else p for p in where.split("."))
        for root, field in sorted(references(expression)):
            message = _reference_warning(root, field, names)
            if message:
                line = source_line(source, loc)
                found.append(JourneyProblem(source, line, f"{where}: {message}", "warning"))
    for loc, event_type in _event_names(journey):
        message = _event_warning(event_type, names)
        if message:
            where = ".".join(str(p) for p in loc)
            found.append(
                JourneyProblem(source, source_line(source, loc), f"{where}: {message}", "warning")
            )
    return found


def _reference_warning(root: str, field: str, names: ImportedNames) -> str | None:
    if root == "customer" and names.attributes is not None:
        if field in CUSTOMER_FIELDS or field in names.attributes:
            return None
        guess = nearest(field, [*names.attributes, *CUSTOMER_FIELDS])
        hint = f" — did you mean `customer.{guess}`?" if guess else ""
        return f"no imported customer has the attribute `{field}`, so it is always empty{hint}"
    optional = field in OPTIONAL_ITEM_FIELDS
    if root == "item" and optional and field not in (names.item_fields or {field}):
        return f"no imported item has `{field}`, so it is always empty"
    return None


def _event_names(journey: Journey) -> list[tuple[tuple[Any, ...], str]]:
    found: list[tuple[tuple[Any, ...], str]] = [(("trigger", "event"), journey.trigger.event)]
    found += [(("exit", "events", i), name) for i, name in enumerate(journey.exit.events)]
    return found


def _event_warning(event_type: str, names: ImportedNames) -> str | None:
    if names.event_types is None or event_type in names.event_types | KNOWN_EVENT_TYPES:
        return None
    guess = nearest(event_type, names.event_types | KNOWN_EVENT_TYPES)
    hint = (
        f" — did you mean `{guess}`?"
        if guess
        else f" (imported types: {', '.join(sorted(names.event_types))})"
    )
    return f"no imported event has the type `{event_type}`{hint}"

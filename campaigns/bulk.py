"""One statement for many rows, without SQLAlchemy's per-row parameter handling on SQLite.

For each row of an ``executemany`` SQLAlchemy builds the full parameter dictionary and
runs every bound value through its type's processor: on SQLite that costs more than the
insert or update itself. :func:`executemany` compiles a statement once per set of row keys
into the SQL and one function that turns a row into the driver's tuple, converting only
where a type needs it, exactly as the statement's own processors would. Times are
converted once per distinct value within a call (a batch's rows share their planning
time and trigger).

On PostgreSQL an insert, or an update of rows named by ``_id``, runs as one statement.
psycopg's executemany sends one statement per row (in a pipeline), with SQLAlchemy's and
psycopg's per-row parameter handling. Here the rows go as one JSON document, a list of
lists encoded by the standard library's C encoder, and the statement reads them from
``jsonb_array_elements``, each value cast to its column's type (``INSERT … SELECT
CAST(e.value ->> 0 AS INTEGER), … FROM jsonb_array_elements(:rows) AS e``, ``UPDATE … FROM
(SELECT …) AS v WHERE messages.id = v.c0``). A JSON column's value goes as the text
SQLAlchemy would store, so it is stored as it always was. Where a statement needs a type
the document does not carry, each parameter's values go as one array, read from
``unnest`` of those arrays: psycopg turns arrays into text element by element in Python,
four times the client's work of the document for the same server's work. Rows of an
update naming the same ``_id`` twice, which one statement would apply once, take the
ordinary path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import JSON, DateTime, TypeDecorator

from campaigns.models import UTCDateTime, _in_utc

__all__ = ["executemany", "unjournaled"]

# (SQL, a function (converters...) -> (row -> tuple), each converter's factory)
_Prepared = tuple[str, Callable[..., Callable[[Mapping[str, Any]], tuple]], tuple[Any, ...]]
_PREPARED: dict[tuple[ClauseElement, tuple[str, ...]], _Prepared] = {}


def executemany(
    conn: Connection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run ``statement`` once for each of ``rows`` (all with the same keys).

    Returns the driver's row count: on SQLite, and on PostgreSQL where the rows go as
    arrays, how many rows the statement changed in all (an insert's conflict clause leaves
    some alone); psycopg's executemany counts only the last row's.
    ``statement`` should be built once, not per call: compilations are kept per statement.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql" and _unnestable(statement, rows):
        keys = tuple(rows[0])
        unnested, json_at = _unnested(conn, statement, keys)
        if json_at is not None:
            values = [[row[key] for key in keys] for row in rows]
            for i in json_at:  # as the JSON column's own text
                for value in values:
                    value[i] = _json_text(value[i])
            return conn.execute(unnested, {"rows": _dumps(values)}).rowcount
        arrays = {f"a{i}": [row[key] for row in rows] for i, key in enumerate(keys)}
        return conn.execute(unnested, arrays).rowcount
    if conn.dialect.name != "sqlite":
        return conn.execute(statement, list(rows)).rowcount
    sql, make_row, factories = _prepare(conn, statement, tuple(rows[0]))
    as_tuple = make_row(*(factory() for factory in factories))
    return conn.exec_driver_sql(sql, [as_tuple(row) for row in rows]).rowcount


def unjournaled(update: Update) -> Update:
    """``update`` as ``UPDATE OR IGNORE`` on SQLite, for an update of many rows that no
    constraint can refuse.

    SQLite keeps a statement journal for a statement that changes several rows and could
    stop half-way on a constraint (a NOT NULL column, say): a copy of every page it
    changes, so that it can undo that statement alone; past 64 KiB the copy goes to a
    temporary file. Cancelling the planned messages of enrolments that a repurchase ended
    wrote 190 MB of it per 10,000 purchases; a dispatcher's claims and completions 100 MB
    per 10,000 messages. With OR IGNORE no constraint stops the statement, so SQLite keeps
    no journal for it. What the statement does is unchanged as long as no row could break
    a constraint: use it only for statements that set constants, or values that are never
    NULL, in columns without UNIQUE, CHECK or foreign-key constraints. PostgreSQL keeps no
    such journal and gets the statement as it was.
    """
    return update.prefix_with("OR IGNORE", dialect="sqlite")


def _unnestable(statement: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> bool:
    if len(rows) < 2:
        return False
    if isinstance(statement, Insert):  # columns given by the rows, nothing returned
        return statement.select is None and not statement._values and not statement._returning
    if not isinstance(statement, Update) or "_id" not in rows[0]:
        return False
    return len({row["_id"] for row in rows}) == len(rows)


# Per statement and keys: the statement reading its rows, and where the rows go as one
# JSON document the positions of the JSON columns' values (None: one array per key).
_UNNESTED: dict[tuple[ClauseElement, tuple[str, ...]], tuple[ClauseElement, tuple | None]] = {}


def _unnested(
    conn: Connection, statement: ClauseElement, keys: tuple[str, ...]
) -> tuple[ClauseElement, tuple[int, ...] | None]:
    """``statement`` with each parameter named in ``keys`` read from a row of the JSON
    document bound as ``rows`` (a list of lists, values in the order of keys) or, where a
    type has no place in the document, of ``unnest`` of one array per key (bound as
    ``a0``, ``a1``, …); and, for a document, the positions of its JSON columns' values
    (None for arrays)."""
    cache_key = (statement, keys)
    if cache_key not in _UNNESTED:
        if isinstance(statement, Insert):
            types = [statement.table.c[key].type for key in keys]
        else:
            compiled = statement.compile(dialect=conn.dialect, column_keys=list(keys))
            types = [compiled.binds[key].type for key in keys]
        json_at = _document_form(types)
        if json_at is not None:
            rows = _from_document(types, conn.dialect)
        else:
            # One dimension: a JSON value that is a list is one element, not a nested array.
            arrays = [
                sa.bindparam(f"a{i}", type_=ARRAY(type_, dimensions=1))
                for i, type_ in enumerate(types)
            ]
            rows = (
                sa.func.unnest(*arrays)
                .table_valued(*(sa.column(f"c{i}") for i in range(len(keys))))
                .render_derived(name="v")
            )
        if isinstance(statement, Insert):  # the table's own defaults fill the rest
            insert = statement.from_select(list(keys), sa.select(*rows.c))
            # An insert's row count is kept only when asked for.
            _UNNESTED[cache_key] = (insert.execution_options(preserve_rowcount=True), json_at)
            return _UNNESTED[cache_key]
        columns = {key: rows.c[f"c{i}"] for i, key in enumerate(keys)}

        def replace(element: Any) -> Any:
            if isinstance(element, BindParameter) and element.key in columns:
                return columns[element.key]
            return None

        _UNNESTED[cache_key] = (visitors.replacement_traverse(statement, {}, replace), json_at)
    return _UNNESTED[cache_key]


def _plain(type_: Any) -> Any:
    """The type a value of ``type_`` is stored as, or None where ``type_`` converts values
    in a way of its own (a decorator's) that the document would not: UTCDateTime's check
    that a time is aware is made as the document is written."""
    if not isinstance(type_, TypeDecorator):
        return type_
    if isinstance(type_, UTCDateTime):
        return type_.impl_instance
    if type(type_).process_bind_param is TypeDecorator.process_bind_param:
        return type_.impl_instance
    return None


def _document_form(types: Sequence[Any]) -> tuple[int, ...] | None:
    """The positions of the JSON values if every type is one the document carries exactly
    (text, integers, booleans, times with their zone, JSON), else None."""
    json_at = []
    for i, type_ in enumerate(types):
        plain = _plain(type_)
        if isinstance(plain, JSON):
            json_at.append(i)
        elif not (
            isinstance(plain, sa.String | sa.Integer | sa.Boolean)
            or (isinstance(plain, DateTime) and plain.timezone)
        ):
            return None
    return tuple(json_at)


def _from_document(types: Sequence[Any], dialect: Any) -> Any:
    """The rows of the JSON document ``rows`` as a derived table ``v``, one column per type
    (``c0``, ``c1``, …), each value read as text and cast to its type.

    jsonb, not json: ``->>`` on json reads the element's row from its start for each value
    (a statement of 2,000 rows of 12 values took the server four times the arrays' time),
    on jsonb it goes straight to it. Text is not cast: the column's own length check
    applies when it is stored, where a cast would cut it short. A JSON column's value is
    its text, cast to JSON; a JSON null in the document is NULL.
    """
    values = []
    for i, type_ in enumerate(types):
        plain = _plain(type_)
        if isinstance(plain, sa.String):
            value = sa.literal_column(f"e.value ->> {i}", type_=type_)
        else:
            sql_type = plain.compile(dialect=dialect)
            value = sa.literal_column(f"CAST(e.value ->> {i} AS {sql_type})", type_=type_)
        values.append(value.label(f"c{i}"))
    document = sa.cast(sa.bindparam("rows", type_=sa.Text()), JSONB())
    elements = sa.func.jsonb_array_elements(document).table_valued("value").alias("e")
    return sa.select(*values).select_from(elements).subquery("v")


def _value(value: Any) -> Any:
    """A value the JSON encoder does not know, as the document carries it: an aware time
    as ISO text (a naive one is refused, as :class:`UTCDateTime` refuses it)."""
    if isinstance(value, datetime):
        return _in_utc(value).isoformat()
    raise TypeError(f"{type(value).__name__} {value!r} cannot go into a JSON document")


_dumps = json.JSONEncoder(default=_value, allow_nan=False).encode
# A JSON column's text, as SQLAlchemy's JSON type writes it (json.dumps).
_json_text = json.JSONEncoder().encode


def _prepare(conn: Connection, statement: ClauseElement, keys: tuple[str, ...]) -> _Prepared:
    cache_key = (statement, keys)
    if cache_key not in _PREPARED:
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        # Values the statement fixes itself (a status in its WHERE clause) are not in the rows.
        fixed = {name: compiled.params[name] for name in order if name not in keys}
        missing = [name for name in fixed if compiled.binds[name].required]
        if missing:
            raise ValueError(f"the rows give no value for {', '.join(missing)}")
        factories = {
            name: factory
            for name in order
            if (factory := _converter(compiled.binds[name].type, dialect)) is not None
        }
        _PREPARED[cache_key] = (
            compiled.string,
            _row_function(order, fixed, list(factories)),
            tuple(factories.values()),
        )
    return _PREPARED[cache_key]


def _row_function(
    order: tuple[str, ...], fixed: Mapping[str, Any], converted: list[str]
) -> Callable[..., Callable[[Mapping[str, Any]], tuple]]:
    """A function taking one converter per name in ``converted`` and giving the function
    that turns a row into the statement's parameter tuple: one tuple display, written out
    for these names (as ``collections.namedtuple`` writes its classes), instead of a loop
    over the names per row."""
    parts = []
    for name in order:
        value = f"f[{name!r}]" if name in fixed else f"r[{name!r}]"
        if name in converted:
            value = f"c{converted.index(name)}({value})"
        parts.append(value)
    arguments = ", ".join(f"c{i}" for i in range(len(converted)))
    source = f"lambda {arguments}: lambda r: ({''.join(part + ', ' for part in parts)})"
    return eval(source, {"f": dict(fixed)})  # noqa: S307 - names are the statement's own, quoted


def _converter(type_: Any, dialect: Any) -> Callable[[], Callable[[Any], Any]] | None:
    """A factory of the type's bind processor on this dialect, or None when it has none:
    JSON with a fast path for the empty object, times memoised per call."""
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    if isinstance(type_, JSON):
        return lambda: lambda value: "{}" if type(value) is dict and not value else processor(value)
    if isinstance(type_, DateTime) or isinstance(getattr(type_, "impl_instance", None), DateTime):
        return lambda: _memoised(processor)
    return lambda: processor


def _memoised(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``processor`` remembering its results: equal times give equal text."""
    memo: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        text = memo.get(value)
        if text is None:
            text = memo[value] = processor(value)
        return text

    return convert

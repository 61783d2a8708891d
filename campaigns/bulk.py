"""One statement for many rows, without SQLAlchemy's per-row parameter handling on SQLite.

For each row of an ``executemany`` SQLAlchemy builds the full parameter dictionary and
runs every bound value through its type's processor: on SQLite that costs more than the
insert or update itself. :func:`executemany` compiles a statement once per set of row keys
into the SQL and one function that turns a row into the driver's tuple, converting only
where a type needs it, exactly as the statement's own processors would. Times are
converted once per distinct value within a call (a batch's rows share their planning
time and trigger).

On PostgreSQL an insert, or an update of rows named by ``_id``, runs as one statement:
each parameter's values bound as one array, the rows read from ``unnest`` of those arrays
(``INSERT … SELECT … FROM unnest(:a, :b, …)``, ``UPDATE … FROM unnest(…) AS v(…) WHERE
messages.id = v._id``). psycopg's executemany sends one statement per row (in a
pipeline), with SQLAlchemy's and psycopg's per-row parameter handling; the arrays are
converted in one go. Rows of an update naming the same ``_id`` twice, which one statement
would apply once, take the ordinary path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import JSON, DateTime

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
        arrays = {f"a{i}": [row[key] for row in rows] for i, key in enumerate(keys)}
        return conn.execute(_unnested(conn, statement, keys), arrays).rowcount
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


_UNNESTED: dict[tuple[ClauseElement, tuple[str, ...]], ClauseElement] = {}


def _unnested(conn: Connection, statement: ClauseElement, keys: tuple[str, ...]) -> ClauseElement:
    """``statement`` with each parameter named in ``keys`` read from the rows of
    ``unnest`` of one array per key (bound as ``a0``, ``a1``, …, in the order of keys)."""
    cache_key = (statement, keys)
    if cache_key not in _UNNESTED:
        if isinstance(statement, Insert):
            types = [statement.table.c[key].type for key in keys]
        else:
            compiled = statement.compile(dialect=conn.dialect, column_keys=list(keys))
            types = [compiled.binds[key].type for key in keys]
        # One dimension: a JSON value that is a list is one element, not a nested array.
        arrays = [
            sa.bindparam(f"a{i}", type_=ARRAY(type_, dimensions=1)) for i, type_ in enumerate(types)
        ]
        rows = (
            sa.func.unnest(*arrays)
            .table_valued(*(sa.column(f"c{i}") for i in range(len(keys))))
            .render_derived(name="v")
        )
        if isinstance(statement, Insert):  # the table's own defaults fill the rest
            insert = statement.from_select(list(keys), sa.select(*rows.c))
            # An insert's row count is kept only when asked for.
            _UNNESTED[cache_key] = insert.execution_options(preserve_rowcount=True)
            return _UNNESTED[cache_key]
        columns = {key: rows.c[f"c{i}"] for i, key in enumerate(keys)}

        def replace(element: Any) -> Any:
            if isinstance(element, BindParameter) and element.key in columns:
                return columns[element.key]
            return None

        _UNNESTED[cache_key] = visitors.replacement_traverse(statement, {}, replace)
    return _UNNESTED[cache_key]


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

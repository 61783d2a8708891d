"""One statement for many rows, without SQLAlchemy's per-row parameter handling on SQLite.

For each row of an ``executemany`` SQLAlchemy builds the full parameter dictionary and
runs every bound value through its type's processor: on SQLite that costs more than the
insert or update itself. :func:`executemany` compiles a statement once per set of row keys
into the SQL and one function that turns a row into the driver's tuple, converting only
where a type needs it, exactly as the statement's own processors would. Times are
converted once per distinct value within a call (a batch's rows share their planning
time and trigger). PostgreSQL takes the ordinary path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import JSON, DateTime

__all__ = ["executemany"]

# (SQL, a function (converters...) -> (row -> tuple), each converter's factory)
_Prepared = tuple[str, Callable[..., Callable[[Mapping[str, Any]], tuple]], tuple[Any, ...]]
_PREPARED: dict[tuple[ClauseElement, tuple[str, ...]], _Prepared] = {}


def executemany(
    conn: Connection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run ``statement`` once for each of ``rows`` (all with the same keys).

    Returns the driver's row count: on SQLite, how many rows the statement changed in all
    (an insert's conflict clause leaves some alone); psycopg counts only the last row's.
    ``statement`` should be built once, not per call: compilations are kept per statement.
    """
    if not rows:
        return 0
    if conn.dialect.name != "sqlite":
        return conn.execute(statement, list(rows)).rowcount
    sql, make_row, factories = _prepare(conn, statement, tuple(rows[0]))
    as_tuple = make_row(*(factory() for factory in factories))
    return conn.exec_driver_sql(sql, [as_tuple(row) for row in rows]).rowcount


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

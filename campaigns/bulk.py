"""One statement for many rows, without SQLAlchemy's per-row parameter handling on SQLite.

For each row of an ``executemany`` SQLAlchemy builds the full parameter dictionary and
runs every bound value through its type's processor: on SQLite that costs more than the
insert or update itself. :func:`executemany` compiles a statement once per set of row keys
and hands the driver plain tuples, converted only where a type needs it, exactly as the
statement's own processors would. PostgreSQL takes the ordinary path.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import JSON

__all__ = ["executemany"]

_Prepared = tuple[str, Callable[[Mapping[str, Any]], Any], tuple[tuple[int, Any], ...]]
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
    sql, values, converters = _prepare(conn, statement, tuple(rows[0]))
    params = []
    for row in rows:
        row_values = list(values(row))
        for index, convert in converters:
            row_values[index] = convert(row_values[index])
        params.append(tuple(row_values))
    return conn.exec_driver_sql(sql, params).rowcount


def _prepare(conn: Connection, statement: ClauseElement, keys: tuple[str, ...]) -> _Prepared:
    cache_key = (statement, keys)
    if cache_key not in _PREPARED:
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        get = operator.itemgetter(*order) if len(order) > 1 else lambda r: (r[order[0]],)
        # Values the statement fixes itself (a status in its WHERE clause) are not in the rows.
        fixed = {name: compiled.params[name] for name in order if name not in keys}
        missing = [name for name in fixed if compiled.binds[name].required]
        if missing:
            raise ValueError(f"the rows give no value for {', '.join(missing)}")
        values = (lambda r: get({**fixed, **r})) if fixed else get
        converters = tuple(
            (index, convert)
            for index, name in enumerate(order)
            if (convert := _converter(compiled.binds[name].type, dialect)) is not None
        )
        _PREPARED[cache_key] = (compiled.string, values, converters)
    return _PREPARED[cache_key]


def _converter(type_: Any, dialect: Any) -> Any:
    """The type's bind processor on this dialect, with a fast path for empty JSON."""
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if processor is not None and isinstance(type_, JSON):
        return lambda value: "{}" if type(value) is dict and not value else processor(value)
    return processor

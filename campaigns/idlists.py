"""A column compared with a list of values bound at execution, in each database's best form.

``column IN (:ids)`` with an expanding parameter is rendered anew for every length of the
list: a new SQL string each time. SQLite does not mind (the string is short-lived and its
driver keeps no plans), but on PostgreSQL every new string is compiled by SQLAlchemy,
converted by psycopg (which caches only statements shorter than 4 KB) and never prepared
on the server. There :func:`id_in` renders ``column = ANY(:ids)`` with the list bound as
one array: one string whatever the length, compiled, converted and prepared once.

The statements stay built once, at import: the form is chosen when a statement is
compiled for a dialect, and compilations are cached per dialect.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["id_in"]


class IdIn(ColumnElement[bool]):
    """``column`` is one of the values bound as ``name`` (a list)."""

    __visit_name__ = "id_in"
    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: Any, name: str) -> None:
        self.column = column
        self.name = name

    # A comparison, not a boolean column: without these, SQLite (no native boolean) would
    # get `(... IN (...)) = 1`, which no index serves.
    def self_group(self, against: Any = None) -> IdIn:
        return self

    def _negate(self) -> Any:
        return UnaryExpression(self, operator=operators.inv)


def id_in(column: Any, name: str = "ids") -> IdIn:
    """``column IN (:name)``, bound as one array on PostgreSQL."""
    return IdIn(column, name)


@compiles(IdIn)
def _expanding(element: IdIn, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.in_(sa.bindparam(element.name, expanding=True)), **kw)


@compiles(IdIn, "postgresql")
def _array(element: IdIn, compiler: Any, **kw: Any) -> str:
    values = sa.bindparam(element.name, type_=ARRAY(element.column.type))
    return compiler.process(element.column == sa.any_(values), **kw)

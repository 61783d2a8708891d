"""Customer data on a terminal: shown as text, never as markup or control sequences.

Names, reasons, ids and patterns come from customers, shops and providers. Rich would read
``[/]`` in a bounce reason as markup (and fail), ``[link=…]`` in a first name as a link,
and a terminal would obey ``ESC [2J`` (clear screen) or ``ESC ]0;…`` (window title) in any
of them. Everything the CLI prints that it did not write itself goes through :func:`safe`
(a table cell, a value inside a message) or is printed with ``markup=False`` after
:func:`clean`.
"""

from __future__ import annotations

import re
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

__all__ = ["clean", "figures_table", "safe"]

# C0 and C1 controls and DEL, and the invisible characters that reorder or hide text
# (bidirectional overrides and isolates).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\r\n\t]+")


def clean(value: Any, *, lines: bool = False) -> str:
    """``value`` as text without control characters; line breaks kept only with ``lines``."""
    text = "" if value is None else str(value)
    if not lines:
        text = _LINE_BREAKS.sub(" ", text)
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def safe(value: Any, *, lines: bool = False) -> str:
    """``value`` ready to sit inside Rich markup: cleaned, and its brackets escaped."""
    return escape(clean(value, lines=lines))


def figures_table(*columns: str, keep: int = 1, title: str | None = None) -> Table:
    """A table of figures for 80 columns: light rules, no edge, one space between columns.

    The first ``keep`` columns (a journey id, what one types next) keep their width; the
    others (reasons, caps) break a long word rather than end in an ellipsis. Columns of
    counts are right-aligned with :func:`right`."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True,
                  title=title)  # fmt: skip
    for position, column in enumerate(columns):
        table.add_column(column, no_wrap=position < keep, overflow="fold")
    return table


def right(table: Table, *positions: int) -> Table:
    """Right-align the columns at ``positions`` (counts, amounts); returns ``table``."""
    for position in positions:
        column = table.columns[position]
        column.justify, column.overflow = "right", "ellipsis"
        # A one-word heading cannot wrap: the column keeps its width, so its numbers are
        # never cut; a longer heading ("revenue (EUR)") may take two lines instead.
        column.no_wrap = " " not in str(column.header)
    return table

"""Finding a customer from the console's header box: by id, name, e-mail or phone.

An exact id wins. Otherwise the text is a prefix of an id, an e-mail address, a phone
number (spaces, dashes and brackets ignored, ``00`` read as ``+``), a first or last name, or
"first last" (names ignoring case). Ids, addresses and numbers are found through their
indexes (a range from the prefix), so a search answers at once however large the shop.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.models import Customer

customers_t = Customer.__table__
LIMIT = 50
_SEPARATORS = re.compile(r"[\s\-/().]")


def _prefix(column: Any, text: str) -> Any:
    """``column`` starts with ``text``: a range the column's index answers, then the exact
    test (the range alone depends on the collation)."""
    return sa.and_(
        column >= text,
        column < text + "\U0010ffff",
        column.startswith(text, autoescape=True),
    )


def phone_prefix(text: str) -> str | None:
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits if re.fullmatch(r"\+?\d{3,}", digits) else None


def find_customers(conn: Connection, query: str, *, limit: int = LIMIT) -> list[Any]:
    """The customers ``query`` names: the one with that id, else every prefix match (up to
    ``limit``), ordered by last name, first name and id."""
    text = query.strip()
    if not text:
        return []
    c = customers_t.c
    exact = conn.execute(sa.select(customers_t).where(c.id == text)).first()
    if exact is not None:
        return [exact]
    lowered = text.lower()
    full_name = sa.func.lower(c.first_name + " " + c.last_name)
    matches = [
        _prefix(c.id, text),
        _prefix(c.email, lowered),
        sa.func.lower(c.first_name).startswith(lowered, autoescape=True),
        sa.func.lower(c.last_name).startswith(lowered, autoescape=True),
        full_name.startswith(lowered, autoescape=True),
    ]
    if (number := phone_prefix(text)) is not None:
        matches.append(_prefix(c.phone, number))
        if not number.startswith("+"):
            matches.append(_prefix(c.phone, "+" + number))
    found = conn.execute(
        sa.select(customers_t)
        .where(sa.or_(*matches))
        .order_by(c.last_name, c.first_name, c.id)
        .limit(limit)
    )
    return list(found)

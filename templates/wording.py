"""Filters that make a message about several things read naturally.

A bundled message names every item it is about (``items`` in the context), so templates
need to say "your dishwasher and your washing machine" or "Ihre Spülmaschine und Ihre
Waschmaschine" rather than print a list:

- ``{{ names | and_list }}`` → ``a, b and c`` (en), ``a, b und c`` (de), ``a, b et c``
  (fr): the locale's own word for "and", without a serial comma;
- ``{{ item.name | your }}`` → ``your washing machine`` (en), ``Ihre Waschmaschine`` (de).
  German needs the noun's gender: it is read from the last part of the name's first word
  (``Waschmaschine`` → ``-maschine`` → feminine; ``Geschirrspüler`` → ``-er`` →
  masculine). A word whose gender cannot be told keeps no possessive: ``Bosch Serie 4``
  stays as it is rather than risk a wrong article. The case defaults to the accusative
  ("für Ihren Trockner"); ``your("nom")`` and ``your("dat")`` give the others.
  Languages without a rule here keep the name unchanged.

Together: ``{{ items | map(attribute="name") | map("your") | and_list }}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from babel.lists import format_list
from jinja2 import pass_context
from jinja2.runtime import Context

from .formatting import babel_locale

__all__ = ["WORDING_FILTERS", "and_list", "german_gender", "your"]

# Endings of German nouns, longest first, and the gender they give (m, f, n). The common
# shop words first (appliances, electronics), then the regular endings.
_GERMAN_ENDINGS = (
    ("maschine", "f"), ("kombination", "f"), ("anlage", "f"), ("kamera", "f"),
    ("konsole", "f"), ("soundbar", "f"), ("box", "f"), ("uhr", "f"), ("waage", "f"),
    ("pumpe", "f"), ("heizung", "f"), ("mühle", "f"), ("küche", "f"), ("haube", "f"),
    ("gerät", "n"), ("book", "n"), ("telefon", "n"), ("handy", "n"), ("tablet", "n"),
    ("radio", "n"), ("kochfeld", "n"), ("system", "n"), ("set", "n"), ("bett", "n"),
    ("automat", "m"), ("herd", "m"), ("ofen", "m"), ("schrank", "m"), ("grill", "m"),
    ("föhn", "m"), ("monitor", "m"), ("beamer", "m"), ("kessel", "m"), ("mixer", "m"),
    ("ung", "f"), ("heit", "f"), ("keit", "f"), ("schaft", "f"), ("ion", "f"),
    ("tät", "f"), ("ik", "f"), ("er", "m"), ("e", "f"),
)  # fmt: skip
_GERMAN_YOUR = {
    "nom": {"m": "Ihr", "f": "Ihre", "n": "Ihr"},
    "acc": {"m": "Ihren", "f": "Ihre", "n": "Ihr"},
    "dat": {"m": "Ihrem", "f": "Ihrer", "n": "Ihrem"},
}


@lru_cache(maxsize=1024)
def german_gender(name: str) -> str | None:
    """``"m"``, ``"f"`` or ``"n"`` for a German product name, or None when unclear."""
    words = name.split()
    if not words or not words[0][:1].isupper():
        return None
    head = words[0].rsplit("-", 1)[-1].lower()
    if not head.isalpha():
        return None
    return next((gender for ending, gender in _GERMAN_ENDINGS if head.endswith(ending)), None)


def _language(context: Context) -> str:
    return babel_locale(str(context.get("locale") or "en")).language


@pass_context
def your(context: Context, name: Any, case: str = "acc") -> str:
    """``name`` with "your" in the context's language (see the module docstring)."""
    text = str(name)
    language = _language(context)
    if language == "en":
        return f"your {text}"
    if language == "de":
        gender = german_gender(text)
        forms = _GERMAN_YOUR.get(case)
        if forms is None:
            raise ValueError(f"your: case must be nom, acc or dat, not {case!r}")
        return f"{forms[gender]} {text}" if gender else text
    return text


@pass_context
def and_list(context: Context, values: Iterable[Any]) -> str:
    """``["a", "b", "c"]`` → ``a, b and c`` in the context's language."""
    parts = [str(v) for v in values]
    if len(parts) < 2:
        return "".join(parts)
    # Babel's pattern for two, with the rest joined by commas: no serial comma in English.
    head = ", ".join(parts[:-1])
    return format_list([head, parts[-1]], locale=babel_locale(str(context.get("locale") or "en")))


WORDING_FILTERS = {"and_list": and_list, "your": your}

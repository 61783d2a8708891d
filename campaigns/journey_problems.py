"""What is wrong with a journey file, said in a marketer's words and located by line.

Every problem is a :class:`JourneyProblem` (``file:line: error: where: what — hint``).
Schema errors from pydantic are translated here: an unknown field names the nearest known
one (``delay`` → "did you mean `wait`?"), a missing one says it is required, a choice
lists the allowed values. Expression errors get the hint their commonest cause needs
(``=`` where ``==`` was meant, a misspelt field of ``item`` or ``order``).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from templates.textfiles import read_text

__all__ = [
    "JourneyProblem",
    "condition_hint",
    "describe_schema_error",
    "without_echoes",
    "line_for",
    "line_index",
    "MAX_VALUES",
    "nearest",
    "too_many_values",
    "source_line",
]

# Words marketers reach for, and the field they mean.
SYNONYMS = {
    "delay": "wait",
    "after": "wait",
    "offset": "wait",
    "anchor": "from",
    "relative_to": "from",
    "when": "condition",
    "if": "condition",
    "filter": "condition",
    "template_name": "template",
    "type": "event",
    "events": "event",
    "name_": "name",
    "expires": "expires_after",
    "expiry": "expires_after",
    "window": "send_window",
    "hours": "send_window",
    # German attribute names for the columns a shop's customers.csv usually has
    "stadt": "city",
    "ort": "city",
    "plz": "postal_code",
    "postleitzahl": "postal_code",
    "geburtsjahr": "birth_year",
    "land": "country",
}


@dataclass(frozen=True)
class JourneyProblem:
    """One thing wrong with a journey file, located as precisely as we can."""

    file: str
    line: int | None
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level}: {self.message}"


def nearest(word: str, known: Iterable[str]) -> str | None:
    """The known name ``word`` most likely meant, or None."""
    known = list(known)
    synonym = SYNONYMS.get(word.lower())
    if synonym in known:
        return synonym
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None


# The values a journey document may hold with its aliases (``*name``) written out: the
# built-in ones hold about a hundred. Nine lines of aliases, each naming the one before
# nine times, hold 9**9: walked value by value, that never ends.
MAX_VALUES = 10_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def too_many_values(node: yaml.Node) -> bool:
    """Whether ``node`` holds more than :data:`MAX_VALUES` values, its aliases written out.

    Counted once per node (an alias is the node it names, shared), so the count itself
    takes as many steps as the document has nodes, however far they would expand; a node
    that holds an alias to itself never ends and is too many. Without recursion: libyaml
    nests up to a thousand levels, as deep as Python's own stack."""
    too_many = MAX_VALUES + 1
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, counted = stack.pop()
        if counted:  # its children are all counted (or in progress: an alias to itself)
            total = 1 + sum(sizes[id(child)] for child in _children(current))
            sizes[id(current)] = min(total, too_many)
        elif id(current) not in sizes:
            sizes[id(current)] = too_many  # until counted
            stack.append((current, True))
            stack.extend((child, False) for child in _children(current))
    return sizes[id(node)] > MAX_VALUES


def line_index(node: yaml.Node) -> dict[tuple[Any, ...], int]:
    """Map every key path in a YAML document to its 1-based line; a key given twice, to
    its last (as the loader takes it). Without recursion, as :func:`too_many_values`; call
    that first, as aliases repeat what they name."""
    lines: dict[tuple[Any, ...], int] = {}
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(node, ())]
    while stack:  # the last of a key given twice is taken first: its lines are kept
        current, path = stack.pop()
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                stack.append((value, (*path, key.value)))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((value, (*path, i)) for i, value in enumerate(current.value))
    return lines


def line_for(lines: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc``, or of the nearest enclosing key that has one."""
    loc = tuple("from" if part == "from_" else part for part in loc)
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc)


def source_line(path: str | Path, loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc`` (``("steps", 0, "variants", 1, "template")``) in a journey file."""
    try:
        node = yaml.compose(read_text(path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if node is None or too_many_values(node):
        return None
    return line_for(line_index(node), loc)


def _place(loc: Iterable[Any]) -> str:
    return ".".join("from" if p == "from_" else str(p) for p in loc) or "journey"


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the name written in YAML (its alias, where it has one)."""
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Step``, ``list[Step]``, ``Repeat | None`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType) or origin is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the value at ``loc`` (list indexes skipped)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        model = _model_in(_fields(model).get(str(part)))
    return model


def describe_schema_error(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    """One pydantic error as ``where: what — hint``."""
    loc = tuple(err["loc"])
    where = _place(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        holder = model_at(root, loc[:-1])
        known = sorted(_fields(holder)) if holder else []
        word = str(loc[-1])
        guess = nearest(word, known)
        hint = f"did you mean `{guess}`?" if guess else f"known fields here: {', '.join(known)}"
        return f"{where}: unknown field `{word}` — {hint}"
    if kind == "missing":
        return f"{where}: required, but missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        given = err.get("input")
        guess = nearest(str(given), re.findall(r"'([^']*)'", str(expected)))
        hint = f" — did you mean `{guess}`?" if guess else ""
        return f"{where}: {given!r} is not allowed; use {expected}{hint}"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
        pattern = err.get("ctx", {}).get("pattern", "")
        return (
            f"{where}: {err.get('input')!r} must be lower-case letters, digits and _, "
            f"like offer_email (pattern {pattern!r})"
        )
    message = str(err["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{where}: {message[:1].lower() + message[1:]}"


def without_echoes(errors: list[Any], root: type[BaseModel]) -> list[Any]:
    """The errors, less "missing" ones that a misspelt field beside them explains
    (``chanel:`` makes ``channel`` missing: one mistake, one message)."""
    meant = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            holder = model_at(root, tuple(err["loc"][:-1]))
            guess = nearest(str(err["loc"][-1]), _fields(holder)) if holder else None
            if guess:
                meant.add((*err["loc"][:-1], guess))
    return [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in meant)]


_SINGLE_EQUALS = re.compile(r"(?<![=!<>])=(?!=)")
_STRINGS = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_MISSING_ATTR = re.compile(r"'(?:dict object|\w+)' has no attribute '(\w+)'")


def condition_hint(source: str, message: str, known: Mapping[str, Iterable[str]]) -> str:
    """A plain account of why ``source`` failed (``message``) and how to fix it.

    ``known`` names the fields of each root (``item``, ``order``...) for suggestions.
    """
    bare = _STRINGS.sub('""', source)
    if _SINGLE_EQUALS.search(bare):
        fixed = _SINGLE_EQUALS.sub("==", source)
        return f"`=` sets a value; to compare, write `==`: {fixed}"
    missing = _MISSING_ATTR.search(message)
    if missing:
        field = missing.group(1)
        root = _root_of(source, field)
        names = list(known.get(root, ())) if root else []
        guess = nearest(field, names)
        hint = f" — did you mean `{root}.{guess}`?" if guess else ""
        listed = f" (it has: {', '.join(sorted(names))})" if names and not guess else ""
        return f"{root or 'it'} has no field `{field}`{hint}{listed}"
    if "is undefined" in message:
        name = message.split("'")[1] if "'" in message else ""
        guess = nearest(name, known)
        hint = f" — did you mean `{guess}`?" if guess else f"; known: {', '.join(sorted(known))}"
        return f"unknown name `{name}`{hint}"
    if "end of template" in message:
        return f"`{source.strip()}` ends too early: something must follow the last word"
    if "chunk after expression" in message or "expected token" in message:
        return f"the expression does not read as one condition ({message})"
    return message


def _root_of(source: str, field: str) -> str | None:
    match = re.search(rf"\b(\w+)\.{re.escape(field)}\b", source)
    return match.group(1) if match else None

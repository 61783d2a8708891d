"""The sandbox journey conditions run in: nothing changed, nothing huge, nothing slow.

A condition is a marketer's Jinja2 expression over a customer's data, evaluated for every
candidate enrolment and step. Jinja's *immutable* sandbox refuses anything that would
change that data (``customer.tags.append(…)``), and on top of it:

- ``a ** b`` is refused when the result would pass :data:`MAX_POWER_BITS` bits;
- repeating a string or list (``'x' * n``) and padding one (``ljust``, ``center``, …) is
  refused past :data:`MAX_SIZE` items;
- ``range`` stops at :data:`MAX_RANGE` numbers;
- an evaluation runs at most :data:`TIME_LIMIT` seconds: the deadline is checked at every
  operator, call, attribute and range step, and :class:`ConditionTimeout` ends it.

A refused or stopped condition fails like any broken condition: validation names it, and
at run time it excludes only the candidate it was evaluated for.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "CONDITION_ENV",
    "KNOWN_FIELDS",
    "ConditionEnvironment",
    "ConditionTimeout",
    "compile_condition",
    "condition_names",
    "customer_view",
    "evaluate",
    "previous_view",
    "run_limited",
    "sample_condition_context",
]

MAX_POWER_BITS = 1024
MAX_SIZE = 10_000
MAX_RANGE = 10_000
TIME_LIMIT = 1.0
_PADDING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs", "format", "format_map"})
_deadline = threading.local()


class ConditionTimeout(SecurityError):
    """A condition ran past its time limit."""


def _check_time() -> None:
    deadline = getattr(_deadline, "at", None)
    if deadline is not None and time.monotonic() >= deadline:
        raise ConditionTimeout(f"the condition ran longer than {TIME_LIMIT:g} s")


def run_limited(compiled: Any, context: Mapping[str, Any], *, seconds: float = TIME_LIMIT) -> Any:
    """Evaluate ``compiled`` over ``context``, stopped after ``seconds`` (or earlier, when
    it runs inside an evaluation with an earlier deadline)."""
    outer = getattr(_deadline, "at", None)
    own = time.monotonic() + seconds
    _deadline.at = own if outer is None else min(outer, own)
    try:
        return compiled(**context)
    finally:
        _deadline.at = outer


class _Range:
    """``range`` for conditions: bounded, and checking the deadline at every step."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise SecurityError(f"range() is limited to {MAX_RANGE} numbers in a condition")

    def __iter__(self) -> Iterator[int]:
        for number in self._range:
            _check_time()
            yield number

    def __len__(self) -> int:
        return len(self._range)

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __getitem__(self, index: int) -> int:
        return self._range[index]


def _sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


class ConditionEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounded arithmetic, sizes, ranges and time."""

    intercepted_binops = frozenset({"**", "*"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _Range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "**":
            _check_power(left, right)
            return left**right
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _sized(seq) and isinstance(times, int) and len(seq) * times > MAX_SIZE:
                    raise SecurityError(f"a condition may not build more than {MAX_SIZE} items")
            return left * right
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str | bytes) and attr in _PADDING:
            return False
        return super().is_safe_attribute(obj, attr, value)


def _check_power(base: Any, exponent: Any) -> None:
    ints = isinstance(base, int) and isinstance(exponent, int)
    if ints and exponent > 0 and exponent * abs(base).bit_length() > MAX_POWER_BITS:
        raise SecurityError(f"a power in a condition may not pass {MAX_POWER_BITS} bits")


# --------------------------------------------------- compiling and the names conditions see

CONDITION_ENV = ConditionEnvironment(undefined=StrictUndefined)
_env = CONDITION_ENV


_PATH = re.compile(r"^\s*([a-z_][a-z0-9_]*)((?:\.[a-z_][a-z0-9_]*)*)(?:\s+or\s+(\d+))?\s*$")


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> Any:
    """A callable evaluating the sandboxed Jinja2 expression ``source`` over a context.

    The commonest expressions (``item.warranty_months``, ``item.x or 90``) are plain
    look-ups: they get a direct path that behaves the same (unknown names still fail) and
    skips Jinja2's per-call context, which dominates planning time otherwise.
    """
    expression = _env.compile_expression(source, undefined_to_none=False)

    def compiled(**context: Any) -> Any:
        return run_limited(expression, context)

    match = _PATH.match(source)
    if match is None:
        return compiled
    root, rest, default = match.groups()
    attrs = rest.split(".")[1:]

    def lookup(**context: Any) -> Any:
        value = context.get(root, _MISSING)
        for attr in attrs:
            if not isinstance(value, dict) or attr not in value:
                return compiled(**context)  # let Jinja2 raise or resolve it its own way
            value = value[attr]
        if value is _MISSING:
            return compiled(**context)
        return (value or int(default)) if default is not None else value

    return lookup


_MISSING = object()


@lru_cache(maxsize=1024)
def condition_names(source: str) -> frozenset[str]:
    """The names ``source`` reads from its context (``previous``, ``customer``, …): a
    caller may build only those. A condition that does not parse reads everything."""
    try:
        parsed = _env.parse(f"{{{{ {source} }}}}")
    except TemplateSyntaxError:
        return frozenset({"*"})
    return frozenset(meta.find_undeclared_variables(parsed))


def evaluate(source: str | None, context: Mapping[str, Any]) -> bool:
    """Truth of a condition; no condition is true."""
    if not source:
        return True
    return bool(compile_condition(source)(**context))


def sample_value(now: datetime) -> dict[str, Any]:
    """What a customer is worth (campaigns.value), as a sample for validation."""
    from campaigns.value import Money

    return {
        "orders": 3,
        "revenue": Money("1249.00", "EUR"),
        "first_purchase_at": now - timedelta(days=400),
        "last_purchase_at": now - timedelta(days=20),
        "complaints": {"total": 1, "open": 0},
        "satisfaction": 4,
        "segment": "loyal",
    }


def sample_condition_context() -> dict[str, Any]:
    """Names a condition may use, with plausible values (the same shape the engine builds)."""
    now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    item = {
        "sku": "WM-1",
        "name": "Waschmaschine",
        "category": "appliance",
        "price": Decimal("499.00"),
        "quantity": 1,
        "warranty_months": 24,
        "inspection_interval_days": 90,
        "warranty_end": now + timedelta(days=730),
    }
    customer = {
        "id": "c1",
        "first_name": "Anna",
        "last_name": "Muster",
        "email": "anna@example.com",
        "phone": "+4915112345678",
        "locale": "de",
        "timezone": "Europe/Berlin",
        "email_consent": True,
        "sms_consent": True,
        "attributes": {"city": "Berlin", "postal_code": "10115", "birth_year": 1980},
        "city": "Berlin",
        "postal_code": "10115",
        "birth_year": 1980,
        "age": 46,
        "purchase_count": 1,
        **sample_value(now),
    }
    order = {
        "id": "o1",
        "total": Decimal("499.00"),
        "currency": "EUR",
        "purchased_at": now,
        "items": [item],
    }
    event = {"id": "e1", "type": "purchase", "at": now, "order": order}
    return {
        "customer": _Lenient(customer),
        "order": order,
        "item": item,
        "event": event,
        "now": now,
        "occurrence": 1,
        "purchases_since_enrollment": 0,
        "previous": previous_view("sent", now),
        "alerts": frozenset({"WM-9"}),
    }


def _known_fields() -> dict[str, tuple[str, ...]]:
    """The names a condition may use, and the fields of each (for suggestions)."""
    context = sample_condition_context()
    return {
        name: tuple(k for k in value if k != "attributes") if isinstance(value, dict) else ()
        for name, value in context.items()
    }


def previous_view(
    status: str | None, sent_at: datetime | None, reason: str | None = None
) -> dict[str, Any]:
    """The ``previous`` a step condition sees: how the previous step's message ended.

    ``status`` is the message's status (``sent``, ``delivered``, ``skipped``...), None when
    there is no previous message; ``sent_at`` when it went out, else None; ``reason`` why
    it was skipped or failed.
    """
    return {"status": status, "sent_at": sent_at, "reason": reason}


class _Lenient(dict):
    """Customer attributes are open-ended: an unknown attribute is None, not an error."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)


def customer_view(customer: Mapping[str, Any], attributes: Mapping[str, Any], today_year: int):
    """The ``customer`` a condition sees: fields, attributes flattened in, and ``age``."""
    view = _Lenient(attributes)
    view.update(customer)
    view["attributes"] = dict(attributes)
    birth_year = attributes.get("birth_year")
    try:
        view["age"] = today_year - int(birth_year) if birth_year not in (None, "") else None
    except (TypeError, ValueError):
        view["age"] = None
    return view


KNOWN_FIELDS = _known_fields()

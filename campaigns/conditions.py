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

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ConditionEnvironment", "ConditionTimeout", "run_limited"]

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

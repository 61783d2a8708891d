"""Journey conditions: an immutable sandbox with bounded arithmetic, sizes and time."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from campaigns.conditions import ConditionTimeout, condition_names, run_limited
from campaigns.journeys import compile_condition, evaluate

CONTEXT = {"customer": {"tags": ["vip"], "attributes": {"city": "Berlin"}}, "n": 3}


@pytest.mark.parametrize(
    "source",
    [
        "customer.tags.append('x')",  # the mutable sandbox allowed changing the context
        "customer.attributes.update(city='Hamburg')",
        "customer.tags.pop()",
        "2 ** 100000 > 0",
        "n ** 5000 > 0",
        "'x' * 10000000",
        "[0] * 10000000",
        "range(50000) | sum",
        "'x'.ljust(100000000)",
    ],
)
def test_refused(source: str) -> None:
    with pytest.raises((SecurityError, OverflowError)):
        evaluate(source, CONTEXT)
    assert CONTEXT["customer"]["tags"] == ["vip"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("2 ** 10 == 1024", True),
        ("'ab' * 3 == 'ababab'", True),
        ("range(10) | sum == 45", True),
        ("customer.attributes.city == 'Berlin'", True),
        ("n * 2 == 6", True),
        ("'vip' in customer.tags", True),
    ],
)
def test_ordinary_conditions_still_work(source: str, expected: bool) -> None:
    assert evaluate(source, CONTEXT) is expected


def test_an_evaluation_past_its_time_limit_is_stopped() -> None:
    compiled = compile_condition("range(5000) | map('string') | join | length > 0")
    assert run_limited(compiled, dict(CONTEXT), seconds=5.0)
    with pytest.raises(ConditionTimeout):
        run_limited(compiled, dict(CONTEXT), seconds=0.0)


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("previous.status in ['sent', 'delivered'] or previous.reason == 'bundled'", {"previous"}),
        ("customer.attributes.city == 'Berlin' and n > 2", {"customer", "n"}),
        ("range(10) | sum == 45", set()),
        ("'vip' in customer.tags", {"customer"}),
        ("n ==", {"*"}),  # does not parse: the caller builds everything
    ],
)
def test_the_names_a_condition_reads(source: str, names: set[str]) -> None:
    assert condition_names(source) == names


@pytest.mark.parametrize(
    "source",
    ["customer.attributes.city == 'Berlin' and n > 2", "range(3) | length == 3", "n * 2 == 6",
     "'vip' in customer.tags or missing"],
)  # fmt: skip
def test_a_condition_over_only_its_names_decides_as_over_everything(source: str) -> None:
    """What the dispatcher relies on to build only the context a condition reads."""
    names = condition_names(source)
    only = {k: v for k, v in CONTEXT.items() if k in names}
    assert evaluate(source, only) == evaluate(source, CONTEXT)

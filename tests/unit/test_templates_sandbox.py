"""The template sandbox gives every answer Jinja's immutable sandbox gives, errors included."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates.sandbox import TemplateSandbox


class Tagged(dict[str, str]):
    """A dict subclass with an attribute of its own: takes the sandbox's own path."""

    name = "from the class"


class Thing:
    """A plain object, as a caller could put into the context."""

    name = "thing"

    def __init__(self) -> None:
        self._secret = "hidden"


def context() -> dict[str, Any]:
    return {
        "d": {"name": "Anna", "items": [1, 2], "_private": "kept", "__class__": "a key"},
        "tagged": Tagged(name="from the item"),
        "thing": Thing(),
    }


def outcome(env_class: type[ImmutableSandboxedEnvironment], expression: str) -> tuple[str, str]:
    env = env_class(undefined=jinja2.StrictUndefined)
    try:
        return "ok", env.from_string("{{ " + expression + " }}").render(context())
    except jinja2.TemplateError as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize(
    "expression",
    [
        "d.name",
        "d['name']",
        "d.items is callable",  # the method wins over the key, as in Jinja
        "d['items'] | sum",
        "d.get('name')",
        "d.keys() | list",
        "d._private",
        "d.missing is defined",
        "d.missing",
        "d.__class__",
        "d.update({'x': 1})",
        "d.pop('name')",
        "tagged.name",
        "tagged['name']",
        "thing.name",
        "thing._secret",
        "thing.__class__",
        "''.__class__.__mro__",
    ],
)
def test_same_outcome_as_jinja_sandbox(expression: str) -> None:
    assert outcome(TemplateSandbox, expression) == outcome(
        ImmutableSandboxedEnvironment, expression
    )


def test_template_globals_overlay_the_environment_globals() -> None:
    env = TemplateSandbox()
    env.globals["greeting"] = "Hallo"
    template = env.from_string("{{ greeting }} {{ shop }}", globals={"shop": "Fachhandel"})
    assert template.render() == "Hallo Fachhandel"
    assert "shop" not in env.globals

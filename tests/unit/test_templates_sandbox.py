"""The template sandbox gives every answer Jinja's immutable sandbox gives, errors included."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from templates.sandbox import TemplateSandbox


class Tagged(dict[str, str]):
    """A dict subclass with an attribute of its own: takes the sandbox's own path."""

    name = "from the class"


class Lenient(dict[str, Any]):
    """A dict subclass adding only a ``__getattr__``, as customer views do: takes the
    shortcut for names that are not dict's."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)


class Strict(dict[str, Any]):
    """A dict subclass whose ``__getattr__`` refuses: the sandbox falls back to the item."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


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
        "lenient": Lenient(name="Anna", fmt="{0.__class__}".format, loop=[1, 2]),
        "strict": Strict(name="Anna"),
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
        "lenient.name",
        "lenient.missing",
        "lenient.missing is none",
        "lenient._private",
        "lenient.__class__",
        "lenient.update({'x': 1})",
        "lenient.items() | list",
        "lenient.loop | sum",
        "lenient.fmt(lenient)",
        "lenient['name']",
        "strict.name",
        "strict.missing",
        "strict.__class__",
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


def test_same_outcome_on_a_second_render() -> None:
    """Safety answers are remembered per type and name: the second render of each
    expression answers as the first did, and as Jinja's sandbox does."""
    env = TemplateSandbox(undefined=jinja2.StrictUndefined)
    jinja = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    source = (
        "{{ lenient.name }} {{ thing.name }} {{ d.keys() | list }} {{ thing._secret is defined }}"
    )
    for _ in range(2):
        assert env.from_string(source).render(context()) == jinja.from_string(source).render(
            context()
        )
    with pytest.raises(SecurityError):
        env.from_string("{{ d.pop('name') }}").render(context())


def test_an_imported_module_read_by_key() -> None:
    """``strings[lang]`` on an imported template, as the built-in layouts read their
    wording: the same answer as Jinja's sandbox, and a missing key undefined."""
    loader = jinja2.DictLoader(
        {
            "strings.j2": "{% set de = {'hello': 'Hallo'} %}{% set en = {'hello': 'Hello'} %}",
            "page.j2": "{% import 'strings.j2' as s %}{{ s[lang].hello }}"
            "{{ s['xx'] is defined }}{{ s['_body_stream'] is defined }}",
        }
    )
    ours = TemplateSandbox(loader=loader).get_template("page.j2").render(lang="de")
    theirs = ImmutableSandboxedEnvironment(loader=loader).get_template("page.j2").render(lang="de")
    assert ours == theirs == "HalloFalseFalse"

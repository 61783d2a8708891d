"""The Jinja2 sandbox templates run in, with two shortcuts that change no answer.

- Jinja looks ``customer.first_name`` up as an attribute first and as an item
  second. A template context is mostly plain dicts, so nearly every lookup
  raised and caught an ``AttributeError`` before reaching the item.
- Each template's globals are a ``ChainMap`` over the environment's; every
  render copies them, and every ``{% import %}`` compares their keys, through
  ``ChainMap``'s Python-level methods. Ours are a plain dict instead: globals
  are set once, before the first template loads (as Jinja asks).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["TemplateSandbox"]

# Everything ``getattr(a_dict, name)`` can find; any other name raises AttributeError.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, answering ``some_dict.key`` without the failed attribute."""

    def getattr(self, obj: Any, attribute: str) -> Any | Undefined:
        """``obj.attribute`` as the sandbox answers it, item first for a plain dict.

        For an exact ``dict`` and a name that is no attribute of ``dict`` the
        attribute lookup can only fail, and the sandbox then returns the item
        unchecked; so the answer is the same. Everything else (dict methods,
        dunder names, subclasses, missing keys, other objects) takes the
        sandbox's own path with all its checks.
        """
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals over the environment's, merged into one dict."""
        return {**self.globals, **(d or {})}

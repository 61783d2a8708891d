"""The Jinja2 sandbox templates run in, with shortcuts that change no answer.

- Jinja looks ``customer.first_name`` up as an attribute first and as an item
  second. A template context is mostly plain dicts, so nearly every lookup
  raised and caught an ``AttributeError`` before reaching the item.
- A dict subclass that adds only dunder methods (a ``__getattr__`` answering
  ``customer.anything`` with the item or None) can answer a name that is no
  attribute of ``dict`` only through that ``__getattr__``; the sandbox's checks
  of such a name always pass on a dict, so the answer is taken without them.
- The sandbox's safety check of an attribute looks at the object's type and the
  name only; its answer is remembered per (type, name).
- Each template's globals are a ``ChainMap`` over the environment's; every
  render copies them, and every ``{% import %}`` compares their keys, through
  ``ChainMap``'s Python-level methods. Ours are a plain dict instead: globals
  are set once, before the first template loads (as Jinja asks).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from functools import cache
from typing import Any

from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["TemplateSandbox"]

# Everything ``getattr(a_dict, name)`` can find; any other name raises AttributeError.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Answers of is_safe_attribute kept at most; past it they are forgotten and found again.
_SAFE_KEPT = 4096


@cache
def _adds_only_dunders(cls: type) -> bool:
    """Whether ``cls`` is a dict subclass whose classes above ``dict`` define nothing but
    dunder names (``__getattr__``, ``__module__``, ``__doc__``…)."""
    if not issubclass(cls, dict):
        return False
    own = cls.__mro__[: cls.__mro__.index(dict)]
    return all(name.startswith("__") for klass in own for name in vars(klass))


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, answering ``some_dict.key`` without the failed attribute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, str], bool] = {}

    def getattr(self, obj: Any, attribute: str) -> Any | Undefined:
        """``obj.attribute`` as the sandbox answers it, shorter for dicts.

        For an exact ``dict`` and a name that is no attribute of ``dict`` the
        attribute lookup can only fail, and the sandbox then returns the item
        unchecked; so the answer is the same. For a dict subclass adding only
        dunder methods, a name that is no attribute of ``dict`` and does not start
        with "_" is answered by its ``__getattr__`` or not at all, and the sandbox
        finds such a name safe on any dict (its checks are of the name and of the
        object's type). Everything else (dict methods, underscore names, other
        subclasses, missing keys, other objects) takes the sandbox's own path with
        all its checks.
        """
        cls = type(obj)
        if cls is dict:
            if attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    pass
        elif attribute[:1] != "_" and attribute not in _DICT_ATTRIBUTES and _adds_only_dunders(cls):
            try:
                value = getattr(obj, attribute)
            except AttributeError:
                pass
            else:  # a str.format found there is wrapped, as the sandbox does
                return self.wrap_str_format(value) or value
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """The sandbox's answer, remembered: it depends on ``type(obj)`` and ``attr``
        only (Jinja's checks do not look at the value)."""
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            if len(self._safe) >= _SAFE_KEPT:
                self._safe.clear()
            safe = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals over the environment's, merged into one dict."""
        return {**self.globals, **(d or {})}

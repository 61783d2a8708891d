"""The errors the application shell raises.

::

    AftersaleError
     ├── ConfigurationError   a setting is missing or wrong: never swallowed
     └── InputError           a file the user gave us is wrong (names file, line, field)
"""

from __future__ import annotations


class AftersaleError(Exception):
    """Root of aftersale's own errors."""


class ConfigurationError(AftersaleError):
    """A setting is missing or invalid."""


class InputError(AftersaleError):
    """A file given to aftersale cannot be used as it is."""

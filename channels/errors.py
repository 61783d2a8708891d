"""Errors that are not about delivering one message.

:class:`ConfigurationError` is deliberately not a :class:`~channels.base.ChannelError`:
code that catches channel errors to retry or skip a message must never swallow a
missing API key.
"""

from __future__ import annotations


class ConfigurationError(Exception):
    """A channel cannot be built because a setting is missing or invalid."""

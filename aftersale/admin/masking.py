"""Partial masking of contact data for viewers: ``a***@example.com``, ``+49151*****678``.

Named fields (a customer's e-mail, phone, names) are masked by :func:`mask_email` and
friends; everything else a viewer sees (ids, reasons, details, history) passes through
:func:`mask_addresses`, which finds addresses inside any text.
"""

from __future__ import annotations

import re
from typing import Any


def mask_email(address: str | None) -> str | None:
    """Keep the first character of the local part and the whole domain."""
    if not address:
        return address
    local, at, domain = address.partition("@")
    if not at:
        return mask_text(address)
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str | None) -> str | None:
    """Keep the country and network prefix (six characters) and the last three digits."""
    if not number:
        return number
    if len(number) <= 9:
        return number[:2] + "*" * (len(number) - 2)
    return number[:6] + "*" * (len(number) - 9) + number[-3:]


def mask_text(value: str | None) -> str | None:
    """Mask anything else that identifies a person (a name): first character only."""
    if not value:
        return value
    return value[:1] + "***"


# An address anywhere in free text (a bounce reason, a legacy guest id, an event's data).
# Tried only where a run of address characters begins (any match inside a run also starts
# at its beginning): tried at every character, a long run cost the square of its length,
# and an event's data may hold a string of a megabyte.
_EMAIL_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9._%+'-])[A-Za-z0-9._%+'-]*[A-Za-z0-9_%+'-]@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
_PHONE_IN_TEXT = re.compile(r"\+\d{7,15}\b")


def mask_addresses(text: str) -> str:
    """``text`` with every e-mail address and international phone number in it masked."""
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group()) or "", text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()) or "", text)


def masked(data: Any) -> Any:
    """JSON-like ``data`` with addresses masked in every string, keys included."""
    if isinstance(data, str):
        return mask_addresses(data)
    if isinstance(data, dict):
        return {masked(k): masked(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [masked(v) for v in data]
    return data

"""Partial masking of contact data for viewers: ``a***@example.com``, ``+49151*****678``."""

from __future__ import annotations


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

"""The shop's legal data: what every message says about its sender, filled in before going live.

E-mail to customers must name who sends it: the shop's name, postal address and imprint
(company, register court and number, managing directors, VAT id) stand in every footer.
``aftersale init`` writes these settings as placeholders that say ``FILL IN``, and a project
without them falls back to the built-in sample shop ("Elektro Sommer", HRB 000000) so that
previews and simulations look like a real shop. Neither may reach a customer:
:func:`unfinished_settings` names every setting that still holds a placeholder, an address
under the reserved ``.example`` domain or the sample shop's data, and ``run``, ``serve`` and
``simulate`` refuse a real provider (SendGrid, SMTP, Twilio) until it returns nothing.
The outbox and memory providers keep working with any of them, as the demo does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aftersale.settings import Settings

__all__ = ["PLACEHOLDER", "SAMPLE_SHOP", "Unfinished", "unfinished_settings"]

PLACEHOLDER = "FILL IN"

# The built-in sample shop, as the demo writes it and the settings default to.
SAMPLE_SHOP = {
    "name": "Elektro Sommer",
    "url": "https://elektro-sommer.example",
    "support_email": "service@elektro-sommer.example",
    "support_phone": "+49 30 1234567",
    "address": "Elektro Sommer GmbH · Hauptstraße 12 · 10115 Berlin",
    "imprint": "Elektro Sommer GmbH, Amtsgericht Berlin HRB 000000, Geschäftsführung: A. Sommer",
}
_SAMPLE_MARKS = (
    "elektro sommer",
    "elektro-sommer",
    "hrb 000000",
    "+49 30 1234567",
    "hauptstraße 12",
)
# Domains reserved for examples (RFC 2606): mail to them reaches no one.
_EXAMPLE_DOMAIN = re.compile(
    r"(?:[\w-]\.example|(?:^|[@/.\s<])example\.(?:com|org|net))(?![\w.-])", re.IGNORECASE
)

# What a customer reads about the sender; the e-mail and SMS ones only when that channel
# goes out through a real provider.
SHOP_SETTINGS = (
    "shop_name",
    "shop_address",
    "shop_imprint",
    "shop_url",
    "shop_support_email",
    "shop_support_phone",
)
EMAIL_SETTINGS = ("email_from", "email_reply_to")
SMS_SETTINGS = ("sms_help_text",)
REAL_EMAIL = {"sendgrid", "smtp"}
REAL_SMS = {"twilio"}


@dataclass(frozen=True)
class Unfinished:
    """One setting that still holds a placeholder or the sample shop's data."""

    setting: str
    why: str

    def __str__(self) -> str:
        table, key = self.setting.split("_", 1)
        return f"[{table}] {key}: {self.why} (or AFTERSALE_{self.setting.upper()})"


def problem(value: str | None) -> str | None:
    """Why ``value`` cannot go to a customer as the sender's data, or None when it can."""
    if not value:
        return None
    lowered = value.lower()
    if PLACEHOLDER.lower() in lowered or "fill-in" in lowered:
        return "still a placeholder"
    if any(mark in lowered for mark in _SAMPLE_MARKS):
        return "the sample shop's data"
    if _EXAMPLE_DOMAIN.search(value):
        return "an example address (reserved, reaches no one)"
    return None


def unfinished_settings(settings: Settings) -> list[Unfinished]:
    """The sender settings a real provider would carry to customers unfinished."""
    names = list(SHOP_SETTINGS)
    if settings.email_provider in REAL_EMAIL:
        names += EMAIL_SETTINGS
    if settings.sms_provider in REAL_SMS:
        names += SMS_SETTINGS
    found = []
    for name in names:
        why = problem(getattr(settings, name))
        if why:
            found.append(Unfinished(name, why))
    return found

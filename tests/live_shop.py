"""A shop with its own legal data, as a project must have before a real provider sends.

``run``, ``serve`` and ``simulate`` refuse SendGrid, SMTP and Twilio while the sender's
data is a placeholder or the sample shop's (``aftersale.legal``); tests that drive them
against the fake provider servers use this shop.
"""

from __future__ import annotations

LIVE_SHOP = {
    "shop_name": "Küchenwelt Berger",
    "shop_url": "https://kuechenwelt-berger.de",
    "shop_support_email": "service@kuechenwelt-berger.de",
    "shop_support_phone": "+49 89 5550190",
    "shop_address": "Küchenwelt Berger GmbH · Lindwurmstraße 40 · 80337 München",
    "shop_imprint": "Küchenwelt Berger GmbH, Amtsgericht München HRB 219876, "
    "Geschäftsführung: M. Berger, USt-IdNr. DE298765432",
    "email_from": "Küchenwelt Berger <service@kuechenwelt-berger.de>",
    "sms_help_text": "Küchenwelt Berger: +49 89 5550190. Abmelden mit STOP.",
}


def live_shop_env() -> dict[str, str]:
    """The shop's data as ``AFTERSALE_*`` environment variables."""
    return {f"AFTERSALE_{key.upper()}": value for key, value in LIVE_SHOP.items()}

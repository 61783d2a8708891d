"""A realistic, deterministic sample context for previews and validation."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .coupons import coupon_code
from .formatting import language_of, normalise_locale

__all__ = ["sample_context"]

_PEOPLE = {
    "de": ("Anna", "Schmidt", "Europe/Berlin", "Berlin"),
    "en": ("Emma", "Taylor", "Europe/London", "London"),
}
_ITEMS = {
    "de": ("Waschmaschine EcoWash 8", "Kalkschutz-Tabs (40 Stück)", "Geschirrspüler CleanLine 6"),
    "en": ("EcoWash 8 washing machine", "Limescale tablets (40 pack)", "CleanLine 6 dishwasher"),
}


def sample_context(locale: str = "de", *, bundle: bool = False) -> dict[str, Any]:
    """Customer, order, item, journey, step, links, offer and ``now`` as a shop would send them.

    German-speaking locales get a German sample customer, every other locale an
    English one; the customer's ``locale`` is the one asked for. Always the same
    values, so previews and validation are reproducible. ``bundle`` makes it the context
    of a bundled message: the order has a dishwasher too, and ``items`` names both.
    """
    norm = normalise_locale(locale) or "de"
    lang = "de" if language_of(norm) == "de" else "en"
    first, last, tz, city = _PEOPLE[lang]
    zone = ZoneInfo(tz)
    purchased = datetime(2026, 1, 5, 10, 0, tzinfo=zone)
    machine_name, tabs_name, dishwasher_name = _ITEMS[lang]
    machine = {
        "sku": "WM-1",
        "name": machine_name,
        "category": "appliance",
        "price": Decimal("499.00"),
        "quantity": 1,
        "warranty_months": 24,
        "inspection_interval_days": 90,
        "warranty_end": datetime(2028, 1, 5, 10, 0, tzinfo=zone),
    }
    tabs = {
        "sku": "AC-7",
        "name": tabs_name,
        "category": "accessory",
        "price": Decimal("12.99"),
        "quantity": 2,
        "warranty_months": None,
        "inspection_interval_days": None,
        "warranty_end": None,
    }
    dishwasher = {
        **machine,
        "sku": "GS-6",
        "name": dishwasher_name,
        "price": Decimal("479.00"),
        "warranty_months": 24,
    }
    items = [machine, dishwasher] if bundle else [machine]
    return {
        "customer": {
            "id": "c1",
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}@example.com",
            "phone": "+4915112345678",
            "locale": norm.replace("_", "-"),
            "timezone": tz,
            "attributes": {"city": city, "birth_year": 1984},
            # What the customer is worth, as the dispatcher adds it (campaigns.value).
            "orders": 3,
            "revenue": Decimal("1249.00"),
            "first_purchase_at": purchased - timedelta(days=400),
            "last_purchase_at": purchased,
            "complaints": {"total": 1, "open": 0},
            "satisfaction": 4,
            "segment": "loyal",
        },
        "order": {
            "id": "o1",
            "total": Decimal("1003.98") if bundle else Decimal("524.98"),
            "currency": "EUR",
            "purchased_at": purchased,
            "items": [*items, tabs],
        },
        "item": machine,
        "items": items,
        "journey": {"id": "inspection", "name": "Free inspection"},
        "step": {"id": "invite", "occurrence": 2},
        "links": {
            "unsubscribe": "https://shop.example/u/sample-token",
            "preferences": "https://shop.example/p/sample-token",
            "short": "https://shop.example/l/2n9c.i2Qvd0c",  # an SMS's first link (templates.links)
            "rate": {n: f"https://shop.example/rate/2n9c.sample/{n}" for n in range(1, 6)},
        },
        "offer": {
            "coupon_code": coupon_code("sample-secret", "c1:loyalty:o1"),
            "bonus_points": 500,
            "discount_percent": 10,
        },
        "now": purchased + timedelta(days=180),
    }

"""A shop with steady complaints, one SKU whose complaints triple in the last month, and a
customer who rated a complaint's handling 1: what the alerts page and its tests read."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from tests.conftest import Harness, item, purchase, utc

NOW = utc("2026-07-01T00:00:00")
SKUS = ("WM-1", "TR-2", "GS-3", "KM-4")
SPIKED = "KM-4"


def spike_events(seed: int = 1, *, per_day: int = 12) -> list[dict[str, Any]]:
    """Orders every day for 210 days; 2 % draw a complaint, the spiked SKU's 6 % in the
    last 30 days."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    start = NOW - timedelta(days=210)
    for day in range(210):
        for n in range(per_day):
            sku = SKUS[n % len(SKUS)]
            at = start + timedelta(days=day, hours=9 + n)
            cid = f"s{rng.randrange(40)}"
            order = f"o{day}-{n}"
            events.append(purchase(f"p{day}-{n}", cid, at.isoformat(), order,
                                   item(sku, category="appliance")))  # fmt: skip
            recent = NOW - at < timedelta(days=30)
            if rng.random() < (0.06 if sku == SPIKED and recent else 0.02) * 4:
                opened = at + timedelta(hours=2)
                events.append({"id": f"k{day}-{n}", "type": "complaint_opened", "customer": cid,
                               "at": opened.isoformat(), "order": order, "sku": sku,
                               "reason": "noisy"})  # fmt: skip
    return events


def seed_listening(h: Harness) -> None:
    """Customers s0–s39, the orders and complaints above, and s0's rating of 1."""
    h.customers([{"id": f"s{n}", "email": f"s{n}@example.com", "first_name": f"Kim{n}",
                  "last_name": "Test"} for n in range(40)])  # fmt: skip
    rating = {"id": "rate-s0", "type": "satisfaction_rated", "customer": "s0",
              "at": (NOW - timedelta(days=2)).isoformat(), "value": 1}  # fmt: skip
    assert h.events([*spike_events(), rating]).ok
    h.simulate(NOW, start=NOW - timedelta(days=211))

"""The demo's customer with two appliances in one order hears about them once a moment."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

from rich.console import Console

from aftersale.cli import write_project
from aftersale.demo import generate_shop, print_summary
from tests.conftest import Harness

REACHED = ("sent", "delivered", "bounced", "unknown")


def _two_appliances(events: list[dict], consenting: set[str]) -> str:
    """The first customer of the demo with e-mail consent and an order of two appliances
    that each get inspections: the customer who would get twin invitations."""
    for e in events:
        items = e.get("order", {}).get("items", []) if e["type"] == "purchase" else []
        inspected = [i for i in items if i.get("inspection_interval_days")]
        if len(inspected) >= 2 and e["customer"] in consenting:
            return e["customer"]
    raise AssertionError("the demo has no customer with two appliances in one order")


def test_the_demo_customer_with_two_appliances_gets_no_twin_messages(make_harness, tmp_path):
    # The shop and the settings of `aftersale demo`.
    shop = generate_shop(tmp_path, customers=500, months=12, seed=7)
    write_project(tmp_path / "demo")
    h: Harness = make_harness(toml=(tmp_path / "demo" / "aftersale.toml").read_text())
    with shop.customers.open(encoding="utf-8") as handle:
        people = {row["id"]: row for row in csv.DictReader(handle)}
    events = [json.loads(line) for line in shop.events.read_text(encoding="utf-8").splitlines()]
    who = _two_appliances(events, {c for c, row in people.items() if row["email_consent"] == "yes"})
    mine = [e for e in events if e["customer"] == who]
    assert h.customers([people[who]]).ok and h.events(mine).ok
    h.simulate(shop.until, start=shop.start)

    sent = [m for m in h.messages(customer_id=who) if m.status in REACHED]
    moments: dict[tuple[str, str], list] = {}
    for m in sent:
        moments.setdefault((m.journey_id, m.step), []).append(m.sent_at)
    for (journey, step), times in moments.items():
        times.sort()
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(gap > timedelta(hours=24) for gap in gaps), (journey, step, times)
    bundled = [m for m in h.messages(customer_id=who) if m.reason == "bundled"]
    assert bundled  # its invitations went out as one
    assert {m.bundled_into for m in bundled} <= {m.id for m in sent}

    console = Console(record=True, width=200)
    print_summary(console, h.project)
    assert f"bundled: {len(bundled)} per-item messages went out inside" in console.export_text()
    h.project.close()

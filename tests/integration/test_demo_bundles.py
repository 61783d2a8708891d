"""The demo's customer with two appliances in one order hears about them once a moment."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from aftersale.cli import write_project
from aftersale.demo import generate_shop, print_summary
from tests.conftest import Harness

REACHED = ("sent", "delivered", "bounced", "unknown")


def test_demo_customer_c0441_gets_no_twin_messages(make_harness, tmp_path: Path):
    # The shop and the settings of `aftersale demo`.
    shop = generate_shop(tmp_path, customers=500, months=12, seed=7)
    write_project(tmp_path / "demo")
    h: Harness = make_harness(toml=(tmp_path / "demo" / "aftersale.toml").read_text())
    with shop.customers.open(encoding="utf-8") as handle:
        [person] = [row for row in csv.DictReader(handle) if row["id"] == "c0441"]
    events = [json.loads(line) for line in shop.events.read_text(encoding="utf-8").splitlines()]
    mine = [e for e in events if e["customer"] == "c0441"]
    assert any(len(e["order"]["items"]) == 2 for e in mine if e["type"] == "purchase")
    assert h.customers([person]).ok and h.events(mine).ok
    h.simulate(shop.until, start=shop.start)

    sent = [m for m in h.messages(customer_id="c0441") if m.status in REACHED]
    moments: dict[tuple[str, str], list] = {}
    for m in sent:
        moments.setdefault((m.journey_id, m.step), []).append(m.sent_at)
    for (journey, step), times in moments.items():
        times.sort()
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(gap > timedelta(hours=24) for gap in gaps), (journey, step, times)
    bundled = [m for m in h.messages(customer_id="c0441") if m.reason == "bundled"]
    assert len(bundled) >= 3  # every invitation of the year, and their reminders
    assert {m.bundled_into for m in bundled} <= {m.id for m in sent}

    console = Console(record=True, width=200)
    print_summary(console, h.project)
    assert f"bundled: {len(bundled)} per-item messages went out inside" in console.export_text()
    h.project.close()

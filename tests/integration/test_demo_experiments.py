"""The demo's experiments: holdouts on the loyalty and warranty offers and a subject test."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from aftersale.app import Project
from aftersale.cli import write_project
from aftersale.demo import add_experiments, generate_shop, print_experiments


def test_the_demo_project_holds_out_a_tenth_and_tests_two_subject_lines(tmp_path: Path):
    write_project(tmp_path)
    add_experiments(tmp_path)
    project = Project.open(tmp_path)
    try:
        loaded, problems = project.load_journeys()
        assert problems == []
        journeys = {item.journey.id: item.journey for item in loaded}
        loyalty, warranty = journeys["loyalty_offer"], journeys["extended_warranty"]
        assert loyalty.holdout_share == warranty.holdout_share == 0.1
        assert [v.id for v in loyalty.step("offer").variants] == ["thanks", "coupon"]
        assert warranty.goal_event == "warranty_extended" and loyalty.goal_event == "purchase"
        assert project.settings.stats_margin == 0.25
        console = Console(record=True, width=200)
        print_experiments(console, project, tmp_path)  # before anything ran: no groups yet
        assert f"aftersale -p {tmp_path} stats --journey loyalty_offer" in console.export_text()
    finally:
        project.close()


def test_the_demo_shop_plants_an_effect_for_the_report_to_find(tmp_path: Path):
    def held_out(journey: str, customer: str) -> bool:
        return int(customer[1:]) % 2 == 0  # half, to see the effect in a small shop

    for name in ("plain", "planted"):
        (tmp_path / name).mkdir()
    plain = generate_shop(tmp_path / "plain", customers=400, months=12, seed=7)
    planted = generate_shop(tmp_path / "planted", customers=400, months=12, seed=7,
                            held_out=held_out)  # fmt: skip
    before = [json.loads(line) for line in plain.events.read_text().splitlines()]
    after = [json.loads(line) for line in planted.events.read_text().splitlines()]
    again = [e for e in after if e["id"].endswith("-again")]
    treated = sum(not held_out("loyalty_offer", e["customer"]) for e in again)
    assert treated > 1.5 * (len(again) - treated)  # 9 in 100 against 4 in 100
    extended = [e for e in after if e["type"] == "warranty_extended"]
    assert all(e["value"] == "79.00" for e in extended)
    assert len(extended) < sum(e["type"] == "warranty_extended" for e in before)
    # Everything else is the shop it always was.
    assert [e for e in after if e not in again and e["type"] != "warranty_extended"] == [
        e for e in before if e["type"] != "warranty_extended"
    ]

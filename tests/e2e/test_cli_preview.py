"""`preview` for a customer's own order and item, and a word wherever sample data stands in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli import app
from tests.e2e.test_cli_send_test import EBIKE, LAMP

CUSTOMERS = (
    "id,email,first_name,locale,email_consent\n"
    "c7,jonas@example.org,Jonas,de,yes\nc8,mia@example.org,Mia,en,yes\n"
)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """Jonas bought an e-bike and a lamp; Mia bought nothing."""
    directory = tmp_path / "shop"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(directory)]).exit_code == 0
    (directory / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    order = {"id": "o7", "total": "2538.00", "currency": "EUR", "items": [EBIKE, LAMP]}
    event = {"id": "e7", "type": "purchase", "customer": "c7", "at": "2026-03-02T10:00:00+01:00",
             "order": order}  # fmt: skip
    (directory / "events.jsonl").write_text(json.dumps(event) + "\n", encoding="utf-8")
    for args in (["import", "customers", str(directory / "customers.csv")],
                 ["import", "events", str(directory / "events.jsonl")]):  # fmt: skip
        assert runner.invoke(app, ["-p", str(directory), *args]).exit_code == 0
    return directory


def preview(directory: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["-p", str(directory), "preview", *args], env={"COLUMNS": "200"})
    return done.exit_code, done.output


def simulate(directory: Path) -> None:
    done = CliRunner().invoke(app, ["-p", str(directory), "simulate", "--until", "2026-03-02"])
    assert done.exit_code == 0, done.output


def test_an_unapplied_purchase_shows_the_sample_and_says_why(shop: Path) -> None:
    code, output = preview(shop, "warranty_offer", "--customer", "c7")
    assert code == 0, output
    assert "Waschmaschine" in output  # the sample …
    assert "sample data: customer c7 has no order yet (1 imported purchase(s) not applied" in output
    assert "simulate" in output


def test_the_customers_own_item_and_order(shop: Path) -> None:
    simulate(shop)
    code, output = preview(shop, "warranty_offer", "--customer", "c7", "--item", "EB-9")
    assert code == 0, output
    assert "E-Bike Trekking 9" in output and "Waschmaschine" not in output
    assert "sample data" not in output
    code, output = preview(shop, "thank_you", "--order", "o7", "--item", "LA-1")
    assert code == 0 and "Fahrradlampe" in output and "sample data" not in output
    code, output = preview(shop, "warranty_offer", "--order", "o7")
    assert (
        "sample data: order o7: showing its first item (EB-9); --item picks another (LA-1)"
        in output
    )


def test_a_customer_without_orders_and_a_project_without_customers(
    shop: Path, tmp_path: Path
) -> None:
    code, output = preview(shop, "loyalty_offer", "--customer", "c8")
    assert code == 0 and "sample data: customer c8 has no order yet: showing the sample" in output
    empty = tmp_path / "empty"
    assert CliRunner().invoke(app, ["init", str(empty)]).exit_code == 0
    code, output = preview(empty, "loyalty_offer")
    assert code == 0 and "sample data: no customers imported" in output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--order", "o9"], "--order 'o9': no such order"),
        (["--customer", "c8", "--order", "o7"], "--order 'o7' is not an order of customer 'c8'"),
        (
            ["--customer", "c7", "--item", "XX"],
            "--item 'XX': order o7 has no such item (it has EB-9, LA-1)",
        ),
        (["--customer", "c8", "--item", "XX"], "--item 'XX': the customer has no order"),
        (["--customer", "nobody"], "--customer 'nobody': no such customer"),
    ],
)
def test_unknown_orders_items_and_customers_are_one_line(shop: Path, args, says: str) -> None:
    simulate(shop)
    code, output = preview(shop, "loyalty_offer", *args)
    assert code == 2 and says in output and "Traceback" not in output


def test_validate_warns_about_a_missing_text_part_and_passes(tmp_path: Path) -> None:
    directory = tmp_path / "shop"
    assert CliRunner().invoke(app, ["init", str(directory)]).exit_code == 0
    html = ('{% extends "_layout.email.html.j2" %}{% block subject %}Hallo{% endblock %}'
            "{% block content %}<p>{{ greeting }},</p><p>schön, dass Sie da sind.</p>{% endblock %}")  # fmt: skip
    for locale in ("de", "en"):
        (directory / "templates" / f"welcome.email.{locale}.html.j2").write_text(
            html, encoding="utf-8"
        )
    (directory / "journeys" / "welcome.yaml").write_text(
        "id: welcome\ntopic: service\ntrigger:\n  event: purchase\nsteps:\n  - id: hello\n"
        "    wait: 1h\n    send: {channel: email, template: welcome, category: transactional}\n",
        encoding="utf-8",
    )
    done = CliRunner().invoke(app, ["-p", str(directory), "journeys", "validate"],
                              env={"COLUMNS": "250"})  # fmt: skip
    assert done.exit_code == 0, done.output
    lines = [line for line in done.output.splitlines() if "no text part" in line]
    assert len(lines) == 2 and "write welcome.email.de.txt.j2" in lines[0]
    assert "thank_you" not in " ".join(lines)  # the built-ins all have their text parts

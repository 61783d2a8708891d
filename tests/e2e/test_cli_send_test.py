"""`send-test` through the real clients against the fake SendGrid, Twilio and SMTP servers:
one message to the shop's own address, marked [TEST], nothing in the send log or caps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from aftersale.app import Project
from aftersale.cli import app
from aftersale.providers import FakeProviders
from campaigns.models import Message, MessageDecision
from channels.fakes import FakeSMTP
from tests.live_shop import live_shop_env

EBIKE = {"sku": "EB-9", "name": "E-Bike Trekking 9", "category": "bike", "price": "2499.00",
         "quantity": 1, "warranty_months": 24, "inspection_interval_days": 180}  # fmt: skip
LAMP = {"sku": "LA-1", "name": "Fahrradlampe", "category": "accessory", "price": "39.00",
        "quantity": 1}  # fmt: skip


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as running:
        yield running


@pytest.fixture
def shop(tmp_path: Path, fakes: FakeProviders) -> tuple[Path, dict[str, str]]:
    """Jonas bought an e-bike and a lamp; his purchase is applied (the log holds its thanks)."""
    directory = tmp_path / "shop"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(directory)]).exit_code == 0
    (directory / "customers.csv").write_text(
        "id,email,phone,first_name,last_name,locale,email_consent,sms_consent\n"
        "c7,jonas@example.org,0151 23456789,Jonas,Weber,de,no,no\n",
        encoding="utf-8",
    )
    order = {"id": "o7", "total": "2538.00", "currency": "EUR", "items": [EBIKE, LAMP]}
    event = {"id": "e7", "type": "purchase", "customer": "c7", "at": "2026-03-02T10:00:00+01:00",
             "order": order}  # fmt: skip
    (directory / "events.jsonl").write_text(json.dumps(event) + "\n", encoding="utf-8")
    env = {**fakes.environment(), **live_shop_env()}
    for args in (["import", "customers", "customers.csv"], ["import", "events", "events.jsonl"],
                 ["simulate", "--until", "2026-03-02"]):  # fmt: skip
        args = [a if not a.endswith((".csv", ".jsonl")) else str(directory / a) for a in args]
        done = runner.invoke(app, ["-p", str(directory), *args], env=env)
        assert done.exit_code == 0, done.output
    fakes.sendgrid.requests.clear()
    fakes.twilio.requests.clear()
    return directory, env


def invoke(directory: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["-p", str(directory), "send-test", *args], env=env)
    return done.exit_code, done.output


def log_rows(directory: Path) -> tuple[int, int]:
    project = Project.open(directory)
    with project.db.connect() as conn:
        counts = tuple(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
            for t in (Message.__table__, MessageDecision.__table__)
        )
    project.close()
    return counts  # type: ignore[return-value]


def test_an_offer_goes_to_the_shops_inbox_through_sendgrid(shop, fakes: FakeProviders) -> None:
    directory, env = shop
    before = log_rows(directory)
    code, output = invoke(directory, env, "warranty_offer", "--to", "Team@Kuechenwelt-Berger.de",
                          "--customer", "c7", "--item", "EB-9")  # fmt: skip
    assert code == 0, output
    (mail,) = fakes.sendgrid.requests
    assert mail["personalizations"] == [{"to": [{"email": "Team@kuechenwelt-berger.de"}]}]
    subject = mail["subject"]
    assert subject.startswith("[TEST] ") and "E-Bike Trekking 9" in json.dumps(mail)
    assert "Waschmaschine" not in json.dumps(mail)  # his e-bike, not the sample machine
    assert "jonas@example.org" not in json.dumps(mail["personalizations"])
    assert log_rows(directory) == before  # no log row, nothing counted against a cap
    assert "sent “[TEST]" in output and "sendgrid" in output


def test_an_sms_goes_through_twilio_marked_test(shop, fakes: FakeProviders) -> None:
    directory, env = shop
    before = log_rows(directory)
    code, output = invoke(directory, env, "warranty_reminder", "--to", "0170 1234567",
                          "--order", "o7", "--item", "EB-9")  # fmt: skip
    assert code == 0, output
    (sms,) = fakes.twilio.requests
    assert sms["To"] == "+491701234567" and sms["Body"].startswith("[TEST] ")
    assert log_rows(directory) == before


def test_smtp_carries_the_test_too(shop) -> None:
    directory, env = shop
    with FakeSMTP() as server:
        smtp = {**env, "AFTERSALE_EMAIL_PROVIDER": "smtp",
                "AFTERSALE_SMTP_URL": f"smtp://127.0.0.1:{server.port}?timeout=2"}  # fmt: skip
        code, output = invoke(directory, smtp, "thank_you", "--to", "me@example.org",
                              "--customer", "c7", "--locale", "en")  # fmt: skip
        assert code == 0, output
        (received,) = server.messages
    assert received.rcpt_tos == ["me@example.org"]
    assert received.message["Subject"].startswith("[TEST] ")
    text = received.message.get_body(("plain",)).get_content()
    assert "E-Bike Trekking 9" in text


def test_without_an_item_the_first_is_shown_and_said_so(shop) -> None:
    directory, env = shop
    code, output = invoke(directory, env, "loyalty_offer", "--to", "me@example.org")
    assert code == 0, output
    assert "sample data: order o7: showing its first item (EB-9)" in " ".join(output.split())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["loyalty_offer", "--to", "me-at-example.org"], "--to 'me-at-example.org' is not an e-mail address"),
        (["loyalty_offer", "--to", "me@example.org"], None),
        (["loyalty_ofer", "--to", "me@example.org"], "no e-mail or SMS template named 'loyalty_ofer'"),
        (["loyalty_offer", "--to", "me@example.org", "--customer", "c9"], "--customer 'c9': no such customer"),
        (["loyalty_offer", "--to", "me@example.org", "--order", "o9"], "--order 'o9': no such order"),
        (["loyalty_offer", "--to", "me@example.org", "--item", "XX"], "--item 'XX': order o7 has no such item (it has EB-9, LA-1)"),
        (["warranty_reminder", "--to", "12345"], "--to '12345' is not a valid phone number"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(shop, args: list[str], says: str | None) -> None:
    directory, env = shop
    code, output = invoke(directory, env, *args)
    if says is None:
        assert code == 0, output
        return
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {says}"] or (len(errors) == 1 and says in errors[0]), output
    assert "Traceback" not in output

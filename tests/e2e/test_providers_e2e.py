"""The CLI against the fake SendGrid and Twilio: import, `run --once`, look at the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from aftersale.app import Project
from aftersale.cli import app
from aftersale.providers import TWILIO_FROM, FakeProviders
from campaigns.consent import verify_unsubscribe_token
from campaigns.models import Message
from templates.signing import purpose_key
from tests.live_shop import live_shop_env

PUBLIC_URL = "https://shop.example"
SECRET = "e2e-8Hq2Lr5Vx1Nc7Zt4Wp9Bm3Kd6Fs0Gy"
TOML = """
secret_key = "e2e-8Hq2Lr5Vx1Nc7Zt4Wp9Bm3Kd6Fs0Gy"
[email]
from = "Elektro Sommer <service@elektro-sommer.example>"
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = ""
quiet_days = []
public_holidays = ""
caps = []
"""


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as running:
        yield running


@pytest.fixture
def project_dir(tmp_path: Path, fakes: FakeProviders) -> Path:
    """Anna bought 40 days and three hours ago, Ben 20 days ago.

    Due now: the warranty e-mail of Anna's first order (60 days before its three-month
    warranty ends), the warranty SMS of Ben's (14 days before its one-month warranty ends)
    and the thank-you of Anna's second. (One customer's two warranty messages would go out
    a day apart: the journey's min_gap.)
    """
    runner = CliRunner()
    directory = tmp_path / "shop"
    assert runner.invoke(app, ["init", str(directory)]).exit_code == 0
    (directory / "aftersale.toml").write_text(TOML, encoding="utf-8")
    (directory / "customers.csv").write_text(
        "id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent\n"
        "c1,anna@example.org,,Anna,Schmidt,de,Europe/Berlin,yes,no\n"
        "c2,ben@example.org,0151 12345678,Ben,Schmidt,de,Europe/Berlin,yes,yes\n",
        encoding="utf-8",
    )
    now = datetime.now(UTC)
    events = [
        _purchase("e0", now - timedelta(days=40), "o0", warranty_months=3),
        _purchase("e1", now - timedelta(days=20), "o1", warranty_months=1, customer="c2"),
        _purchase("e2", now - timedelta(hours=3), "o2"),
    ]
    (directory / "events.jsonl").write_text(
        "\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8"
    )
    return directory


def _purchase(
    event_id: str, at: datetime, order: str, customer: str = "c1", **fields: Any
) -> dict[str, Any]:
    item = {"sku": "WM-7", "name": "Waschmaschine WM 7", "category": "appliance",
            "price": "549.00", "quantity": 1, **fields}  # fmt: skip
    return {"id": event_id, "type": "purchase", "customer": customer, "at": at.isoformat(),
            "order": {"id": order, "total": "549.00", "currency": "EUR", "items": [item]}}  # fmt: skip


def test_run_once_sends_through_the_official_clients(
    project_dir: Path, fakes: FakeProviders
) -> None:
    runner = CliRunner()
    env = {**fakes.environment(), **live_shop_env(), "AFTERSALE_PUBLIC_URL": PUBLIC_URL}
    for args in (
        ["import", "customers", str(project_dir / "customers.csv")],
        ["import", "events", str(project_dir / "events.jsonl")],
        ["run", "--once"],
    ):
        result = runner.invoke(app, ["--project", str(project_dir), *args], env=env)
        assert result.exit_code == 0, result.output
    assert "sent 3" in result.output

    messages = _sent_messages(project_dir)
    by_step = {m.step: m for m in messages}
    assert set(by_step) == {"thanks", "offer_email", "reminder_sms"}
    assert all(m.status == "sent" and m.provider_message_id for m in messages)

    mails = {m["custom_args"]["aftersale_message_id"]: m for m in fakes.sendgrid.requests}
    assert set(mails) == {str(by_step["thanks"].id), str(by_step["offer_email"].id)}
    for headers in fakes.sendgrid.request_headers:
        assert headers["Authorization"] == "Bearer SG.test-key"
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("sendgrid/")

    offer = mails[str(by_step["offer_email"].id)]
    assert offer["personalizations"] == [{"to": [{"email": "anna@example.org"}]}]
    assert offer["from"] == {"email": "service@kuechenwelt-berger.de", "name": "Küchenwelt Berger"}
    assert [c["type"] for c in offer["content"]] == ["text/plain", "text/html"]
    assert offer["content"][1]["value"].lstrip().lower().startswith("<!doctype html")
    assert offer["categories"] == ["extended_warranty", "offer_email"]
    unsubscribe = offer["headers"]["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{PUBLIC_URL}/unsubscribe/") and unsubscribe.endswith(">")
    token = unsubscribe[1:-1].rsplit("/", 1)[1]
    assert verify_unsubscribe_token(purpose_key(SECRET, "unsubscribe"), token) == "c1"
    assert offer["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    thanks = mails[str(by_step["thanks"].id)]
    assert "List-Unsubscribe" not in thanks.get("headers", {})  # transactional
    assert thanks["categories"] == ["thank_you", "thanks"]

    (sms,) = fakes.twilio.requests
    sms_row = by_step["reminder_sms"]
    assert (sms["To"], sms["From"]) == ("+4915112345678", TWILIO_FROM)
    assert sms["StatusCallback"] == (
        f"{PUBLIC_URL}/webhooks/twilio/status?aftersale_message_id={sms_row.id}"
    )
    assert "STOP" in sms["Body"]
    assert sms_row.provider_message_id in fakes.twilio.messages
    assert fakes.received() == {"sendgrid_requests": 2, "sendgrid_accepted": 2,
                                "twilio_requests": 1, "twilio_accepted": 1}  # fmt: skip

    again = runner.invoke(app, ["--project", str(project_dir), "run", "--once"], env=env)
    assert "sent 0" in again.output
    assert fakes.received()["sendgrid_requests"] == 2


def _sent_messages(directory: Path) -> list[Any]:
    project = Project.open(directory)
    t = Message.__table__
    with project.db.connect() as conn:
        rows = list(conn.execute(sa.select(t).where(t.c.status == "sent")))
    project.close()
    return rows

"""The shop's legal data: `init` writes placeholders, real providers wait for the real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli import app
from aftersale.legal import SAMPLE_SHOP, problem
from aftersale.settings import load_settings
from tests.live_shop import LIVE_SHOP, live_shop_env

SENDGRID = {"AFTERSALE_EMAIL_PROVIDER": "sendgrid", "AFTERSALE_SENDGRID_API_KEY": "SG.x"}
TWILIO = {"AFTERSALE_SMS_PROVIDER": "twilio", "AFTERSALE_TWILIO_ACCOUNT_SID": "AC1",
          "AFTERSALE_TWILIO_AUTH_TOKEN": "t", "AFTERSALE_TWILIO_FROM": "+4930901820"}  # fmt: skip
SMTP = {"AFTERSALE_EMAIL_PROVIDER": "smtp", "AFTERSALE_SMTP_URL": "smtp://127.0.0.1:1"}
SHOP_KEYS = ("name", "url", "support_email", "support_phone", "address", "imprint")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    directory = tmp_path / "shop"
    assert CliRunner().invoke(app, ["init", str(directory)]).exit_code == 0
    return directory


def invoke(directory: Path, *args: str, env: dict[str, str]) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["-p", str(directory), *args], env=env)
    return done.exit_code, done.output


def test_init_writes_every_shop_field_as_a_placeholder(shop: Path) -> None:
    settings = load_settings(shop)
    for key in SHOP_KEYS:
        value = getattr(settings, f"shop_{key}")
        assert problem(value) == "still a placeholder", (key, value)
    assert "Elektro Sommer" not in (shop / "aftersale.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("provider", [SENDGRID, SMTP, TWILIO], ids=["sendgrid", "smtp", "twilio"])
@pytest.mark.parametrize(
    "command", [["run", "--once"], ["simulate", "--until", "2027-01-01"], ["serve", "--port", "1"]]
)
def test_real_providers_refuse_placeholders_naming_each_setting(
    shop: Path, provider: dict[str, str], command: list[str]
) -> None:
    code, output = invoke(shop, *command, env=provider)
    assert code == 2, output
    lines = output.splitlines()
    for key in SHOP_KEYS:
        named = [line for line in lines if line.startswith(f"[shop] {key}:")]
        assert len(named) == 1 and f"AFTERSALE_SHOP_{key.upper()}" in named[0], output
    assert "Traceback" not in output


def test_the_sample_shop_is_refused_too(tmp_path: Path) -> None:
    directory = tmp_path / "bare"
    directory.mkdir()  # no aftersale.toml: the settings fall back to the sample shop
    env = {**SENDGRID, **TWILIO, "AFTERSALE_SECRET_KEY": "Vq3x9LkP0sT7uYbN2mWcR8eZaJ4hG6dF"}
    code, output = invoke(directory, "run", "--once", env=env)
    assert code == 2
    assert "[shop] imprint: the sample shop's data" in output
    assert "[email] from: the sample shop's data" in output
    assert "[sms] help_text: the sample shop's data" in output


def test_one_leftover_is_named_alone(shop: Path) -> None:
    env = {**live_shop_env(), **SENDGRID, "AFTERSALE_SHOP_IMPRINT": SAMPLE_SHOP["imprint"]}
    code, output = invoke(shop, "run", "--once", env=env)
    assert code == 2
    named = [line for line in output.splitlines() if line.startswith("[")]
    assert named == ["[shop] imprint: the sample shop's data (or AFTERSALE_SHOP_IMPRINT)"]


def test_filled_in_data_runs_with_a_real_provider(shop: Path) -> None:
    code, output = invoke(shop, "run", "--once", env={**live_shop_env(), **SENDGRID})
    assert code == 0, output


def test_the_outbox_runs_with_placeholders(shop: Path) -> None:
    code, output = invoke(shop, "run", "--once", env={})
    assert code == 0, output


@pytest.mark.parametrize(
    ("value", "flagged"),
    [
        ("Elektro Sommer GmbH, Amtsgericht Berlin HRB 000000", True),
        ("service@shop.example", True),
        ("FILL IN: address", True),
        ("https://fill-in.example", True),
        ("example@kuechenwelt-berger.de", False),
        ("https://www.example.com", True),
        ("Shop <info@example.org>", True),
        ("https://shop.example-store.de", False),
        ("https://myexample.com", False),
        ("service@shop.example>", True),
        ("Exampleweg 3, 12345 Berlin", False),
        (LIVE_SHOP["shop_imprint"], False),
        ("", False),
    ],
)
def test_what_counts_as_unfinished(value: str, flagged: bool) -> None:
    assert (problem(value) is not None) is flagged

"""Building channels from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels import ChannelError, ConfigurationError
from channels.memory import InMemoryChannel
from channels.outbox import OutboxChannel
from channels.registry import build_channel
from channels.sendgrid import SendGridChannel
from channels.smtp import SMTPChannel
from channels.twilio import TwilioChannel

FULL = {
    "sendgrid_api_key": "SG.k",
    "sendgrid_api_host": "https://api.eu.sendgrid.com",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "t",
    "twilio_from": "+4930901820",
    "twilio_messaging_service_sid": None,
    "twilio_api_base_url": None,
    "twilio_status_callback": "https://shop.example/hooks/twilio",
    "smtp_url": "smtp://user:pw@mail.example:587?starttls=1",
    "email_from": "Shop <shop@example.com>",
    "email_reply_to": None,
}


@pytest.mark.parametrize(
    ("kind", "provider", "cls"),
    [
        ("email", "outbox", OutboxChannel),
        ("sms", "outbox", OutboxChannel),
        ("email", "memory", InMemoryChannel),
        ("sms", "memory", InMemoryChannel),
        ("email", "sendgrid", SendGridChannel),
        ("email", "smtp", SMTPChannel),
        ("sms", "twilio", TwilioChannel),
    ],
)
def test_builds_each_provider(tmp_path: Path, kind: str, provider: str, cls: type) -> None:
    channel = build_channel(kind, provider, FULL, outbox_dir=tmp_path)  # type: ignore[arg-type]

    assert isinstance(channel, cls) and channel.kind == kind
    channel.close()


def test_smtp_url_is_parsed(tmp_path: Path) -> None:
    channel = build_channel("email", "smtp", FULL, outbox_dir=tmp_path)

    assert isinstance(channel, SMTPChannel)
    server = channel.server
    assert (server.host, server.port, server.starttls, server.implicit_tls) == (
        "mail.example",
        587,
        True,
        False,
    )
    assert (server.username, server.password) == ("user", "pw")


@pytest.mark.parametrize(
    ("kind", "provider", "missing", "setting"),
    [
        ("email", "sendgrid", "sendgrid_api_key", "AFTERSALE_SENDGRID_API_KEY"),
        ("email", "sendgrid", "email_from", "AFTERSALE_EMAIL_FROM"),
        ("email", "smtp", "smtp_url", "AFTERSALE_SMTP_URL"),
        ("sms", "twilio", "twilio_auth_token", "AFTERSALE_TWILIO_AUTH_TOKEN"),
        ("sms", "twilio", "twilio_from", "AFTERSALE_TWILIO_FROM"),
    ],
)
def test_missing_setting_is_named(
    tmp_path: Path, kind: str, provider: str, missing: str, setting: str
) -> None:
    config = {**FULL, missing: None}

    with pytest.raises(ConfigurationError, match=setting):
        build_channel(kind, provider, config, outbox_dir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "provider"), [("sms", "sendgrid"), ("email", "twilio"), ("email", "x")]
)
def test_provider_must_fit_the_kind(tmp_path: Path, kind: str, provider: str) -> None:
    with pytest.raises(ConfigurationError, match="not one of"):
        build_channel(kind, provider, FULL, outbox_dir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://h:notaport"])
def test_bad_smtp_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigurationError):
        build_channel("email", "smtp", {**FULL, "smtp_url": url}, outbox_dir=tmp_path)


def test_configuration_errors_are_not_channel_errors() -> None:
    assert not issubclass(ConfigurationError, ChannelError)

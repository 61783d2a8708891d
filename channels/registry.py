"""Building the configured channel for each kind from plain settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from channels.base import Channel, ChannelKind
from channels.errors import ConfigurationError
from channels.memory import InMemoryChannel
from channels.outbox import OutboxChannel

Config = Mapping[str, str | None]

PROVIDERS: dict[ChannelKind, tuple[str, ...]] = {
    "email": ("outbox", "sendgrid", "smtp", "memory"),
    "sms": ("outbox", "twilio", "memory"),
}
DEFAULT_SENDER = "aftersale <noreply@localhost>"


def setting_name(key: str) -> str:
    """The environment variable users set for a config key."""
    return f"AFTERSALE_{key.upper()}"


def _require(config: Config, key: str, provider: str) -> str:
    value = config.get(key)
    if not value:
        raise ConfigurationError(f"{provider} needs {setting_name(key)} to be set")
    return value


def _sendgrid(config: Config) -> Channel:
    # Provider clients load when a project uses them: they cost every command 0.1 s.
    from channels.sendgrid import SendGridChannel

    return SendGridChannel(
        api_key=_require(config, "sendgrid_api_key", "sendgrid"),
        host=config.get("sendgrid_api_host") or "https://api.sendgrid.com",
        sender=_require(config, "email_from", "sendgrid"),
        reply_to=config.get("email_reply_to") or None,
    )


def _smtp(config: Config) -> Channel:
    from channels.smtp import SMTPChannel

    return SMTPChannel.from_url(
        _require(config, "smtp_url", "smtp"),
        sender=_require(config, "email_from", "smtp"),
        reply_to=config.get("email_reply_to") or None,
    )


def _twilio(config: Config) -> Channel:
    from channels.twilio import TwilioChannel

    from_number = config.get("twilio_from") or None
    service = config.get("twilio_messaging_service_sid") or None
    if not from_number and not service:
        raise ConfigurationError(
            "twilio needs AFTERSALE_TWILIO_FROM or AFTERSALE_TWILIO_MESSAGING_SERVICE_SID"
        )
    return TwilioChannel(
        account_sid=_require(config, "twilio_account_sid", "twilio"),
        auth_token=_require(config, "twilio_auth_token", "twilio"),
        from_number=from_number,
        messaging_service_sid=service,
        api_base_url=config.get("twilio_api_base_url") or "https://api.twilio.com",
        status_callback=config.get("twilio_status_callback") or None,
    )


_BUILDERS: dict[str, Callable[[Config], Channel]] = {
    "sendgrid": _sendgrid,
    "smtp": _smtp,
    "twilio": _twilio,
}


def build_channel(kind: ChannelKind, provider: str, config: Config, *, outbox_dir: Path) -> Channel:
    """Build the ``provider`` channel for ``kind`` or raise :class:`ConfigurationError`."""
    if kind not in PROVIDERS:
        raise ConfigurationError(f"unknown channel kind {kind!r}")
    if provider not in PROVIDERS[kind]:
        choices = ", ".join(PROVIDERS[kind])
        raise ConfigurationError(f"{kind} provider {provider!r} is not one of: {choices}")
    if provider == "memory":
        return InMemoryChannel(kind)
    if provider == "outbox":
        return OutboxChannel(
            kind,
            outbox_dir,
            sender=config.get("email_from") or DEFAULT_SENDER,
            reply_to=config.get("email_reply_to") or None,
        )
    return _BUILDERS[provider](config)

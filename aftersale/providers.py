"""The fake SendGrid and Twilio servers, started together and wired into a project.

``aftersale demo --providers fake``, the end-to-end tests and the provider benchmark all
run the official clients against these loopback servers instead of the real providers.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from types import TracebackType
from typing import Any, Self

from channels.fakes import FakeSendGrid, FakeTwilio, SendGridSigner
from channels.twilio import MESSAGE_ID_PARAM

TWILIO_FROM = "+4930901820"


class FakeProviders:
    """FakeSendGrid and FakeTwilio on 127.0.0.1, and the settings that point at them."""

    def __init__(self, *, hang_seconds: float = 5.0) -> None:
        self.sendgrid = FakeSendGrid(hang_seconds=hang_seconds)
        self.twilio = FakeTwilio(hang_seconds=hang_seconds)
        self.signer = SendGridSigner.generate()

    def start(self) -> Self:
        """Start both servers."""
        self.sendgrid.start()
        self.twilio.start()
        return self

    def stop(self) -> None:
        """Stop both servers."""
        self.sendgrid.stop()
        self.twilio.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def settings(self) -> dict[str, Any]:
        """Setting overrides that send e-mail through SendGrid and SMS through Twilio."""
        return {
            "email_provider": "sendgrid",
            "sendgrid_api_key": self.sendgrid.api_key,
            "sendgrid_api_host": self.sendgrid.url,
            "sendgrid_webhook_public_key": self.signer.public_key,
            "sms_provider": "twilio",
            "twilio_account_sid": self.twilio.account_sid,
            "twilio_auth_token": self.twilio.auth_token,
            "twilio_from": TWILIO_FROM,
            "twilio_api_base_url": self.twilio.url,
        }

    def environment(self) -> dict[str, str]:
        """The same settings as ``AFTERSALE_*`` environment variables, for the CLI."""
        return {f"AFTERSALE_{k.upper()}": str(v) for k, v in self.settings().items()}

    def received(self) -> dict[str, int]:
        """What the servers were asked and what they accepted."""
        return {
            "sendgrid_requests": len(self.sendgrid.calls),
            "sendgrid_accepted": len(self.sendgrid.requests),
            "twilio_requests": len(self.twilio.calls),
            "twilio_accepted": len(self.twilio.requests),
        }

    def accepted_message_ids(self) -> Counter[str]:
        """How often each of our message ids was accepted, over both providers."""
        ids: Counter[str] = Counter()
        for mail in self.sendgrid.requests:
            ids[f"email:{mail.get('custom_args', {}).get('aftersale_message_id')}"] += 1
        for form in self.twilio.requests:
            ids[f"sms:{_callback_message_id(form.get('StatusCallback', ''))}"] += 1
        return ids


def _callback_message_id(url: str) -> str | None:
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get(MESSAGE_ID_PARAM)
    return values[0] if values else None

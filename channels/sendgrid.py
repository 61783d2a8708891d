"""SendGrid: sending through the v3 Mail Send API and reading the Event Webhook."""

from __future__ import annotations

import binascii
import email.utils
import http.client
import json
import time
import urllib.error
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook

from channels.base import (
    AmbiguousChannelError,
    Channel,
    ChannelError,
    DeliveryEvent,
    EventType,
    OutgoingMessage,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
)
from channels.errors import ConfigurationError

PROVIDER = "sendgrid"
MESSAGE_ID_ARG = "aftersale_message_id"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

EVENT_TYPES: dict[str, EventType] = {
    "processed": EventType.QUEUED,
    "deferred": EventType.DEFERRED,
    "delivered": EventType.DELIVERED,
    "bounce": EventType.BOUNCED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "group_resubscribe": EventType.OPTED_IN,
}


def _address(value: str) -> dict[str, str]:
    """Turn ``Name <a@b>`` into SendGrid's ``{"email", "name"}`` object."""
    name, address = email.utils.parseaddr(value)
    if "@" not in address:
        raise ConfigurationError(f"{value!r} is not an e-mail address")
    return {"email": address, "name": name} if name else {"email": address}


class SendGridChannel(Channel):
    """Sends e-mail through SendGrid's v3 API with the official client."""

    name = PROVIDER
    kind = "email"

    def __init__(
        self,
        *,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        sender: str,
        reply_to: str | None = None,
        timeout: float = 10,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise ConfigurationError("a SendGrid API key is required")
        self._from = _address(sender)
        self._reply_to = _address(reply_to) if reply_to else None
        self._client = SendGridAPIClient(api_key, host=host.rstrip("/"))
        # The client builds a fresh urllib request per call and reads this attribute.
        self._client.client.timeout = timeout
        self._wall_clock = wall_clock

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The Mail Send request body for ``message``."""
        content = [{"type": "text/plain", "value": message.body_text}]
        if message.body_html is not None:
            content.append({"type": "text/html", "value": message.body_html})
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": self._from,
            "subject": message.subject,
            "content": content,
            "custom_args": {MESSAGE_ID_ARG: message.message_id},
        }
        categories = [c for c in (message.journey, message.step) if c]
        if categories:
            body["categories"] = categories
        if message.headers:
            body["headers"] = dict(message.headers)
        if self._reply_to:
            body["reply_to"] = self._reply_to
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand ``message`` to SendGrid; the provider id comes from ``X-Message-Id``."""
        if message.kind != "email":
            raise ValueError(f"SendGrid cannot send a {message.kind} message")
        try:
            response = self._client.send(self.payload(message))
        except HTTPError as exc:
            raise self._http_error(exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(exc) from exc
        return SendResult(
            provider=PROVIDER,
            provider_message_id=response.headers.get("X-Message-Id"),
            details={"status": response.status_code},
        )

    def _http_error(self, exc: HTTPError) -> ChannelError:
        status = int(exc.status_code)
        text = _error_text(exc.body)
        message = f"SendGrid answered {status}: {text}"
        if status == 429 or status >= 500:
            retry_after = _retry_after(exc.headers, self._wall_clock()) if status == 429 else None
            return TransientChannelError(
                message, provider=PROVIDER, status=status, retry_after=retry_after
            )
        return PermanentChannelError(message, provider=PROVIDER, status=status)


def _transport_error(exc: BaseException) -> ChannelError:
    """Classify a failure below HTTP.

    urllib wraps everything that goes wrong while connecting and writing the request in
    ``URLError``: the request never reached SendGrid, so it is safe to retry. Anything
    raised afterwards (read timeout, connection reset while waiting for the answer) means
    SendGrid may have accepted the message.
    """
    if isinstance(exc, urllib.error.URLError):
        return TransientChannelError(f"SendGrid unreachable: {exc.reason}", provider=PROVIDER)
    return AmbiguousChannelError(f"no answer from SendGrid: {exc!r}", provider=PROVIDER)


def _error_text(body: bytes | str | None) -> str:
    """The ``errors[].message`` texts of a SendGrid error body, or the raw body."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(raw)["errors"]
        return "; ".join(str(e.get("message", e)) for e in errors) or raw
    except (ValueError, KeyError, TypeError, AttributeError):
        return raw.strip()[:500]


def _retry_after(headers: Mapping[str, str] | None, now: float) -> float | None:
    """Seconds to wait: ``X-RateLimit-Reset`` (epoch seconds) first, then ``Retry-After``."""
    if headers is None:
        return None
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            when = email.utils.parsedate_to_datetime(retry_after)
            return max(0.0, when.timestamp() - now) if when else None
    return None


def verify_sendgrid_signature(
    public_key: str, payload: bytes, signature: str, timestamp: str
) -> bool:
    """Check the Event Webhook signature on the raw request body.

    ``public_key`` is the verification key as SendGrid's settings page shows it (base64
    DER). A key that cannot be loaded is a configuration problem and raises
    :class:`ConfigurationError` rather than silently rejecting every event.
    """
    if not signature or not timestamp:
        return False
    try:
        verifier = EventWebhook(public_key)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"SendGrid webhook verification key is invalid: {exc}") from exc
    try:
        text = payload.decode("utf-8")
        return bool(verifier.verify_signature(text, signature, timestamp))
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return False


def parse_sendgrid_events(payload: bytes) -> list[DeliveryEvent]:
    """Turn an Event Webhook body (a JSON array) into :class:`DeliveryEvent` objects."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"SendGrid webhook body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, list):
        raise ValueError("SendGrid webhook body must be a JSON array of events")
    return [_sendgrid_event(item, index) for index, item in enumerate(data)]


def _sendgrid_event(item: Any, index: int) -> DeliveryEvent:
    if not isinstance(item, dict) or not isinstance(item.get("event"), str):
        raise ValueError(f"SendGrid event #{index} is not an object with an 'event' name")
    sg_message_id = _scalar(item.get("sg_message_id"))
    return DeliveryEvent(
        event_type=EVENT_TYPES.get(item["event"], EventType.UNKNOWN),
        provider=PROVIDER,
        event_id=_scalar(item.get("sg_event_id")),
        message_id=_custom_arg(item, MESSAGE_ID_ARG),
        provider_message_id=sg_message_id.split(".", 1)[0] if sg_message_id else None,
        recipient=_scalar(item.get("email")),
        timestamp=_timestamp(item.get("timestamp"), index),
        description=_description(item),
        raw=item,
    )


def _scalar(value: Any) -> str | None:
    """A text field as text: a number becomes its digits, a list or an object nothing (an
    event is never refused for the shape of one field)."""
    if isinstance(value, str):
        return value[:255] or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _custom_arg(item: dict[str, Any], name: str) -> str | None:
    """Custom args arrive as top-level keys; very old integrations nest ``unique_args``."""
    value = item.get(name)
    if value is None and isinstance(item.get("unique_args"), dict):
        value = item["unique_args"].get(name)
    return None if value is None else str(value)


def _timestamp(value: Any, index: int) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"SendGrid event #{index} has a bad timestamp {value!r}") from exc


def _description(item: dict[str, Any]) -> str:
    """The most useful human text each event type carries."""
    for key in ("reason", "response", "url"):
        if item.get(key):
            return str(item[key])
    return str(item.get("type") or "")

"""Twilio: sending SMS through the Messages API and reading its webhooks."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from channels.base import (
    AmbiguousChannelError,
    Channel,
    ChannelError,
    DeliveryEvent,
    EventType,
    OutgoingMessage,
    PermanentChannelError,
    RecipientOptedOut,
    SendResult,
    TransientChannelError,
)
from channels.errors import ConfigurationError
from channels.sms_segments import sms_encoding

PROVIDER = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
# Added to the status callback URL so status events name our message.
MESSAGE_ID_PARAM = "aftersale_message_id"

OPTED_OUT_CODE = 21610
# Codes that say the number itself is wrong or cannot receive SMS: never retry.
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 21265, 21407, 21408, 21612, 21614})
# Delivery error codes that mean the handset will never get it (a hard bounce).
HARD_BOUNCE_CODES = frozenset({"30005", "30006", "21211", "21614"})

STATUS_TYPES: dict[str, EventType] = {
    "accepted": EventType.QUEUED,
    "scheduled": EventType.QUEUED,
    "queued": EventType.QUEUED,
    "sending": EventType.QUEUED,
    "sent": EventType.QUEUED,
    "delivered": EventType.DELIVERED,
    "read": EventType.OPENED,
    "failed": EventType.FAILED,
    "canceled": EventType.DROPPED,
}
KEYWORDS: dict[str, EventType] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), EventType.OPTED_OUT
    ),
    **dict.fromkeys(("START", "UNSTOP"), EventType.OPTED_IN),
    "HELP": EventType.UNKNOWN,
}
# What a customer who wants no more SMS also writes: the keyword with a full stop, an
# exclamation mark or an emoji, or in German ("Stopp!", "Abmelden"); and asking for help.
# Taken as opting out (or asking for help) here, although the provider blocks only the
# exact keywords: sending no more is what they asked for. Opting back in stays exact, so
# it never disagrees with the provider's block.
LOOSE_KEYWORDS: dict[str, str] = {
    **{word: word for word, kind in KEYWORDS.items() if kind is not EventType.OPTED_IN},
    **dict.fromkeys(("STOPP", "ABMELDEN", "ABBESTELLEN"), "STOP"),
    "HILFE": "HELP",
}
_AROUND = re.compile(r"^[\W_]+|[\W_]+$")  # punctuation, symbols, emoji and blanks


class TwilioChannel(Channel):
    """Sends SMS with the official Twilio client."""

    name = PROVIDER
    kind = "sms"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str = "https://api.twilio.com",
        status_callback: str | None = None,
        timeout: float = 10,
    ) -> None:
        if not account_sid or not auth_token:
            raise ConfigurationError("a Twilio account SID and auth token are required")
        if not from_number and not messaging_service_sid:
            raise ConfigurationError("Twilio needs a sender number or a messaging service SID")
        self._from = from_number
        self._service = messaging_service_sid
        self._status_callback = status_callback
        self._http = TwilioHttpClient(timeout=timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # The client honours TWILIO_EDGE/TWILIO_REGION and would rewrite our base URL.
        self._client.edge = None
        self._client.region = None
        self._client.api.base_url = api_base_url.rstrip("/")

    def status_callback_for(self, message: OutgoingMessage) -> str | None:
        """The status callback URL for ``message``, carrying our message id."""
        if not self._status_callback:
            return None
        parts = urllib.parse.urlsplit(self._status_callback)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query.append((MESSAGE_ID_PARAM, message.message_id))
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def send(self, message: OutgoingMessage) -> SendResult:
        """Create the message at Twilio; its SID becomes the provider message id."""
        if message.kind != "sms":
            raise ValueError(f"Twilio cannot send a {message.kind} message")
        params: dict[str, Any] = {"to": message.to, "body": message.body_text}
        if self._service:
            params["messaging_service_sid"] = self._service
        else:
            params["from_"] = self._from
        callback = self.status_callback_for(message)
        if callback:
            params["status_callback"] = callback
        try:
            created = self._client.api.v2010.account.messages.create(**params)
        except TwilioException as exc:
            raise _twilio_error(exc) from exc
        except requests.RequestException as exc:
            raise _transport_error(exc) from exc
        return SendResult(
            provider=PROVIDER,
            provider_message_id=created.sid,
            details={
                "status": created.status,
                "num_segments": int(created.num_segments) if created.num_segments else None,
                "encoding": sms_encoding(message.body_text),
            },
        )

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        if self._http.session is not None:
            self._http.session.close()


def _twilio_error(exc: TwilioException) -> ChannelError:
    """Map Twilio's error codes and HTTP statuses onto our error tree."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status, code = int(exc.status), exc.code
        text = getattr(exc, "msg", "") or getattr(exc, "detail", "") or str(status)
    else:
        status, code, text = 0, None, str(exc)
    kw: dict[str, Any] = {"provider": PROVIDER, "status": status or None, "code": str(code or "")}
    message = f"Twilio refused the message ({code or status}): {text}"
    if code == OPTED_OUT_CODE:
        return RecipientOptedOut(message, **kw)
    if code in INVALID_NUMBER_CODES:
        return PermanentChannelError(message, **kw)
    if status == 429 or status >= 500:
        return TransientChannelError(message, **kw)
    return PermanentChannelError(message, **kw)


def _transport_error(exc: requests.RequestException) -> ChannelError:
    """Refused or timed-out connections never carried the request; the rest may have."""
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return TransientChannelError(f"Twilio unreachable: {exc}", provider=PROVIDER)
    return AmbiguousChannelError(f"no answer from Twilio: {exc}", provider=PROVIDER)


def _never_connected(exc: requests.RequestException) -> bool:
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str
) -> bool:
    """Check ``X-Twilio-Signature`` for a form POST to ``url`` (the exact public URL)."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def parse_twilio_status(params: Mapping[str, str], url: str | None = None) -> DeliveryEvent:
    """Turn a status callback into a :class:`DeliveryEvent`.

    ``url`` is the callback URL Twilio called; our message id travels in its query.
    """
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if not status:
        raise ValueError("Twilio status callback without MessageStatus")
    sid = params.get("MessageSid") or params.get("SmsSid")
    error_code = params.get("ErrorCode") or ""
    event_type = STATUS_TYPES.get(status, EventType.UNKNOWN)
    if status == "undelivered":
        event_type = EventType.BOUNCED if error_code in HARD_BOUNCE_CODES else EventType.FAILED
    return DeliveryEvent(
        event_type=event_type,
        provider=PROVIDER,
        event_id=f"{sid}:{status}" if sid else None,
        message_id=_message_id_from(url),
        provider_message_id=sid,
        recipient=params.get("To"),
        description=" ".join(filter(None, (error_code, params.get("ErrorMessage")))) or status,
        raw=dict(params),
    )


def _message_id_from(url: str | None) -> str | None:
    if not url:
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    values = query.get(MESSAGE_ID_PARAM)
    return values[0] if values else None


def parse_twilio_inbound(params: Mapping[str, str]) -> DeliveryEvent | None:
    """Recognise opt-out, opt-in and help keywords in an inbound SMS.

    Only a body that is one keyword counts (case and surrounding blanks ignored; for
    opting out and help also punctuation and emoji around it, and the German words,
    :data:`LOOSE_KEYWORDS`): "please stop the washing machine" is not an opt-out.
    Returns ``None`` for ordinary replies.
    """
    body = params.get("Body") or ""
    keyword = body.strip().upper()
    if keyword not in KEYWORDS:
        keyword = LOOSE_KEYWORDS.get(_AROUND.sub("", body).upper(), "")
    event_type = KEYWORDS.get(keyword)
    if event_type is None:
        return None
    sid = params.get("MessageSid") or params.get("SmsSid")
    return DeliveryEvent(
        event_type=event_type,
        provider=PROVIDER,
        event_id=sid,
        provider_message_id=sid,
        recipient=params.get("From"),
        description="help" if keyword == "HELP" else keyword.lower(),
        raw={**params, "keyword": keyword},
    )

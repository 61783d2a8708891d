"""A fake of Twilio's Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``)."""

from __future__ import annotations

import base64
import email.utils
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from twilio.request_validator import RequestValidator

from channels.fakes.http import COMMON_FAILURES, FakeHTTPProvider, Reply
from channels.sms_segments import segment_count

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32}|[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Twilio's own codes and texts for what the fake can be told to answer.
_ERRORS: dict[str, tuple[int, int, str]] = {
    "rate_limit": (429, 20429, "Too Many Requests"),
    "server_error": (500, 20500, "Internal Server Error"),
    "opted_out": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "invalid_number": (400, 21211, "The 'To' number is not a valid phone number."),
    "unauthorized": (401, 20003, "Authenticate"),
}


def twilio_error(kind: str) -> Reply:
    """A Twilio error body for one of the injected failure kinds."""
    status, code, message = _ERRORS[kind]
    return _error(status, code, message)


def _error(status: int, code: int, message: str) -> Reply:
    return Reply.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio(FakeHTTPProvider):
    """Creates messages like Twilio: 201 with a JSON message resource.

    Extra failure kinds: ``"opted_out"`` (21610), ``"invalid_number"`` (21211) and
    ``"unauthorized"`` (20003). Accepted form posts are kept in :attr:`requests`;
    :meth:`send_status_callback` plays a delivery report back to the callback URL.
    """

    failure_kinds = (*COMMON_FAILURES, "opted_out", "invalid_number", "unauthorized")

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "test-auth-token",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[dict[str, str]] = []
        self.messages: dict[str, dict[str, Any]] = {}

    def _reset_records(self) -> None:
        self.requests.clear()
        self.messages.clear()

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, failure: str | None
    ) -> Reply:
        """Answer one Messages create call."""
        match = _PATH.match(path.split("?", 1)[0])
        if method != "POST" or not match:
            return _error(404, 20404, f"The requested resource {path} was not found")
        if failure is not None:
            return twilio_error(failure)
        if match["sid"] != self.account_sid or not self._authorised(headers):
            return twilio_error("unauthorized")
        form = {
            k: v[-1]
            for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()
        }
        problem = self._validate(form)
        if problem:
            return problem
        resource = self._resource(form)
        with self._lock:
            self.requests.append(form)
            self.messages[resource["sid"]] = resource
        return Reply.json(201, resource)

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return headers.get("Authorization") == f"Basic {expected}"

    def _validate(self, form: Mapping[str, str]) -> Reply | None:
        if not form.get("To"):
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(form["To"]):
            return twilio_error("invalid_number")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body") and not form.get("MediaUrl"):
            return _error(400, 21602, "Message body is required.")
        return None

    def _resource(self, form: Mapping[str, str]) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        now = email.utils.formatdate(usegmt=True)
        body = form.get("Body", "")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(segment_count(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if form.get("From") else "accepted",
            "status_callback": form.get("StatusCallback"),
            "subresource_uris": {},
            "to": form["To"],
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    def status_params(
        self, sid: str, status: str, *, error_code: str | None = None
    ) -> dict[str, str]:
        """The form Twilio posts to a status callback for message ``sid``."""
        msg = self.messages[sid]
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": msg["from"] or "",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": msg["to"],
        }
        if msg["messaging_service_sid"]:
            params["MessagingServiceSid"] = msg["messaging_service_sid"]
        if error_code:
            params["ErrorCode"] = error_code
        return params

    def send_status_callback(
        self, sid: str, status: str, *, error_code: str | None = None, timeout: float = 5
    ) -> int:
        """POST a signed status callback for ``sid`` to its callback URL; returns the HTTP status.

        Only loopback URLs are called: the fake never sends traffic anywhere else.
        """
        url = self.messages[sid].get("status_callback")
        if not url:
            raise ValueError(f"message {sid} was sent without a status callback")
        if urllib.parse.urlsplit(url).hostname not in _LOOPBACK:
            raise ValueError(f"refusing to call a non-loopback callback URL {url!r}")
        params = self.status_params(sid, status, error_code=error_code)
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            headers={"X-Twilio-Signature": signature},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

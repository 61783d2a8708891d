"""A fake of SendGrid's ``POST /v3/mail/send`` on loopback."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from channels.fakes.http import COMMON_FAILURES, FakeHTTPProvider, Reply

SEND_PATH = "/v3/mail/send"


def _errors(status: int, message: str, field: str | None = None) -> Reply:
    return Reply.json(status, {"errors": [{"message": message, "field": field, "help": None}]})


class FakeSendGrid(FakeHTTPProvider):
    """Accepts mail like SendGrid: 202, empty body, ``X-Message-Id``.

    Extra failure kinds: ``"bad_request"`` (400) and ``"unauthorized"`` (401).
    Accepted request bodies are kept, parsed, in :attr:`requests`.
    """

    failure_kinds = (*COMMON_FAILURES, "bad_request", "unauthorized")

    def __init__(
        self, *, api_key: str = "SG.test-key", rate_limit_reset: float = 2.0, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.rate_limit_reset = rate_limit_reset
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []

    def _reset_records(self) -> None:
        self.requests.clear()
        self.request_headers.clear()

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, failure: str | None
    ) -> Reply:
        """Answer one Mail Send call."""
        if method != "POST" or path.rstrip("/") != SEND_PATH:
            return _errors(404, f"no route for {method} {path}")
        if failure is not None:
            return self._injected(failure)
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked")
        try:
            data = json.loads(body)
        except ValueError:
            return _errors(400, "Invalid JSON body")
        problem = validate_mail(data)
        if problem:
            return _errors(400, *problem)
        with self._lock:
            self.requests.append(data)
            self.request_headers.append(dict(headers))
        return Reply(202, headers={"X-Message-Id": secrets.token_urlsafe(16)})

    def _injected(self, failure: str) -> Reply:
        if failure == "rate_limit":
            reset = int(time.time() + self.rate_limit_reset)
            limits = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
            reply = _errors(429, "too many requests")
            return Reply(
                429, reply.body, {**reply.headers, **limits, "X-RateLimit-Reset": str(reset)}
            )
        if failure == "server_error":
            return _errors(500, "internal error")
        if failure == "unauthorized":
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked")
        return _errors(
            400, "The to email does not contain a valid address.", "personalizations.0.to"
        )


def validate_mail(data: Any) -> tuple[str, str] | None:
    """The first rule of the Mail Send API that ``data`` breaks, as (message, field)."""
    if not isinstance(data, dict):
        return "The request body must be a JSON object", ""
    personalizations = data.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return "The personalizations field is required", "personalizations"
    for i, p in enumerate(personalizations):
        if (
            not isinstance(p, dict)
            or not p.get("to")
            or not all(isinstance(t, dict) and "@" in str(t.get("email", "")) for t in p["to"])
        ):
            return "The to email does not contain a valid address.", f"personalizations.{i}.to"
    if "@" not in str((data.get("from") or {}).get("email", "")):
        return "The from email does not contain a valid address.", "from.email"
    if not data.get("subject") and not all(p.get("subject") for p in personalizations):
        return "The subject is required", "subject"
    return _validate_content(data) or _validate_extras(data)


def _validate_content(data: dict[str, Any]) -> tuple[str, str] | None:
    content = data.get("content")
    if not data.get("template_id") and (not isinstance(content, list) or not content):
        return (
            "Unless a valid template_id is provided, the content parameter is required",
            "content",
        )
    types = [c.get("type") for c in content or []]
    if "text/plain" in types and types[0] != "text/plain":
        return "If present, text/plain content must be first", "content"
    return None


def _validate_extras(data: dict[str, Any]) -> tuple[str, str] | None:
    categories = data.get("categories", [])
    if len(categories) > 10 or not all(
        isinstance(c, str) and c.isascii() and len(c) <= 255 for c in categories
    ):
        return "Categories must be at most 10 ASCII strings of up to 255 characters", "categories"
    for key in ("custom_args", "headers"):
        values = data.get(key, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return f"{key} values must be strings", key
    return None

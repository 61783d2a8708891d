"""Secrets kept out of error messages and log lines.

A password in a URL (``smtp://mailer:<password>@host``), an API key or a bearer token
that ends up in an exception's text would otherwise be printed by the CLI, written to the
server's log and perhaps pasted into a ticket. :func:`redact` replaces them with ``***``;
:func:`redact_logs` makes every log record pass through it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["redact", "redact_logs"]

_PATTERNS = (
    # user:password@ in any URL: the user stays, so the message still says who tried. A
    # scheme is only tried where a word begins, and user and password are bounded: each
    # place a match is tried at then costs a bounded number of steps, and a long line
    # (a request line of 60,000 letters in the access log) is redacted in linear time.
    (
        re.compile(
            r"(?<![a-z0-9+.-])(?P<keep>[a-z][a-z0-9+.-]*+://[^\s:/@'\"]{0,256}:)"
            r"[^\s@'\"]{1,256}(?=@)",
            re.I,
        ),
        "***",
    ),
    # SendGrid API keys, Twilio auth tokens and bearer tokens.
    (re.compile(r"(?P<keep>)\bSG\.[\w-]{8,}\.[\w-]{8,}"), "SG.***"),
    (re.compile(r"(?P<keep>\bBearer\s+)[\w.~+/=-]+", re.I), "***"),
    # The token of an unsubscribe or short link, in a request line of the access log.
    (re.compile(r"(?P<keep>/(?:unsubscribe|l)/)[^\s\"'?#]+"), "***"),
    # password=…, token=…, secret=…, api_key=… in queries, forms and settings dumps.
    (
        re.compile(
            r"(?P<keep>\b(?:password|passwd|pwd|token|secret|secret_key|api_key|auth_token)"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+",
            re.I,
        ),
        "***",
    ),
)


def redact(text: str) -> str:
    """``text`` with passwords in URLs, API keys and tokens replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(lambda m, r=replacement: m.group("keep") + r, text)
    return text


_installed = False


def redact_logs() -> None:
    """Redact every log record from now on, its message and its traceback (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        # Arguments are redacted one by one, so formatters that read them (uvicorn's
        # access log colours its parts) still find them in place.
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted(arg) for key, arg in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting)


def _redacted(value: Any) -> Any:
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned

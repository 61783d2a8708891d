"""Signed one-click rating links: "was your problem solved?" answered with 1 to 5.

A rating link names the message that asked and the value clicked:
``<public url>/rate/<token>/<value>``, where ``<token>`` is ``<message id, base 36>.<MAC>``
and the MAC (HMAC-SHA256 with the ``ratings`` purpose key, see :mod:`templates.signing`)
covers the message and its customer. So nobody can rate for a message or a customer they
did not get a link for; the value in the path is the customer's choice and is checked to be
1–5. A link is used once: the rating is stored as the event ``rating:<message id>``, and the
unique event id refuses a second one.

Opening a link only shows the choice with a button: link scanners in mail systems follow
links, and only the button's POST rates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Mapping

from templates.links import base36

__all__ = ["MAX_RATING", "MIN_RATING", "RatingLinks", "rating_event_id", "rating_token", "verify"]

MIN_RATING = 1
MAX_RATING = 5
_DIGEST_BYTES = 16


def _mac(key: str, message_id: int, customer_id: str) -> bytes:
    text = f"rating:{message_id}:{customer_id}".encode()
    return hmac.new(key.encode(), text, hashlib.sha256).digest()[:_DIGEST_BYTES]


def rating_token(key: str, message_id: int, customer_id: str) -> str:
    """The token of ``message_id``'s rating links for ``customer_id``."""
    mac = base64.urlsafe_b64encode(_mac(key, message_id, customer_id)).rstrip(b"=").decode()
    return f"{base36(message_id)}.{mac}"


MAX_MESSAGE_ID = 2**63 - 1


def message_of(token: str) -> int | None:
    """The message id a token names, unverified; None when it is malformed."""
    head = token.split(".", 1)[0]
    if not head or len(head) > 13 or not (head.isascii() and head.isalnum()):
        return None
    message_id = int(head, 36)
    # Thirteen base-36 digits reach past a database integer (2**63 - 1): no message's id.
    return message_id if message_id <= MAX_MESSAGE_ID else None


def verify(keys: list[str], token: str, message_id: int, customer_id: str) -> bool:
    """Whether ``token`` is a valid rating token for this message and customer."""
    try:
        _, encoded = token.split(".", 1)
        mac = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, UnicodeEncodeError):
        return False
    return any(hmac.compare_digest(mac, _mac(k, message_id, customer_id)) for k in keys)


def rating_event_id(message_id: int) -> str:
    """The id of the event a message's rating is stored as: one rating per message."""
    return f"rating:{message_id}"


class RatingLinks(Mapping[int, str]):
    """``links.rate[4]`` in a template: the link that rates 4; signed only when used."""

    def __init__(self, public_url: str, key: str, message_id: int, customer_id: str) -> None:
        self._base = public_url.rstrip("/")
        self._key = key
        self._message = message_id
        self._customer = customer_id

    def __getitem__(self, value: int) -> str:
        if value not in range(MIN_RATING, MAX_RATING + 1):
            raise KeyError(value)
        token = rating_token(self._key, self._message, self._customer)
        return f"{self._base}/rate/{token}/{value}"

    def __iter__(self) -> Iterator[int]:
        return iter(range(MIN_RATING, MAX_RATING + 1))

    def __len__(self) -> int:
        return MAX_RATING - MIN_RATING + 1

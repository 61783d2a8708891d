"""Signed unsubscribe links: a token per customer that nobody can guess or forge."""

from __future__ import annotations

import base64
import hashlib
import hmac

_DIGEST_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, customer_id: str) -> bytes:
    message = f"unsubscribe:{customer_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_DIGEST_BYTES]


def unsubscribe_token(secret: str, customer_id: str) -> str:
    """``<customer id, base64>.<HMAC>``; the MAC makes another customer's token unguessable."""
    return f"{_b64(customer_id.encode())}.{_b64(_mac(secret, customer_id))}"


def verify_unsubscribe_token(secret: str, token: str) -> str | None:
    """The customer id a valid token names, or None for anything tampered or malformed."""
    try:
        encoded_id, encoded_mac = token.split(".", 1)
        customer_id = _unb64(encoded_id).decode()
        mac = _unb64(encoded_mac)
    except (ValueError, UnicodeDecodeError):
        return None
    return customer_id if hmac.compare_digest(mac, _mac(secret, customer_id)) else None


def unsubscribe_url(public_url: str, secret: str, customer_id: str) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe/{unsubscribe_token(secret, customer_id)}"

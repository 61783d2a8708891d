"""Consent to marketing per channel and topic, and the signed links customers manage it with.

A customer's marketing consent is kept per channel (``email_consent``, ``sms_consent``) and,
within a channel, per topic: every journey names what its marketing is about (``topic:``,
one of :data:`TOPICS`; none counts as :data:`DEFAULT_TOPIC`). ``topic_consent`` on the
customer holds only the pairs a customer (or the shop's import) decided on, as
``{"email:offers": False}``; a pair not named follows the channel. So a customer who keeps
the free inspection reminders and drops offers has ``email_consent`` true and
``{"email:offers": False}``; one who leaves all has ``email_consent`` false, whatever the
topics say. Transactional messages need no consent at all.

The preference page and the unsubscribe link share one signed token per customer
(:func:`unsubscribe_token`): ``/unsubscribe/<token>`` and ``/preferences/<token>`` both
show the preference page; a POST to ``/unsubscribe/<token>`` (the page's "leave all" or
an RFC 8058 one-click) withdraws all marketing e-mail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache

__all__ = [
    "DEFAULT_TOPIC",
    "TOPICS",
    "chosen_topics",
    "consents_to",
    "preferences_url",
    "topic_key",
    "unsubscribe_token",
    "unsubscribe_url",
    "verify_unsubscribe_token",
    "with_topics",
]

# service: inspections, care tips, thank-yous; offers: coupons, loyalty, warranty extensions.
TOPICS = ("service", "offers")
DEFAULT_TOPIC = "offers"
_DIGEST_BYTES = 16


def topic_key(channel: str, topic: str) -> str:
    """The key of a channel and topic in ``topic_consent``: ``email:offers``."""
    return f"{channel}:{topic}"


def consents_to(
    channel_consent: bool, topic_consent: Mapping[str, bool] | None, channel: str, topic: str
) -> bool:
    """Whether a customer agreed to marketing on ``channel`` about ``topic``."""
    if not channel_consent:
        return False
    return bool((topic_consent or {}).get(topic_key(channel, topic), True))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, customer_id: str) -> bytes:
    message = f"unsubscribe:{customer_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_DIGEST_BYTES]


@lru_cache(maxsize=4096)
def unsubscribe_token(secret: str, customer_id: str) -> str:
    """``<customer id, base64>.<HMAC>``; the MAC makes another customer's token unguessable.

    Remembered: each message signs it at least twice (its unsubscribe and preference
    links), and a batch often holds several messages to one customer."""
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
    """The link in ``List-Unsubscribe`` and the footer: the preference page, one-click POST."""
    return f"{public_url.rstrip('/')}/unsubscribe/{unsubscribe_token(secret, customer_id)}"


def preferences_url(public_url: str, secret: str, customer_id: str) -> str:
    """The preference page (``links.preferences``), signed as the unsubscribe link is."""
    return f"{public_url.rstrip('/')}/preferences/{unsubscribe_token(secret, customer_id)}"


def chosen_topics(
    channel_consent: bool, topic_consent: Mapping[str, bool] | None, channel: str = "email"
) -> set[str]:
    """The topics a customer receives marketing about on ``channel``."""
    return {t for t in TOPICS if consents_to(channel_consent, topic_consent, channel, t)}


def with_topics(
    topic_consent: Mapping[str, bool] | None, channel: str, kept: set[str]
) -> dict[str, bool]:
    """``topic_consent`` with every topic of ``channel`` decided: those in ``kept`` yes."""
    merged = dict(topic_consent or {})
    merged.update({topic_key(channel, t): t in kept for t in TOPICS})
    return merged

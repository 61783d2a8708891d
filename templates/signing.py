"""Keys for what aftersale signs, each derived for one purpose from the project's secret.

One secret signs nothing itself: HKDF-SHA256 (RFC 5869) turns it into a key per purpose,
so a key recovered from one kind of signature (a customer's unsubscribe link, say) says
nothing about the keys of the others (console sessions, short links, coupon codes).

==============  ===============================================
purpose         signs
==============  ===============================================
``sessions``    the admin console's session cookie
``unsubscribe`` the token of each customer's unsubscribe link
``links``       the MAC of an SMS's short links
``coupons``     the personal coupon code of each enrolment
``guests``      the pseudonymous customer id of a shop's guest checkout
``experiments`` the hashes that hold customers out and draw their variants
``ratings``     the one-click rating links of a message asking for satisfaction
==============  ===============================================
"""

from __future__ import annotations

import base64
from functools import lru_cache

__all__ = ["PURPOSES", "purpose_key"]

PURPOSES = ("sessions", "unsubscribe", "links", "coupons", "guests", "experiments", "ratings")
_SALT = b"aftersale signing keys v1"


@lru_cache(maxsize=64)
def purpose_key(secret: str, purpose: str) -> str:
    """The key for ``purpose`` derived from ``secret``: 32 bytes, URL-safe base64."""
    if purpose not in PURPOSES:
        raise ValueError(f"no signing purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    if not secret:
        raise ValueError("a signing key needs a non-empty secret")
    from cryptography.hazmat.primitives import hashes  # loaded by the first key derived
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose.encode())
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode())).rstrip(b"=").decode()

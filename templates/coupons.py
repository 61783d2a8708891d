"""Coupon codes derived from a secret and an enrolment: stable, distinct, easy to type."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["COUPON_ALPHABET", "coupon_code"]

# 32 symbols without 0/O and 1/I, which customers confuse when typing a code.
COUPON_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def coupon_code(secret: str, enrolment_key: str, *, prefix: str = "AS", groups: int = 3) -> str:
    """Return a code like ``AS-7K3F-9QX2-M4TD`` for one enrolment.

    The code is HMAC-SHA256(secret, enrolment_key) written with 5 bits per symbol,
    so the same enrolment always gets the same code (a re-sent e-mail shows the
    same coupon) and nobody can derive a code without the secret. Three groups of
    four carry 60 bits: among a million enrolments the chance of any two codes
    colliding is below one in a million.
    """
    if not secret:
        raise ValueError("coupon_code needs a non-empty secret")
    digest = hmac.new(secret.encode(), enrolment_key.encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest, "big")
    symbols = []
    for _ in range(groups * 4):
        value, index = divmod(value, 32)
        symbols.append(COUPON_ALPHABET[index])
    chunks = ["".join(symbols[i : i + 4]) for i in range(0, len(symbols), 4)]
    return "-".join([prefix, *chunks]) if prefix else "-".join(chunks)

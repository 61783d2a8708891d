"""When to try a transient failure again."""

from __future__ import annotations

import random

MAX_ATTEMPTS = 5


def backoff_delay(
    attempt: int,
    *,
    base: float = 30.0,
    cap: float = 3600.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after ``attempt`` failed.

    Exponential backoff with full jitter (a uniform draw in ``[0, min(cap, base·2^(n-1))]``)
    spreads retries of many messages that failed together. A provider's ``retry_after``
    is a floor: retrying earlier would only be refused again.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    delay = (rng or random).uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay

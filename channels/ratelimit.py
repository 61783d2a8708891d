"""A per-channel send rate shared by every worker thread."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h|sec|min|hour)\s*$", re.IGNORECASE)


class RateLimiter:
    """A thread-safe token bucket: ``acquire()`` blocks until a send is allowed.

    Each caller reserves the next free slot under the lock and sleeps outside it, so
    threads are served in arrival order and none holds the lock while waiting. Up to
    ``burst`` sends may go out back to back after an idle spell.
    """

    def __init__(
        self,
        rate_per_second: float | None,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("a rate must be positive (use None for unlimited)")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate_per_second
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free: float | None = None

    @classmethod
    def parse(
        cls,
        spec: str | None,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RateLimiter:
        """Build from ``"10/s"``, ``"600/m"`` or ``"5000/h"``; ``None`` or ``""`` is unlimited."""
        if spec is None or not spec.strip():
            return cls(None, burst=burst, clock=clock, sleep=sleep)
        match = _RATE.match(spec)
        if not match:
            raise ValueError(f"rate {spec!r} must look like 10/s, 600/m or 5000/h")
        count, unit = float(match.group(1)), match.group(2)[0].lower()
        return cls(count / _UNITS[unit], burst=burst, clock=clock, sleep=sleep)

    @property
    def unlimited(self) -> bool:
        """True when no rate was set."""
        return self.rate is None

    def acquire(self) -> float:
        """Wait for a token; returns the seconds spent waiting."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def _reserve(self) -> float:
        if self.rate is None:
            return 0.0
        interval = 1.0 / self.rate
        with self._lock:
            now = self._clock()
            # An idle bucket refills up to ``burst`` tokens, no further.
            earliest = now - (self.burst - 1) * interval
            slot = earliest if self._next_free is None else max(self._next_free, earliest)
            self._next_free = slot + interval
        wait = slot - now
        # Float rounding leaves waits of 1e-13 s; they are not worth a sleep call.
        return wait if wait > 1e-9 else 0.0

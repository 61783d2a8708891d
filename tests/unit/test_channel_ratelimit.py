"""The per-channel token bucket, driven by a fake clock."""

from __future__ import annotations

import threading
import time

import pytest

from channels.ratelimit import RateLimiter


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def grants_within(limiter: RateLimiter, fake: FakeTime, window: float) -> int:
    """Acquire in a loop; count grants whose (virtual) time falls inside ``window``."""
    start, granted = fake.clock(), 0
    while True:
        limiter.acquire()
        if fake.clock() - start >= window:
            return granted
        granted += 1


@pytest.mark.parametrize(
    ("spec", "per_second"),
    [("10/s", 10), ("600/m", 10), ("36000/h", 10), ("2.5/s", 2.5), (" 5 / min ", 5 / 60)],
)
def test_parse(spec: str, per_second: float) -> None:
    assert RateLimiter.parse(spec).rate == pytest.approx(per_second)


@pytest.mark.parametrize("spec", ["10", "ten/s", "10/d", "0/s", "-1/s"])
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        RateLimiter.parse(spec)


@pytest.mark.parametrize("spec", [None, "", "  "])
def test_empty_is_unlimited(spec: str | None) -> None:
    limiter = RateLimiter.parse(spec, sleep=lambda s: pytest.fail("must not sleep"))

    assert limiter.unlimited
    assert all(limiter.acquire() == 0 for _ in range(1000))


@pytest.mark.parametrize(("spec", "window", "expected"), [("10/s", 3.0, 30), ("120/m", 60.0, 120)])
def test_rate_holds_over_a_window(spec: str, window: float, expected: int) -> None:
    fake = FakeTime()
    limiter = RateLimiter.parse(spec, clock=fake.clock, sleep=fake.sleep)

    assert grants_within(limiter, fake, window) == expected


def test_burst_after_idle_then_steady() -> None:
    fake = FakeTime()
    limiter = RateLimiter(5.0, burst=3, clock=fake.clock, sleep=fake.sleep)
    limiter.acquire()
    fake.sleep(10)  # idle: the bucket refills, but only up to the burst

    waits = [limiter.acquire() for _ in range(5)]

    assert waits[:3] == [0, 0, 0]
    assert waits[3:] == [pytest.approx(0.2), pytest.approx(0.2)]


def test_threads_share_one_rate() -> None:
    limiter = RateLimiter.parse("200/s")
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(15):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # 60 grants at 200/s need at least 59 intervals of 5 ms.
    assert len(stamps) == 60
    assert max(stamps) - started >= 59 / 200 - 0.01

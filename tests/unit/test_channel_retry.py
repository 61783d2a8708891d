"""Backoff for transient failures."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.retry import MAX_ATTEMPTS, backoff_delay


def test_defaults() -> None:
    assert MAX_ATTEMPTS == 5


@given(
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(min_value=0, max_value=2**32),
    retry_after=st.none() | st.floats(min_value=0, max_value=10_000),
)
def test_delay_is_within_bounds(attempt: int, seed: int, retry_after: float | None) -> None:
    delay = backoff_delay(attempt, retry_after=retry_after, rng=random.Random(seed))

    ceiling = min(3600.0, 30.0 * 2 ** (attempt - 1))
    assert 0 <= delay <= max(ceiling, retry_after or 0)
    if retry_after is not None:
        assert delay >= retry_after


def test_full_jitter_spreads_and_grows() -> None:
    rng = random.Random(3)
    first = [backoff_delay(1, rng=rng) for _ in range(2000)]
    fourth = [backoff_delay(4, rng=rng) for _ in range(2000)]

    assert max(first) <= 30 and max(fourth) <= 240
    assert sum(first) / 2000 == pytest.approx(15, rel=0.1)
    assert sum(fourth) / 2000 == pytest.approx(120, rel=0.1)
    assert min(fourth) < 30  # jitter reaches down to zero, not only the top band


def test_seeded_rng_is_reproducible() -> None:
    a = [backoff_delay(n, rng=random.Random(9)) for n in range(1, 6)]
    b = [backoff_delay(n, rng=random.Random(9)) for n in range(1, 6)]

    assert a == b


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0)

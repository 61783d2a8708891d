"""Micro-benchmark of ``ContactPolicy.decide`` on the dispatch hot path.

Run: ``python bench/bench_policy.py``. Prints microseconds per decision for the common
shapes: allowed at once, held by quiet hours, held by a cap, deferred across a weekend and
holiday. The dispatcher's budget is about 30 µs a decision.
"""

from __future__ import annotations

import timeit
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from campaigns.policy import (
    Candidate,
    Contact,
    ContactPolicy,
    FrequencyCap,
    PolicyRules,
    QuietHours,
    Recipient,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _scenarios() -> dict[str, tuple]:
    noon = datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN)
    history = [
        Contact("email" if i % 2 else "sms", noon - timedelta(days=5 * i + 5)) for i in range(6)
    ]
    recipient = Recipient("Europe/Berlin", {"email": True, "sms": True}, {})
    tokyo = Recipient("Asia/Tokyo", {"email": True, "sms": True}, {})
    capped = [Contact("email", noon - timedelta(hours=h)) for h in (30, 50)]
    christmas_eve = datetime(2026, 12, 24, 21, 0, tzinfo=BERLIN)
    email = Candidate("email", "marketing", noon, noon + timedelta(days=14))
    return {
        "allow (6 contacts, 2 caps)": (email, recipient, history, noon),
        "defer: quiet hours (Tokyo)": (email, tokyo, history, noon + timedelta(hours=2)),
        "defer: frequency cap": (email, recipient, capped, noon),
        "defer: holidays + Sunday": (
            Candidate("email", "marketing", christmas_eve),
            recipient,
            history,
            christmas_eve,
        ),
    }


def run(*, quick: bool = False, number: int = 20_000) -> dict[str, float]:
    """Microseconds per decision for each scenario."""
    number = 2_000 if quick else number
    policy = _policy()
    figures = {}
    for name, (candidate, recipient, history, now) in _scenarios().items():
        seconds = min(
            timeit.repeat(
                lambda: policy.decide(candidate, recipient, history, now),  # noqa: B023
                number=number,
                repeat=3,
            )
        )
        figures[f"{name} (µs)"] = round(seconds / number * 1e6, 2)
    return figures


def _policy() -> ContactPolicy:
    return ContactPolicy(
        PolicyRules(
            quiet_hours=QuietHours.parse("20:00-09:00"),
            quiet_days=frozenset({6}),
            public_holidays="DE",
            caps=(FrequencyCap.parse("email", 2, "7d"), FrequencyCap.parse("any", 3, "14d")),
        )
    )


def main(number: int = 20_000) -> None:
    """Time each scenario and print µs per decision."""
    policy = _policy()
    for name, (candidate, recipient, history, now) in _scenarios().items():
        decision = policy.decide(candidate, recipient, history, now)
        seconds = min(
            timeit.repeat(
                lambda: policy.decide(candidate, recipient, history, now),  # noqa: B023
                number=number,
                repeat=3,
            )
        )
        print(f"{name:32} {seconds / number * 1e6:6.2f} µs  {decision}")


if __name__ == "__main__":
    main()

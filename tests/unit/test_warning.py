"""Early warning on generated data: a planted spike is named, steady subjects are not."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.warning import AlertRules, Subject, find_alerts, rise_p_value

SKUS = [f"SKU-{n}" for n in range(12)]
WEEKS = 30  # 180 days of baseline and 30 recent days, in weeks of generated orders
BASE_RATE = 0.01


def generated(seed: int, spiked: str | None, *, orders_per_week: int = 1000) -> list[Subject]:
    """Orders and complaints per SKU: steady at 1 %, the spiked SKU tripled recently."""
    rng = random.Random(seed)
    subjects = []
    recent_weeks = 30 / 7
    for sku in SKUS:
        s = Subject("sku", sku)
        for week in range(WEEKS + 5):
            orders = orders_per_week + rng.randint(-100, 100)
            recent = week >= WEEKS + 5 - recent_weeks
            rate = BASE_RATE * (3 if recent and sku == spiked else 1)
            complaints = sum(rng.random() < rate for _ in range(orders))
            if recent:
                s.recent_exposures += orders
                s.recent_complaints += complaints
            else:
                s.baseline_exposures += orders
                s.baseline_complaints += complaints
        subjects.append(s)
    return subjects


@pytest.mark.parametrize("seed", range(40))
def test_a_tripled_sku_is_named_and_no_other(seed: int) -> None:
    spiked = SKUS[seed % len(SKUS)]
    alerts = find_alerts(generated(seed, spiked))
    assert [(a.name, a.reason) for a in alerts] == [(spiked, "rising")]
    assert alerts[0].p_value < 0.001 / len(SKUS)  # shown with the alert


@pytest.mark.parametrize("seed", range(40, 60))
def test_steady_complaints_raise_nothing(seed: int) -> None:
    assert find_alerts(generated(seed, None)) == []


@settings(max_examples=200, deadline=None)
@given(
    recent=st.integers(0, 500), recent_n=st.integers(1, 10_000),
    base=st.integers(0, 500), base_n=st.integers(1, 10_000),
)  # fmt: skip
def test_fewer_recent_complaints_never_look_more_alarming(recent, recent_n, base, base_n):
    more = Subject("sku", "a", recent + 1, recent_n, base, base_n)
    fewer = Subject("sku", "a", recent, recent_n, base, base_n)
    assert 0.0 <= rise_p_value(more) <= rise_p_value(fewer) <= 1.0


def test_a_ceiling_alerts_without_a_rise_and_needs_enough_orders() -> None:
    steady = Subject("category", "appliance", 6, 100, 60, 1000)  # 60 per 1,000 throughout
    rules = AlertRules(ceiling=50)
    (alert,) = find_alerts([steady], rules)
    assert (alert.reason, alert.recent_rate) == ("ceiling", 60.0)
    assert find_alerts([Subject("category", "x", 2, 20, 0, 100)], rules) == []  # 20 orders
    assert find_alerts([steady]) == []  # no ceiling configured


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"alpha": 2}, "alerts.alpha: must be below 1"),
        ({"ceiling": "high"}, "alerts.ceiling: must be a number > 0"),
        ({"window_days": 0}, "alerts.window_days: must be a whole number >= 1"),
        ({"email": "yes"}, "alerts.email: must be true or false"),
        ({"colour": 1}, "alerts.colour: unknown setting"),
    ],
)
def test_bad_alert_settings_name_their_key(config, message) -> None:
    with pytest.raises(ValueError, match=message):
        AlertRules.from_config(config)

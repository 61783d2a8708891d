"""Holdout and variant assignment, and the statistics on simulated worlds with a planted effect.

The worlds are pure Python (no engine): customers are split by the real keyed hash, treated
ones convert with a known higher probability, and the report's own functions judge them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import random

import pytest

from aftersale.uplift import Outcome, beats, compare, compare_variants, customers_needed
from campaigns.experiments import assign, choose_variant, held_out, parse_share
from campaigns.journeys import Journey
from templates.signing import purpose_key

SECRET = "world-secret"
SEEDS = range(200)
PINNED_CONTROL = ["c0", "c3", "c4", "c6", "c7", "c9"]


def world(seed: int, *, customers: int, share: float, base: float, effect: float,
          offer_cost: float = 0.0) -> tuple[list[Outcome], list[Outcome]]:  # fmt: skip
    """One shop: who is held out follows the hash; conversion is Bernoulli, order values vary."""
    rng = random.Random(seed)
    treated: list[Outcome] = []
    control: list[Outcome] = []
    for is_control in groups(customers, share):
        converted = rng.random() < base + (0 if is_control else effect)
        revenue = rng.uniform(50, 150) if converted else 0.0
        cost = 0.0 if is_control else 0.001 + (offer_cost if converted else 0.0)
        (control if is_control else treated).append(Outcome(converted, revenue, cost))
    return treated, control


@functools.cache
def groups(customers: int, share: float) -> tuple[bool, ...]:
    """Who is held out, by the real keyed hash (the same shop in every world)."""
    return tuple(held_out(SECRET, "offer", f"c{i}", share) for i in range(customers))


def test_the_uplift_interval_covers_the_planted_effect_in_at_least_90_percent_of_worlds():
    covered = revenue_covered = 0
    for seed in SEEDS:
        treated, control = world(seed, customers=3000, share=0.2, base=0.10, effect=0.03)
        result = compare(treated, control, share=0.2, margin=0.25)
        covered += result.uplift_rate.covers(0.03)
        revenue_covered += result.uplift_revenue.covers(0.03 * 100)  # mean order value 100
    assert covered / len(SEEDS) >= 0.90
    assert revenue_covered / len(SEEDS) >= 0.90


def test_a_journey_without_effect_is_not_called_paying_in_at_least_90_percent_of_worlds():
    honest = 0
    for seed in SEEDS:
        treated, control = world(seed, customers=3000, share=0.2, base=0.10, effect=0.0,
                                 offer_cost=5.0)  # fmt: skip
        verdict = compare(treated, control, share=0.2, margin=0.25).verdict
        honest += verdict == "does not pay" or verdict.startswith("not enough data yet")
    assert honest / len(SEEDS) >= 0.90


def test_a_large_effect_on_a_large_shop_pays_in_most_worlds():
    pays = sum(
        compare(*world(seed, customers=5000, share=0.2, base=0.10, effect=0.08), share=0.2,
                margin=0.5).verdict == "pays"
        for seed in range(40)
    )  # fmt: skip
    assert pays / 40 >= 0.9


def test_a_small_shop_is_told_how_many_more_customers_it_needs():
    treated, control = world(1, customers=400, share=0.1, base=0.10, effect=0.0)
    result = compare(treated, control, share=0.1, margin=0.25)
    split = result.control.customers / 400  # as it came out, near the planned tenth
    needed = customers_needed(result.control.conversion_rate.estimate, split)
    assert result.verdict.startswith("not enough data yet: about ")
    assert result.verdict.endswith("more customers needed to detect a 2-point uplift")
    assert result.more_customers_needed == needed - 400
    # A bigger control group needs fewer customers for the same answer.
    assert customers_needed(0.10, 0.5) < needed


def test_intervals_are_unbounded_rather_than_invented_for_empty_groups():
    result = compare([Outcome(True, 100.0)], [], share=0.1, margin=1)
    assert result.incremental_profit.to_dict()["low"] is None
    assert result.verdict.startswith("not enough data yet")


# ------------------------------------------------------------------------- variants


def test_p_best_of_a_clearly_better_variant_is_high_and_of_an_equal_one_about_even():
    better, equal = compare_variants([("a", 2000, 200), ("b", 2000, 280), ("c", 2000, 200)])[1:]
    assert better.p_best > 0.99
    assert 0.45 < equal.p_best < 0.55
    assert beats(10, 100, 30, 100) < 0.01


def test_variant_rate_intervals_cover_the_planted_rate_in_most_worlds():
    covered = 0
    for seed in range(100):
        rng = random.Random(seed)
        k = sum(rng.random() < 0.12 for _ in range(800))
        covered += compare_variants([("a", 800, k)])[0].conversion_rate.covers(0.12)
    assert covered >= 90


# ----------------------------------------------------------------------- assignment


def test_the_holdout_share_is_kept_and_assignment_depends_only_on_journey_and_customer():
    ids = [f"c{i}" for i in range(20000)]
    control = [c for c in ids if held_out(SECRET, "loyalty_offer", c, 0.1)]
    assert 0.09 < len(control) / len(ids) < 0.11
    # Same answer every time; another journey or secret draws another group.
    assert control == [c for c in ids if held_out(SECRET, "loyalty_offer", c, 0.1)]
    assert control != [c for c in ids if held_out(SECRET, "warranty", c, 0.1)]
    assert control != [c for c in ids if held_out("other", "loyalty_offer", c, 0.1)]
    # Growing the share keeps everyone who was held out held out.
    assert set(control) <= {c for c in ids if held_out(SECRET, "loyalty_offer", c, 0.2)}


def _raw_unit(key: bytes, *parts: str) -> float:
    digest = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def test_assignment_is_keyed_with_the_experiments_key_never_the_secret_itself():
    ids = [f"c{i}" for i in range(2000)]
    derived = purpose_key(SECRET, "experiments").encode()
    control = [c for c in ids if held_out(SECRET, "offer", c, 0.5)]
    assert control == [c for c in ids if _raw_unit(derived, "holdout", "offer", c) < 0.5]
    assert control != [c for c in ids if _raw_unit(SECRET.encode(), "holdout", "offer", c) < 0.5]
    # Stable: the same customers, every time and in every process (pinned).
    assert control[:6] == PINNED_CONTROL


def journey(text_holdout: str = "10%", variants: list | None = None) -> Journey:
    step = {"id": "offer", "send": {"channel": "email", "template": "loyalty_offer"}}
    if variants:
        step["variants"] = variants
    return Journey.model_validate({"id": "offer", "trigger": {"event": "purchase"},
                                   "holdout": text_holdout, "steps": [step]})  # fmt: skip


def test_versions_of_a_journey_hold_out_the_same_customers():
    first = journey("10%")
    edited = journey("10 %", variants=[{"id": "a", "subject": "x"}, {"id": "b", "subject": "y"}])
    assert first.digest() != edited.digest()
    for i in range(2000):
        a = assign(first, "offer", "marketing", f"c{i}", SECRET)
        b = assign(edited, "offer", "marketing", f"c{i}", SECRET)
        assert a.held_out == b.held_out
        assert not assign(first, "offer", "transactional", f"c{i}", SECRET).held_out


def test_variants_are_drawn_in_proportion_to_their_weights_and_stay_put():
    j = journey("0%", [{"id": "a", "subject": "x", "weight": 1},
                       {"id": "b", "subject": "y", "weight": 3}])  # fmt: skip
    variants = j.step("offer").variants
    drawn = [choose_variant(SECRET, "offer", "offer", f"c{i}", variants).id for i in range(8000)]
    assert 0.72 < drawn.count("b") / len(drawn) < 0.78
    assert drawn == [assign(j, "offer", "marketing", f"c{i}", SECRET).variant.id
                     for i in range(8000)]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "share"), [("10%", 0.1), ("10 %", 0.1), (0.25, 0.25), (50, 0.5), ("0%", 0.0)]
)
def test_holdout_shares(value, share):
    assert parse_share(value) == pytest.approx(share)


@pytest.mark.parametrize("value", ["80%", "51%", "-5%", "a tenth", True])
def test_holdout_shares_refused(value):
    with pytest.raises(ValueError):
        parse_share(value)


# --------------------------------------------------------------------- goals and costs


def parsed(extra: str):
    from campaigns.journeys import parse_journey

    text = ("id: j\ntrigger: {event: purchase}\n" + extra +
            "steps:\n  - id: s\n    send: {channel: email, template: loyalty_offer}\n")  # fmt: skip
    return parse_journey(text, "j.yaml")


@pytest.mark.parametrize(
    ("extra", "cost"),
    [("offer_cost: 35.00\n", "35.00"), ("offer_cost: offer.discount\n", "7.5"),
     ("offer_cost: value * 0.1\n", "12.9"), ("", "0")],
)  # fmt: skip
def test_offer_cost_is_a_number_or_an_expression_over_the_conversion(extra, cost):
    from decimal import Decimal

    from campaigns.journeys import conversion_context, offer_cost

    journey, problems = parsed("goal: coupon_redeemed\n" + extra)
    assert problems == []
    event = {"type": "coupon_redeemed", "value": Decimal("129.00"), "offer": {"discount": 7.5}}
    assert offer_cost(journey, conversion_context(event)) == pytest.approx(Decimal(cost))
    assert journey.goal_event == "coupon_redeemed"


@pytest.mark.parametrize(
    ("extra", "message"),
    [("offer_cost: -5\n", "offer_cost must not be negative"),
     ("offer_cost: offer.discont\n", "gave None, not an amount"),
     ("offer_cost: true\n", "offer_cost is a number or an expression"),
     ("goal: bought\n", "unknown goal event 'bought'")],
)  # fmt: skip
def test_bad_goals_and_costs_are_refused_with_their_line(extra, message):
    journey, problems = parsed(extra)
    assert journey is None
    assert [p.line for p in problems] == [3] and message in problems[0].message


def test_a_step_lists_two_distinct_variants_that_change_something():
    from campaigns.journeys import parse_journey

    for variants, message in [
        ("[{id: a, subject: x}]", "at least two"),
        ("[{id: a, subject: x}, {id: a, subject: y}]", "variant ids must differ"),
        ("[{id: a, subject: x}, {id: b, weight: 2}]", "neither a template nor a subject"),
        ("[{id: a, subject: x}, {id: b, subject: '{{ customer.first_name'}]", "syntax error"),
    ]:
        text = ("id: j\ntrigger: {event: purchase}\nsteps:\n  - id: s\n"
                "    send: {channel: email, template: loyalty_offer}\n"
                f"    variants: {variants}\n")  # fmt: skip
        journey, problems = parse_journey(text, "j.yaml")
        assert journey is None and message in problems[0].message and problems[0].line == 6


def test_an_sms_step_has_no_subject_to_vary():
    from campaigns.journeys import parse_journey

    text = ("id: j\ntrigger: {event: purchase}\nsteps:\n  - id: s\n"
            "    send: {channel: sms, template: warranty_reminder}\n"
            "    variants: [{id: a, subject: x}, {id: b, template: inspection_reminder}]\n")  # fmt: skip
    journey, problems = parse_journey(text, "j.yaml")
    assert journey is None and "has no subject to vary" in problems[0].message

"""What a journey's holdout says: treated against control, with 95 % intervals and a verdict.

The inputs are per customer, one :class:`Outcome` each, split into the treated (customers
of the journey who were not held out) and the control group (held out). The figures:

- conversion rate of each group: Wilson score interval;
- uplift of the conversion rate (treated minus control): Newcombe's hybrid score interval;
- revenue per customer of each group and its uplift: Welch's t interval (unequal variances);
- incremental profit: the difference of mean profit per customer (margin x revenue, less
  what the journey gave away and what its messages cost; the control group was given and
  sent nothing) times the treated customers, with Welch's interval scaled the same way.

The verdict reads the profit interval: above zero "pays", below zero "does not pay". Across
zero, the question is whether the experiment could have seen a 2-point uplift of the
conversion rate at 80 % power: if not, "not enough data yet: about N more customers needed
to detect a 2-point uplift" (for the split between the groups as it came out); if it could,
the journey "does not pay" (no uplift that would matter showed). The statistics come from statsmodels; nothing here reads the database.

Variants: each variant's conversion rate with its Wilson interval, and ``p_best``, the
posterior probability (uniform Beta(1, 1) priors) that its rate beats the first variant's;
None for the first variant itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ALPHA = 0.05
POWER = 0.8
DETECTABLE_UPLIFT = 0.02  # two percentage points


@dataclass(frozen=True)
class Outcome:
    """One customer of an experiment: converted or not, revenue and what they cost."""

    converted: bool
    revenue: float = 0.0
    cost: float = 0.0  # offer and message costs (treated customers only)


@dataclass(frozen=True)
class Estimate:
    estimate: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float | None]:
        """For JSON: an unbounded end (too few customers) is null."""
        return {k: round(v, 6) if math.isfinite(v) else None for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GroupFigures:
    customers: int
    conversions: int
    conversion_rate: Estimate
    revenue: float
    revenue_per_customer: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "conversions": self.conversions,
            "conversion_rate": self.conversion_rate.to_dict(),
            "revenue": self.revenue_per_customer.to_dict(),  # per customer
            "revenue_total": round(self.revenue, 2),
        }


@dataclass(frozen=True)
class HoldoutResult:
    share: float
    treated: GroupFigures
    control: GroupFigures
    uplift_rate: Estimate
    uplift_revenue: Estimate
    incremental_revenue: Estimate
    incremental_cost: float
    incremental_profit: Estimate
    verdict: str
    more_customers_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "treated": self.treated.to_dict(),
            "control": self.control.to_dict(),
            "uplift": {
                "conversion_rate": self.uplift_rate.to_dict(),
                "revenue_per_customer": self.uplift_revenue.to_dict(),
            },
            "incremental_revenue": self.incremental_revenue.to_dict(),
            "incremental_cost": round(self.incremental_cost, 2),
            "incremental_profit": self.incremental_profit.to_dict(),
            "verdict": self.verdict,
        }


def rate(conversions: int, customers: int) -> Estimate:
    """A conversion rate with its Wilson score interval."""
    from statsmodels.stats.proportion import proportion_confint

    if customers == 0:
        return Estimate(0.0, 0.0, 1.0)
    low, high = proportion_confint(conversions, customers, alpha=ALPHA, method="wilson")
    return Estimate(conversions / customers, float(low), float(high))


def rate_difference(k1: int, n1: int, k0: int, n0: int) -> Estimate:
    """Treated minus control conversion rate, Newcombe's hybrid score interval."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    if n1 == 0 or n0 == 0:
        return Estimate(0.0, -1.0, 1.0)
    low, high = confint_proportions_2indep(k1, n1, k0, n0, method="newcomb", alpha=ALPHA)
    return Estimate(k1 / n1 - k0 / n0, float(low), float(high))


def mean(values: Sequence[float]) -> Estimate:
    """A mean with its t interval."""
    from statsmodels.stats.weightstats import DescrStatsW

    if not values:
        return Estimate(0.0, 0.0, 0.0)
    m = math.fsum(values) / len(values)
    if len(values) < 2 or _constant(values):
        return Estimate(m, m, m)
    low, high = DescrStatsW(list(values)).tconfint_mean(alpha=ALPHA)
    return Estimate(m, float(low), float(high))


def mean_difference(treated: Sequence[float], control: Sequence[float]) -> Estimate:
    """Difference of means, Welch's t interval; unbounded while a group has under 2."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    if len(treated) < 2 or len(control) < 2:
        return Estimate(0.0, -math.inf, math.inf)
    diff = math.fsum(treated) / len(treated) - math.fsum(control) / len(control)
    if _constant(treated) and _constant(control):
        return Estimate(diff, diff, diff)
    compare = CompareMeans(DescrStatsW(list(treated)), DescrStatsW(list(control)))
    low, high = compare.tconfint_diff(alpha=ALPHA, usevar="unequal")
    return Estimate(diff, float(low), float(high))


def _constant(values: Sequence[float]) -> bool:
    first = values[0]
    return all(v == first for v in values)


def customers_needed(control_rate: float, share: float) -> int:
    """Customers (both groups) needed to detect a 2-point uplift at 80 % power."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    base = min(max(control_rate, 0.01), 1 - DETECTABLE_UPLIFT - 1e-6)
    effect = proportion_effectsize(base + DETECTABLE_UPLIFT, base)
    ratio = share / (1 - share)  # control customers per treated customer
    treated = NormalIndPower().solve_power(
        effect_size=effect, alpha=ALPHA, power=POWER, ratio=ratio, alternative="two-sided"
    )
    return math.ceil(float(treated) * (1 + ratio))


def compare(
    treated: Sequence[Outcome], control: Sequence[Outcome], *, share: float, margin: float
) -> HoldoutResult:
    """Treated against control: rates, uplift, incremental revenue and profit, verdict."""
    n1, n0 = len(treated), len(control)
    k1 = sum(o.converted for o in treated)
    k0 = sum(o.converted for o in control)
    rev1, rev0 = [o.revenue for o in treated], [o.revenue for o in control]
    uplift_revenue = mean_difference(rev1, rev0)
    profit = mean_difference([margin * o.revenue - o.cost for o in treated],
                             [margin * o.revenue - o.cost for o in control])  # fmt: skip
    cost = math.fsum(o.cost for o in treated) - math.fsum(o.cost for o in control)
    observed = n0 / (n0 + n1) if n0 and n1 else share  # the split as it came out
    verdict, needed = _verdict(profit, k0 / n0 if n0 else 0.0, n1 + n0, observed)
    return HoldoutResult(
        share=share,
        treated=_group(k1, rev1),
        control=_group(k0, rev0),
        uplift_rate=rate_difference(k1, n1, k0, n0),
        uplift_revenue=uplift_revenue,
        incremental_revenue=_scaled(uplift_revenue, n1),
        incremental_cost=cost,
        incremental_profit=_scaled(profit, n1),
        verdict=verdict,
        more_customers_needed=needed,
    )


def _group(conversions: int, revenues: list[float]) -> GroupFigures:
    return GroupFigures(
        customers=len(revenues),
        conversions=conversions,
        conversion_rate=rate(conversions, len(revenues)),
        revenue=math.fsum(revenues),
        revenue_per_customer=mean(revenues),
    )


def _scaled(per_customer: Estimate, customers: int) -> Estimate:
    return Estimate(per_customer.estimate * customers, per_customer.low * customers,
                    per_customer.high * customers)  # fmt: skip


def _verdict(
    profit: Estimate, control_rate: float, customers: int, share: float
) -> tuple[str, int | None]:
    if profit.low > 0:
        return "pays", None
    if profit.high < 0:
        return "does not pay", None
    if share <= 0:
        return "not enough data yet: nobody is held out", None
    missing = customers_needed(control_rate, share) - customers
    if missing > 0:
        return (
            f"not enough data yet: about {missing:,} more customers needed "
            f"to detect a {DETECTABLE_UPLIFT * 100:.0f}-point uplift",
            missing,
        )
    return "does not pay", None


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class VariantFigures:
    id: str
    sent: int
    conversions: int
    conversion_rate: Estimate
    p_best: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sent": self.sent,
            "conversions": self.conversions,
            "conversion_rate": self.conversion_rate.to_dict(),
            "p_best": None if self.p_best is None else round(self.p_best, 4),
        }


def compare_variants(counts: Sequence[tuple[str, int, int]]) -> list[VariantFigures]:
    """``(id, sent, conversions)`` per variant, the first being the one to beat."""
    if not counts:
        return []
    _, n0, k0 = counts[0]
    return [
        VariantFigures(vid, n, k, rate(k, n), None if i == 0 else beats(k, n, k0, n0))
        for i, (vid, n, k) in enumerate(counts)
    ]


def beats(k1: int, n1: int, k0: int, n0: int) -> float:
    """P(rate 1 > rate 0) under Beta(1 + k, 1 + n - k) posteriors, integrated numerically."""
    from scipy import integrate, stats

    a, b = stats.beta(1 + k1, 1 + n1 - k1), stats.beta(1 + k0, 1 + n0 - k0)
    low = min(a.ppf(1e-9), b.ppf(1e-9))
    high = max(a.ppf(1 - 1e-9), b.ppf(1 - 1e-9))
    value, _ = integrate.quad(lambda x: a.pdf(x) * b.cdf(x), low, high, limit=200)
    return min(1.0, max(0.0, float(value)))

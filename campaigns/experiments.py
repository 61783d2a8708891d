"""Experiments: who is held out of a journey, and which variant of a step a customer gets.

Inputs: the journey (its ``holdout`` share and the step's ``variants``), the customer's id,
and the project's secret key. Nothing else: no clock, no database, no randomness.

Rules, in order, for a message that falls due:

1. **Holdout.** A journey may hold out a share of its customers (``holdout: 10%``, from 0 to
   50 %). Whether a customer is held out is decided by a keyed hash (HMAC-SHA-256 with the
   ``experiments`` key derived from the project's secret, :mod:`templates.signing`; never
   the secret itself) of the journey's id and the customer's id: the same answer for every
   version of the journey, every re-entry and every dispatcher, and nobody can steer into or
   out of the control group without the secret. A held-out customer's enrolment is planned as
   usual; each of its marketing messages ends ``skipped`` with reason ``holdout`` at its due
   time, before the contact policy is asked, so it counts against no cap. Transactional
   messages are owed to the customer and are never held out.
2. **Variant.** A step may list ``variants`` (``id``, ``template`` and/or ``subject``,
   ``weight``). The variant is drawn from a second keyed hash of (journey, step, customer),
   in proportion to the weights: the same customer always gets the same variant of a step,
   and changing one variant's weight moves only the customers on the boundary it shifts.

Changing the secret key reshuffles both assignments; keep it as long as an experiment runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from templates.signing import purpose_key

HOLDOUT = "holdout"
MAX_HOLDOUT = 0.5


class VariantLike(Protocol):
    id: str
    template: str | None
    subject: Any
    weight: float


@dataclass(frozen=True)
class Assignment:
    """What a due message of a customer is: held out, or sent (with a variant, or without)."""

    held_out: bool = False
    variant: VariantLike | None = None


SEND = Assignment()


def parse_share(value: Any) -> float:
    """``"10%"``, ``"10 %"``, ``10`` (per cent) or ``0.1``; between 0 and 50 %."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a share such as 10%")
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a share such as 10%") from None
    if not text.endswith("%") and share > 1:
        share /= 100
    if not 0 <= share <= MAX_HOLDOUT:
        raise ValueError(f"holdout {text} is outside 0-50 %")
    return share


def _unit(secret: str, *parts: str) -> float:
    """A number in [0, 1) fixed by ``parts`` and the secret, and unguessable without it.

    The hash is keyed with the secret's ``experiments`` key (derived once per secret and
    cached), so an assignment reveals nothing about the keys that sign links or sessions.
    """
    message = "\x1f".join(parts).encode()
    key = purpose_key(secret, "experiments").encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out(secret: str, journey_id: str, customer_id: str, share: float) -> bool:
    """Whether the customer is in the journey's control group (rule 1)."""
    return share > 0 and _unit(secret, HOLDOUT, journey_id, customer_id) < share


def choose_variant(
    secret: str, journey_id: str, step_id: str, customer_id: str, variants: Sequence[VariantLike]
) -> VariantLike | None:
    """The customer's variant of a step, in proportion to the weights (rule 2)."""
    if not variants:
        return None
    point = _unit(secret, "variant", journey_id, step_id, customer_id) * sum(
        v.weight for v in variants
    )
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


def assign(journey: Any, step_id: str, category: str, customer_id: str, secret: str) -> Assignment:
    """Rules 1 and 2 for one due message of ``journey`` (a :class:`campaigns.journeys.Journey`)."""
    if journey is None:
        return SEND
    if category == "marketing" and held_out(secret, journey.id, customer_id, journey.holdout_share):
        return Assignment(held_out=True)
    step = journey.step(step_id)
    variants = step.variants if step is not None and step.variants else ()
    if not variants:
        return SEND
    return Assignment(variant=choose_variant(secret, journey.id, step_id, customer_id, variants))

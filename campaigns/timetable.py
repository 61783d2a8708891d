"""Timetables: when each step of an enrolment falls due, worked out from its anchors.

Pure computation, no database: ``plan_steps`` gives every (step, occurrence, due, expires)
of an enrolment; ``PlanCache`` keeps timetables relative to the trigger, so that planning an
enrolment is mostly shifting a known one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from campaigns.durations import Duration, add_months, is_duration, parse_span
from campaigns.journeys import Journey, Step, resolve_duration

__all__ = ["add_months", "plan_steps", "PlanCache", "RelativePlan"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, compact, and cheap in JSON."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def find_entry(schedule: Sequence[Sequence[Any]] | None, step: str, occurrence: int) -> int:
    """The index of (step, occurrence) in a timetable, or -1."""
    for index, entry in enumerate(schedule or ()):
        if entry[0] == step and entry[1] == occurrence:
            return index
    return -1


def previous_step(journey: Journey, step: Step) -> Step | None:
    """The step listed before ``step`` — what ``from: previous`` and ``previous.*`` mean."""
    index = journey.steps.index(step)
    return journey.steps[index - 1] if index > 0 else None


def waits_for_previous(journey: Journey, step: Step) -> bool:
    """Whether ``step`` is timed from the outcome of the previous step's message."""
    return step.from_ == "previous" or (step.from_ is None and journey.steps[0] is not step)


def rebased(
    step: Step, due: datetime, deadline: datetime | None, shift: timedelta
) -> tuple[datetime, datetime | None]:
    """A timetable entry of ``step`` moved by ``shift``, with its expiry worked out again.

    ``deadline`` is the warranty's end for a step that expires then (None otherwise).
    """
    due += shift
    return due, _expiry(step, due, deadline)


def plan_steps(
    journey: Journey,
    trigger_at: datetime,
    order: Mapping[str, Any],
    item: Mapping[str, Any] | None,
    ctx: Mapping[str, Any],
) -> list[tuple[Step, int, datetime, datetime | None]]:
    """Every (step, occurrence, due, expires) of an enrolment started at ``trigger_at``."""
    return _plan(journey, step_durations(journey, ctx), *_anchors(trigger_at, order, item))


def _anchors(
    trigger_at: datetime, order: Mapping[str, Any], item: Mapping[str, Any] | None
) -> tuple[datetime, datetime, datetime | None]:
    """The times a step can wait from: the trigger, the purchase and the warranty's end."""
    warranty_end = item.get("warranty_end") if item else None
    return trigger_at, order.get("purchased_at") or trigger_at, warranty_end


def step_durations(journey: Journey, ctx: Mapping[str, Any]) -> tuple[Any, ...]:
    """Each step's (wait, every) in this context, or None where an expression fails."""
    memo: dict[str, Duration] = {}  # the same expression often serves several steps
    durations: list[tuple[Duration, Duration | None] | None] = []
    for step in journey.steps:
        try:
            wait = _duration(memo, step.wait, ctx)
            every = _duration(memo, step.repeat.every, ctx) if step.repeat else None
        except Exception:  # noqa: BLE001 - an expression that fails for this item plans nothing
            durations.append(None)
            continue
        durations.append((wait, every))
    return tuple(durations)


def _plan(
    journey: Journey,
    durations: Sequence[Any],
    trigger_at: datetime,
    purchased_at: datetime,
    warranty_end: datetime | None,
) -> list[tuple[Step, int, datetime, datetime | None]]:
    planned: list[tuple[Step, int, datetime, datetime | None]] = []
    previous: list[datetime] = []
    for index, (step, resolved) in enumerate(zip(journey.steps, durations, strict=True)):
        if resolved is None:
            previous = []
            continue
        wait, every = resolved
        source = step.from_ or ("trigger" if index == 0 else "previous")
        times = _occurrence_limit(step)
        within = (
            parse_span(step.repeat.within).after(trigger_at)
            if step.repeat and step.repeat.within
            else None
        )
        dues: list[datetime] = []
        for k in range(times):
            if source == "previous":
                if not previous:
                    break
                anchor = previous[min(k, len(previous) - 1)]
                extra = (k - len(previous) + 1) if k >= len(previous) else 0
                due = wait.after(anchor)
                due = every.after(due, extra) if every else due
            else:
                anchor = {
                    "trigger": trigger_at,
                    "purchase": purchased_at,
                    "warranty_end": warranty_end,
                }[source]
                if anchor is None:
                    break
                due = wait.after(anchor)
                due = every.after(due, k) if every else due
            if within is not None and due > within:
                break
            dues.append(due)
        for k, due in enumerate(dues, start=1):
            expires = _expiry(step, due, warranty_end)
            if due < trigger_at or (expires is not None and expires <= due):
                continue  # already too late when the customer enrolled: nothing to plan
            planned.append((step, k, due, expires))
        previous = dues
    return planned


# Timetables are worked out relative to the trigger, once for each combination of what they
# depend on: the steps' durations and where the purchase and the warranty's end lie from the
# trigger. Times only ever add up, so shifting the result back is exact.
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
_PLANS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class RelativePlan:
    """An enrolment's timetable in due order, as offsets from its trigger."""

    journey: Journey
    entries: tuple[tuple[Step, int, timedelta, timedelta | None], ...]
    # (step id, occurrence, due, expires) offsets in microseconds; an entry that is timed
    # from the previous step and expires with the warranty also carries the warranty's end,
    # to work its expiry out again when it is rebased (``deadlines`` says whether any does).
    micros: tuple[tuple[Any, ...], ...]
    deadlines: bool = False


class PlanCache:
    """Timetables relative to the trigger, by journey and everything else they depend on.

    A shop's purchases mostly share a handful of shapes (the same durations, a warranty of
    the same length), so planning an enrolment is mostly shifting a known timetable.
    """

    def __init__(self, kept: int = _PLANS_KEPT) -> None:
        self.kept = kept
        self._plans: dict[tuple[Any, ...], RelativePlan] = {}
        self._fixed_limits: dict[int, tuple[Journey, bool]] = {}
        # durations -> whether any of them counts calendar months
        self._counts_months: dict[tuple[Any, ...], bool] = {}
        # id(journey) -> (journey, its durations when none depends on the context, else None,
        # and then whether they count calendar months)
        self._fixed: dict[int, tuple[Journey, tuple[Any, ...] | None, bool]] = {}

    def timetable(
        self,
        journey: Journey,
        trigger_at: datetime,
        order: Mapping[str, Any],
        item: Mapping[str, Any] | None,
        ctx: Mapping[str, Any],
    ) -> RelativePlan:
        fixed = self._fixed.get(id(journey))
        if fixed is None or fixed[0] is not journey:
            durations = _fixed_durations(journey)
            calendar = durations is not None and self._calendar_dependent(journey, durations)
            fixed = self._fixed[id(journey)] = (journey, durations, calendar)
        if fixed[1] is not None:  # the same for every enrolment: decided once, keyed by None
            durations, calendar, durations_key = fixed[1], fixed[2], None
        else:
            durations = durations_key = step_durations(journey, ctx)
            # Months and years are calendar steps: their timetable holds for its trigger only.
            calendar = self._calendar_dependent(journey, durations)
        _, purchased_at, warranty_end = _anchors(trigger_at, order, item)
        key = (
            id(journey),
            durations_key,
            purchased_at - trigger_at,
            None if warranty_end is None else warranty_end - trigger_at,
            trigger_at if calendar else None,
        )
        plan = self._plans.get(key)
        if plan is None or plan.journey is not journey:
            if len(self._plans) >= self.kept:
                self._plans.clear()
            reference = trigger_at if calendar else _REFERENCE
            plan = _relative_plan(journey, durations, key[2], key[3], reference)
            self._plans[key] = plan
        return plan

    def _calendar_dependent(self, journey: Journey, durations: tuple[Any, ...]) -> bool:
        """Whether any wait, repeat or expiry of ``journey`` counts calendar months."""
        counts_months = self._counts_months.get(durations)
        if counts_months is None:
            if len(self._counts_months) >= self.kept:
                self._counts_months.clear()
            counts_months = self._counts_months[durations] = any(
                span.calendar for pair in durations if pair for span in pair if span
            )
        if counts_months:
            return True
        fixed = self._fixed_limits.get(id(journey))
        if fixed is None or fixed[0] is not journey:
            limits = (
                text
                for step in journey.steps
                for text in (step.send.expires_after, step.repeat.within if step.repeat else None)
                if text
            )
            fixed = self._fixed_limits[id(journey)] = (
                journey,
                any(parse_span(text).calendar for text in limits),
            )
        return fixed[1]


def _fixed_durations(journey: Journey) -> tuple[Any, ...] | None:
    """Each step's (wait, every) when all are duration literals (the same for every
    enrolment), else None."""
    specs = [s.wait for s in journey.steps] + [s.repeat.every for s in journey.steps if s.repeat]
    if not all(is_duration(spec) for spec in specs):
        return None
    return step_durations(journey, {})


def _relative_plan(
    journey: Journey,
    durations: tuple[Any, ...],
    purchase: timedelta,
    warranty_end: timedelta | None,
    ref: datetime = _REFERENCE,
) -> RelativePlan:
    end = None if warranty_end is None else ref + warranty_end
    planned = _plan(journey, durations, ref, ref + purchase, end)
    # In due order; a stable sort keeps the steps' order among equal times.
    planned.sort(key=lambda p: p[2])
    entries = tuple(
        (step, k, due - ref, None if expires is None else expires - ref)
        for step, k, due, expires in planned
    )
    micros = tuple(
        (step.id, k, due // _MICROSECOND, None if expires is None else expires // _MICROSECOND)
        for step, k, due, expires in entries
    )
    if warranty_end is None or not any(
        step.send.expires_at == "warranty_end" and waits_for_previous(journey, step)
        for step in journey.steps
    ):
        return RelativePlan(journey, entries, micros)
    end = warranty_end // _MICROSECOND
    micros = tuple(
        (*entry, end)
        if step.send.expires_at == "warranty_end" and waits_for_previous(journey, step)
        else entry
        for entry, (step, *_) in zip(micros, entries, strict=True)
    )
    return RelativePlan(journey, entries, micros, deadlines=True)


def _duration(memo: dict[str, Duration], spec: str, ctx: Mapping[str, Any]) -> Duration:
    if spec not in memo:
        memo[spec] = resolve_duration(spec, ctx)
    return memo[spec]


def _occurrence_limit(step: Step) -> int:
    if step.repeat is None:
        return 1
    return step.repeat.times or 1000


def _expiry(step: Step, due: datetime, warranty_end: datetime | None) -> datetime | None:
    candidates = []
    if step.send.expires_after:
        candidates.append(parse_span(step.send.expires_after).after(due))
    if step.send.expires_at == "warranty_end" and warranty_end is not None:
        candidates.append(warranty_end)
    return min(candidates) if candidates else None

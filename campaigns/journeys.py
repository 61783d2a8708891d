"""Journey definitions: the YAML schema, its validation with file:line, and loading.

A journey reads like this (see the built-ins in ``campaigns/builtin_journeys``)::

    id: extended_warranty
    name: Extended warranty offer
    trigger: {event: purchase, for_each: item, condition: "item.warranty_months"}
    exit: {events: [warranty_extended]}
    bundle_within: 24h    # per-item messages due this close go out as one (campaigns.bundling)
    steps:
      - id: offer_email
        wait: -60d
        from: warranty_end
        send: {channel: email, template: warranty_offer, category: marketing,
               priority: 5, expires_at: warranty_end}

Conditions are Jinja2 expressions compiled in an immutable sandbox with bounded sizes and
time (:mod:`campaigns.conditions`); they are checked when the journey is validated, not at
send time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaigns.conditions import (
    CONDITION_ENV,
    KNOWN_FIELDS,
    _Lenient,
    compile_condition,
    sample_condition_context,
)
from campaigns.conditions import customer_view as customer_view  # re-exported
from campaigns.conditions import evaluate as evaluate  # re-exported
from campaigns.conditions import previous_view as previous_view  # re-exported
from campaigns.consent import DEFAULT_TOPIC, TOPICS
from campaigns.durations import (
    EXAMPLES,
    Duration,
    DurationError,
    is_duration,
    parse_duration,
    parse_span,
)
from campaigns.experiments import parse_share
from campaigns.journey_problems import (
    MAX_VALUES,
    JourneyProblem,
    condition_hint,
    describe_schema_error,
    line_for,
    line_index,
    too_many_values,
    without_echoes,
)
from campaigns.journey_problems import source_line as source_line  # re-exported
from campaigns.timewindows import SendWindow
from templates.textfiles import NotText, read_text

BUILTIN_DIR = Path(__file__).with_name("builtin_journeys")
# libyaml's safe loader where it is built in: five times the pure-Python one's speed.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ANCHORS = ("trigger", "previous", "warranty_end", "purchase")
DEFAULT_MIN_GAP = "24h"
DEFAULT_BUNDLE_WITHIN = "24h"
# Event types a journey's ``goal`` may name; the README lists the fields each carries.
GOAL_EVENTS = frozenset(
    {"purchase", "inspection_booked", "warranty_extended", "coupon_redeemed", "review_written"}
)


@lru_cache(maxsize=256)
def _window(text: str) -> SendWindow:
    return SendWindow.parse(text)


@lru_cache(maxsize=1024)
def _literal_duration(spec: str) -> Duration | None:
    return parse_span(spec) if is_duration(spec) else None


def resolve_duration(spec: str, context: Mapping[str, Any]) -> Duration:
    """A duration literal, or an expression giving a number of days."""
    literal = _literal_duration(spec)
    if literal is not None:
        return literal
    value = compile_condition(spec)(**context)
    return Duration(delta=timedelta(days=float(value)))


def checked_duration(
    value: Any, *, sign: Literal["any", "positive", "not_negative"] = "any", calendar: bool = True
) -> str | None:
    """A duration setting's text, or ``ValueError`` in plain words: the one check every
    duration field shares (``sign``: what it may be; ``calendar``: months allowed)."""
    if value is None:
        return None
    span = parse_span(value if isinstance(value, str) else value)  # a bare number is refused
    if not calendar and span.calendar:
        raise DurationError(f"{value!r}: months and years have no fixed length here; use days")
    if sign == "positive" and (span.negative or span.zero):
        raise DurationError(f"{value!r} must be longer than zero, e.g. 24h, 2d or 90m")
    if sign == "not_negative" and span.negative:
        raise DurationError(f"{value!r} must not be negative (0m: never)")
    return value


_NUMBER_TEXT = re.compile(r"^\s*[+-]?\d+(?:\.\d+)?\s*$")


def duration_or_expression(value: Any, info: Any = None) -> str:
    """A ``wait`` or ``repeat.every``: a duration literal or an expression giving days —
    never a bare number, which reads as days to one marketer and hours to the next.

    A definition stored before bare numbers were refused (validated with the context
    ``{"stored": True}``) keeps its ``"14"``: an expression giving 14 days, as it was.
    """
    if getattr(info, "context", None) and info.context.get("stored") and isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"{value!r} is not a duration; write e.g. {EXAMPLES}")
    if not isinstance(value, str) or _NUMBER_TEXT.match(value) or _looks_like_duration(value):
        parse_span(value)  # raises with an example
    return value


_DURATION_LIKE = re.compile(r"^\s*[+-]?\s*\d+\s*[A-Za-z]+\s*$")


def _looks_like_duration(text: str) -> bool:
    """``14 dayz``: a number and a word, meant as a duration, not an expression."""
    return bool(_DURATION_LIKE.match(text))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    event: str
    condition: str | None = None
    for_each: Literal["order", "item"] = "order"
    item_condition: str | None = None


class Exit(_Model):
    events: list[str] = Field(default_factory=list)
    goal: Literal["repurchase"] | None = None


class Variant(_Model):
    """One variant of a step (campaigns.experiments): another template, subject, or both."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    template: str | None = None
    # One line of Jinja2, or one per language ({de: "...", en: "..."}).
    subject: str | dict[str, str] | None = None
    weight: float = 1.0

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"weight {value!r} is not a positive number")
        return float(value)

    @model_validator(mode="after")
    def _changes_something(self) -> Variant:
        if self.template is None and self.subject is None:
            raise ValueError(f"variant {self.id!r} names neither a template nor a subject")
        return self


class Send(_Model):
    channel: Literal["email", "sms"]
    template: str
    category: Literal["marketing", "transactional"] = "marketing"
    priority: int = 0
    expires_after: str | None = None
    expires_at: Literal["warranty_end"] | None = None

    @field_validator("expires_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str | None:
        return checked_duration(value, sign="positive")


class Repeat(_Model):
    every: str = Field(description="a duration (90d) or an expression giving days")
    times: int | None = Field(default=None, ge=1, le=1000)
    within: str | None = None

    _every = field_validator("every", mode="before")(lambda v, i: duration_or_expression(v, i))
    _within = field_validator("within", mode="before")(
        lambda v: checked_duration(v, sign="positive")
    )

    @model_validator(mode="after")
    def _bounded(self) -> Repeat:
        if self.times is None and self.within is None:
            raise ValueError("repeat needs times or within, or it would never end")
        return self


class Step(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    wait: str = "0m"
    from_: Literal["trigger", "previous", "warranty_end", "purchase"] | None = Field(
        default=None, alias="from"
    )
    condition: str | None = None
    repeat: Repeat | None = None
    send: Send
    variants: list[Variant] | None = None
    # When this step may send, in the recipient's time (campaigns.timewindows.SendWindow).
    send_window: str | None = None

    @field_validator("send_window", mode="before")
    @classmethod
    def _send_window(cls, value: Any) -> str | None:
        if value is not None:
            SendWindow.parse(value)
        return value

    @property
    def window(self) -> SendWindow | None:
        """The parsed ``send_window``, or None when the step may send at any time."""
        return _window(self.send_window) if self.send_window else None

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: list[Variant] | None) -> list[Variant] | None:
        ids = [v.id for v in value or ()]
        if len(set(ids)) != len(ids):
            raise ValueError("variant ids must differ")
        if value is not None and len(value) < 2:
            raise ValueError("a step with variants lists at least two")
        return value

    _wait = field_validator("wait", mode="before")(lambda v, i: duration_or_expression(v, i))


class Journey(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = ""
    description: str = ""
    trigger: Trigger
    audience: str | None = None
    reentry: Literal["once_per_order", "once_per_item", "once", "always"] | None = None
    exit: Exit = Exit()
    min_gap: str | None = Field(
        default=None, description="the least time between two marketing messages (24h)"
    )
    # Per-item messages due this close together go out as one (campaigns.bundling); "0m"
    # sends each on its own. None is the default, 24h, and keeps older digests unchanged.
    bundle_within: str | None = None
    # Experiments and their value (campaigns.experiments, aftersale.stats): the share of
    # customers held out, what counts as a conversion, and what each conversion gives away.
    holdout: str | None = None
    goal: str | None = None
    offer_cost: str | None = None
    # What the journey's marketing is about, for customers who keep some topics and drop
    # others (campaigns.consent.TOPICS); a journey without one counts as offers.
    topic: str | None = None
    steps: list[Step] = Field(min_length=1)

    @field_validator("topic", mode="before")
    @classmethod
    def _topic(cls, value: Any) -> str | None:
        if value is not None and value not in TOPICS:
            raise ValueError(f"unknown topic {value!r}: one of {', '.join(TOPICS)}")
        return value

    _min_gap = field_validator("min_gap", mode="before")(
        lambda v: checked_duration(v, sign="positive", calendar=False)
    )
    _bundle_within = field_validator("bundle_within", mode="before")(
        lambda v: checked_duration(v, sign="not_negative", calendar=False)
    )

    @field_validator("holdout", mode="before")
    @classmethod
    def _holdout(cls, value: Any) -> str | None:
        if value is None:
            return None
        parse_share(value)
        return str(value)

    @field_validator("goal")
    @classmethod
    def _goal(cls, value: str | None) -> str | None:
        if value is not None and value not in GOAL_EVENTS:
            known = ", ".join(sorted(GOAL_EVENTS))
            raise ValueError(f"unknown goal event {value!r} (one of {known})")
        return value

    @field_validator("offer_cost", mode="before")
    @classmethod
    def _offer_cost(cls, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("offer_cost is a number or an expression such as offer.discount")
        if isinstance(value, int | float) and value < 0:
            raise ValueError("offer_cost must not be negative")
        return str(value)

    @model_validator(mode="after")
    def _consistent(self) -> Journey:
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
            if index == 0 and step.from_ == "previous":
                raise ValueError(f"step {step.id!r} is the first: it cannot wait from 'previous'")
            if step.send.channel == "sms" and any(v.subject for v in step.variants or ()):
                raise ValueError(f"step {step.id!r} sends an SMS, which has no subject to vary")
            uses_warranty = step.from_ == "warranty_end" or step.send.expires_at == "warranty_end"
            if uses_warranty and self.trigger.for_each != "item":
                raise ValueError(
                    f"step {step.id!r} uses warranty_end, which needs trigger.for_each: item"
                )
        return self

    @property
    def effective_reentry(self) -> str:
        if self.reentry:
            return self.reentry
        return "once_per_item" if self.trigger.for_each == "item" else "once_per_order"

    @property
    def spacing(self) -> timedelta:
        """``min_gap``: no two marketing messages of this journey to one customer closer."""
        return parse_duration(self.min_gap or DEFAULT_MIN_GAP)

    @property
    def bundle_window(self) -> timedelta | None:
        """How close per-item messages must fall due to be bundled; None: never bundled."""
        if self.trigger.for_each != "item":
            return None
        window = parse_duration(self.bundle_within or DEFAULT_BUNDLE_WITHIN)
        return window if window > timedelta(0) else None

    @property
    def holdout_share(self) -> float:
        """The share of customers held out (campaigns.experiments); 0 without a holdout."""
        return parse_share(self.holdout) if self.holdout is not None else 0.0

    @property
    def goal_event(self) -> str:
        """The event type that counts as a conversion; a purchase unless told otherwise."""
        return self.goal or "purchase"

    @property
    def has_several_messages(self) -> bool:
        """Whether an enrolment can plan more than one message (a timetable to follow)."""
        return len(self.steps) > 1 or any(step.repeat for step in self.steps)

    def step(self, step_id: str) -> Step | None:
        return next((step for step in self.steps if step.id == step_id), None)

    @property
    def consent_topic(self) -> str:
        """The topic a customer's consent is asked for: ``topic``, else offers."""
        return self.topic or DEFAULT_TOPIC

    def digest(self) -> str:
        # Settings left out of a file stay out of its digest: adding a setting with a
        # default makes no new version of every journey that does not use it.
        definition = self.model_dump(by_alias=True)
        for key in ("min_gap", "bundle_within", "holdout", "goal", "offer_cost", "topic"):
            if definition[key] is None:  # as before the setting existed
                del definition[key]
        for step in definition["steps"]:
            for key in ("variants", "send_window"):
                if step[key] is None:
                    del step[key]
        canonical = json.dumps(definition, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def conditions(self) -> list[tuple[str, str]]:
        """Every expression with the place it came from, for validation."""
        found: list[tuple[str, str]] = []
        if self.trigger.condition:
            found.append(("trigger.condition", self.trigger.condition))
        if self.trigger.item_condition:
            found.append(("trigger.item_condition", self.trigger.item_condition))
        if self.audience:
            found.append(("audience", self.audience))
        for i, step in enumerate(self.steps):
            if step.condition:
                found.append((f"steps.{i}.condition", step.condition))
            if not is_duration(step.wait):
                found.append((f"steps.{i}.wait", step.wait))
            if step.repeat and not is_duration(step.repeat.every):
                found.append((f"steps.{i}.repeat.every", step.repeat.every))
        return found


@dataclass(frozen=True)
class LoadedJourney:
    journey: Journey
    source: str


class JourneyLoadError(Exception):
    def __init__(self, problems: list[JourneyProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


_line_for = line_for


def parse_journey(text: str, source: str) -> tuple[Journey | None, list[JourneyProblem]]:
    """Parse and validate one journey document; problems carry the file and line."""
    try:
        node = yaml.compose(text, Loader=YAML_LOADER)
        if node is not None and too_many_values(node):
            return None, [JourneyProblem(source, 1, f"holds more than {MAX_VALUES:,} values "
                                         "with its aliases (*name) written out, or an alias "
                                         "inside itself; a journey needs a few hundred")]  # fmt: skip
        data = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        return None, [JourneyProblem(source, line, f"not valid YAML: {exc}")]
    if not isinstance(data, dict) or node is None:
        return None, [JourneyProblem(source, 1, "a journey must be a YAML mapping")]
    lines = line_index(node)
    try:
        journey = Journey.model_validate(data)
    except ValidationError as exc:
        return None, [
            JourneyProblem(
                source, _line_for(lines, tuple(err["loc"])), describe_schema_error(err, Journey)
            )
            for err in without_echoes(exc.errors(), Journey)
        ]
    problems = check_conditions(journey, source, lines)
    problems += check_offer_cost(journey, source, lines)
    problems += check_subjects(journey, source, lines)
    return (None if problems else journey), problems


def check_conditions(
    journey: Journey, source: str, lines: dict[tuple[Any, ...], int] | None = None
) -> list[JourneyProblem]:
    """Compile every expression and evaluate it against a sample context."""
    problems = []
    context = sample_condition_context()
    for where, expr in journey.conditions():
        loc = tuple(int(p) if p.isdigit() else p for p in where.split("."))
        line = _line_for(lines or {}, loc)
        try:
            bool(compile_condition(expr)(**context))  # an undefined value fails when read
        except TemplateSyntaxError as exc:
            hint = condition_hint(expr, exc.message or "", KNOWN_FIELDS)
            problems.append(JourneyProblem(source, line, f"{where}: {hint}"))
        except (UndefinedError, SecurityError) as exc:
            hint = condition_hint(expr, str(exc), KNOWN_FIELDS)
            problems.append(JourneyProblem(source, line, f"{where}: {hint}"))
        except Exception as exc:  # noqa: BLE001 - any failure of a marketer's expression
            problems.append(JourneyProblem(source, line, f"{where}: {type(exc).__name__}: {exc}"))
    return problems


CENT = Decimal("0.01")


def offer_cost(journey: Journey, conversion: Mapping[str, Any]) -> Decimal:
    """What one conversion gives away: ``offer_cost`` as a number, or its expression
    evaluated over the conversion (``offer``, ``event``, ``order``, ``value``); 0 without."""
    spec = journey.offer_cost
    if spec is None:
        return Decimal("0")
    try:
        return Decimal(spec)
    except ArithmeticError:
        pass
    value = compile_condition(spec)(**conversion)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"offer_cost {spec!r} gave {value!r}, not an amount")
    return Decimal(str(value)).quantize(CENT)


def conversion_context(event: Mapping[str, Any]) -> dict[str, Any]:
    """The names an ``offer_cost`` expression may use, from one goal event's payload."""
    order = event.get("order") if isinstance(event.get("order"), Mapping) else None
    offer = event.get("offer") if isinstance(event.get("offer"), Mapping) else {}
    value = event.get("value") or (order or {}).get("total") or 0
    return {
        "event": dict(event),
        "order": order or {},
        "offer": _Lenient({k: _amount(v) for k, v in offer.items()}),
        "value": _amount(value),
    }


def _amount(value: Any) -> Any:
    """Amounts as numbers an expression can multiply ("15.00" and Decimal become 15.0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal | int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def check_offer_cost(
    journey: Journey, source: str, lines: dict[tuple[Any, ...], int] | None = None
) -> list[JourneyProblem]:
    """An ``offer_cost`` expression must give an amount for a sample conversion."""
    if journey.offer_cost is None:
        return []
    sample = {"type": journey.goal_event, "value": "49.00", "offer": {"discount": "15.00"},
              "order": {"id": "o2", "total": Decimal("499.00"), "currency": "EUR"}}  # fmt: skip
    try:
        offer_cost(journey, conversion_context(sample))
    except Exception as exc:  # noqa: BLE001 - any failure of a marketer's expression
        line = _line_for(lines or {}, ("offer_cost",))
        message = (
            f"offer_cost: {exc}"
            if isinstance(exc, ValueError)
            else f"offer_cost: {type(exc).__name__}: {exc}"
        )
        return [JourneyProblem(source, line, message)]
    return []


def check_subjects(
    journey: Journey, source: str, lines: dict[tuple[Any, ...], int] | None = None
) -> list[JourneyProblem]:
    """A variant's subject line must be valid Jinja2 (it renders with the e-mail's names)."""
    problems = []
    for i, step in enumerate(journey.steps):
        for j, variant in enumerate(step.variants or ()):
            subject = variant.subject
            for text in subject.values() if isinstance(subject, dict) else [subject]:
                try:
                    CONDITION_ENV.parse(text or "")
                except TemplateSyntaxError as exc:
                    where = ("steps", i, "variants", j, "subject")
                    problems.append(JourneyProblem(source, _line_for(lines or {}, where),
                                                   f"steps.{i}.variants.{j}.subject: syntax "
                                                   f"error: {exc.message}"))  # fmt: skip
    return problems


def load_journey_file(path: Path) -> tuple[Journey | None, list[JourneyProblem]]:
    try:
        text = read_text(path)
    except OSError as exc:
        return None, [JourneyProblem(str(path), None, f"cannot read: {exc}")]
    except NotText as exc:
        return None, [JourneyProblem(str(path), exc.line, str(exc))]
    return parse_journey(text, str(path))


def journey_files(project_journeys: Path | None) -> list[Path]:
    """The journey files of a project, or the built-ins when it has no journeys folder."""
    if project_journeys is not None and project_journeys.is_dir():
        return sorted([*project_journeys.glob("*.yaml"), *project_journeys.glob("*.yml")])
    return sorted(BUILTIN_DIR.glob("*.yaml"))


def load_journeys(
    project_journeys: Path | None,
) -> tuple[list[LoadedJourney], list[JourneyProblem]]:
    """Every valid journey and every problem found; a duplicate id is a problem too."""
    loaded: list[LoadedJourney] = []
    problems: list[JourneyProblem] = []
    seen: dict[str, str] = {}
    for path in journey_files(project_journeys):
        journey, found = load_journey_file(path)
        problems.extend(found)
        if journey is None:
            continue
        if journey.id in seen:
            problems.append(
                JourneyProblem(
                    str(path), 1, f"journey id {journey.id!r} also in {seen[journey.id]}"
                )
            )
            continue
        seen[journey.id] = str(path)
        loaded.append(LoadedJourney(journey, str(path)))
    return loaded, problems

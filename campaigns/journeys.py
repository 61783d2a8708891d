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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaigns.conditions import ConditionEnvironment, run_limited
from campaigns.consent import DEFAULT_TOPIC, TOPICS
from campaigns.experiments import parse_share

BUILTIN_DIR = Path(__file__).with_name("builtin_journeys")
ANCHORS = ("trigger", "previous", "warranty_end", "purchase")
_DURATION = re.compile(r"^\s*([+-]?)\s*(\d+)\s*(m|h|d|w)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DEFAULT_MIN_GAP = "24h"
DEFAULT_BUNDLE_WITHIN = "24h"
# Event types a journey's ``goal`` may name; the README lists the fields each carries.
GOAL_EVENTS = frozenset(
    {"purchase", "inspection_booked", "warranty_extended", "coupon_redeemed", "review_written"}
)


@lru_cache(maxsize=512)
def parse_duration(text: str | int) -> timedelta:
    """``"90d"``, ``"-60d"``, ``"2h"``, ``"30m"``, ``"2w"``; a bare number means days."""
    if isinstance(text, int):
        return timedelta(days=text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 2h, 90d, -60d or 2w")
    sign, amount, unit = match.groups()
    delta = timedelta(**{_UNITS[unit]: int(amount)})
    return -delta if sign == "-" else delta


def is_duration(text: str) -> bool:
    return bool(_DURATION.match(text))


@lru_cache(maxsize=1024)
def _literal_duration(spec: str) -> timedelta | None:
    return parse_duration(spec) if is_duration(spec) else None


def resolve_duration(spec: str, context: Mapping[str, Any]) -> timedelta:
    """A duration literal, or an expression giving a number of days."""
    literal = _literal_duration(spec)
    if literal is not None:
        return literal
    value = compile_condition(spec)(**context)
    return timedelta(days=float(value))


_env = ConditionEnvironment(undefined=StrictUndefined)


_PATH = re.compile(r"^\s*([a-z_][a-z0-9_]*)((?:\.[a-z_][a-z0-9_]*)*)(?:\s+or\s+(\d+))?\s*$")


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> Any:
    """A callable evaluating the sandboxed Jinja2 expression ``source`` over a context.

    The commonest expressions (``item.warranty_months``, ``item.x or 90``) are plain
    look-ups: they get a direct path that behaves the same (unknown names still fail) and
    skips Jinja2's per-call context, which dominates planning time otherwise.
    """
    expression = _env.compile_expression(source, undefined_to_none=False)

    def compiled(**context: Any) -> Any:
        return run_limited(expression, context)

    match = _PATH.match(source)
    if match is None:
        return compiled
    root, rest, default = match.groups()
    attrs = rest.split(".")[1:]

    def lookup(**context: Any) -> Any:
        value = context.get(root, _MISSING)
        for attr in attrs:
            if not isinstance(value, dict) or attr not in value:
                return compiled(**context)  # let Jinja2 raise or resolve it its own way
            value = value[attr]
        if value is _MISSING:
            return compiled(**context)
        return (value or int(default)) if default is not None else value

    return lookup


_MISSING = object()


def evaluate(source: str | None, context: Mapping[str, Any]) -> bool:
    """Truth of a condition; no condition is true."""
    if not source:
        return True
    return bool(compile_condition(source)(**context))


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

    @field_validator("expires_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= timedelta(0):
            raise ValueError("expires_after must be positive")
        return value


class Repeat(_Model):
    every: str = Field(description="a duration (90d) or an expression giving days")
    times: int | None = Field(default=None, ge=1, le=1000)
    within: str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Repeat:
        if self.times is None and self.within is None:
            raise ValueError("repeat needs times or within, or it would never end")
        if self.within is not None:
            parse_duration(self.within)
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

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: list[Variant] | None) -> list[Variant] | None:
        ids = [v.id for v in value or ()]
        if len(set(ids)) != len(ids):
            raise ValueError("variant ids must differ")
        if value is not None and len(value) < 2:
            raise ValueError("a step with variants lists at least two")
        return value

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, value: Any) -> str:
        return str(value)


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

    @field_validator("min_gap", mode="before")
    @classmethod
    def _min_gap(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not is_duration(text) or parse_duration(text) <= timedelta(0):
            raise ValueError(f"{text!r} is not a positive duration such as 24h, 2d or 90m")
        return text

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

    @field_validator("bundle_within", mode="before")
    @classmethod
    def _bundle_within(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not is_duration(text) or parse_duration(text) < timedelta(0):
            raise ValueError(f"{text!r} is not a duration such as 24h, 2d or 0m (0m: never bundle)")
        return text

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
            if step["variants"] is None:
                del step["variants"]
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
class JourneyProblem:
    """One thing wrong with a journey file, located as precisely as we can."""

    file: str
    line: int | None
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level}: {self.message}"


@dataclass(frozen=True)
class LoadedJourney:
    journey: Journey
    source: str


class JourneyLoadError(Exception):
    def __init__(self, problems: list[JourneyProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every key path in a YAML document to its 1-based line."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines.update(_line_index(value, sub))
            lines[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines.update(_line_index(value, (*path, i)))
    return lines


def _line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    loc = tuple("from" if part == "from_" else part for part in loc)
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc)


def source_line(path: str | Path, loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc`` (``("steps", 0, "variants", 1, "template")``) in a journey file."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return _line_for(_line_index(node), loc) if node is not None else None


def parse_journey(text: str, source: str) -> tuple[Journey | None, list[JourneyProblem]]:
    """Parse and validate one journey document; problems carry the file and line."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        return None, [JourneyProblem(source, line, f"not valid YAML: {exc}")]
    if not isinstance(data, dict) or node is None:
        return None, [JourneyProblem(source, 1, "a journey must be a YAML mapping")]
    lines = _line_index(node)
    try:
        journey = Journey.model_validate(data)
    except ValidationError as exc:
        return None, [
            JourneyProblem(source, _line_for(lines, tuple(err["loc"])), _describe(err))
            for err in exc.errors()
        ]
    problems = check_conditions(journey, source, lines)
    problems += check_offer_cost(journey, source, lines)
    problems += check_subjects(journey, source, lines)
    return (None if problems else journey), problems


def _describe(err: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if p != "from_") or "journey"
    if err["loc"] and err["loc"][-1] == "from_":
        loc = ".".join([*(str(p) for p in err["loc"][:-1]), "from"])
    return f"{loc}: {err['msg']}"


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
            compile_condition(expr)(**context)
        except TemplateSyntaxError as exc:
            problems.append(JourneyProblem(source, line, f"{where}: syntax error: {exc.message}"))
        except (UndefinedError, SecurityError) as exc:
            problems.append(JourneyProblem(source, line, f"{where}: {exc}"))
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
                    _env.parse(text or "")
                except TemplateSyntaxError as exc:
                    where = ("steps", i, "variants", j, "subject")
                    problems.append(JourneyProblem(source, _line_for(lines or {}, where),
                                                   f"steps.{i}.variants.{j}.subject: syntax "
                                                   f"error: {exc.message}"))  # fmt: skip
    return problems


def sample_condition_context() -> dict[str, Any]:
    """Names a condition may use, with plausible values (the same shape the engine builds)."""
    now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    item = {
        "sku": "WM-1",
        "name": "Waschmaschine",
        "category": "appliance",
        "price": Decimal("499.00"),
        "quantity": 1,
        "warranty_months": 24,
        "inspection_interval_days": 90,
        "warranty_end": now + timedelta(days=730),
    }
    customer = {
        "id": "c1",
        "first_name": "Anna",
        "last_name": "Muster",
        "email": "anna@example.com",
        "phone": "+4915112345678",
        "locale": "de",
        "timezone": "Europe/Berlin",
        "email_consent": True,
        "sms_consent": True,
        "attributes": {"city": "Berlin", "postal_code": "10115", "birth_year": 1980},
        "city": "Berlin",
        "postal_code": "10115",
        "birth_year": 1980,
        "age": 46,
        "purchase_count": 1,
    }
    order = {
        "id": "o1",
        "total": Decimal("499.00"),
        "currency": "EUR",
        "purchased_at": now,
        "items": [item],
    }
    event = {"id": "e1", "type": "purchase", "at": now, "order": order}
    return {
        "customer": _Lenient(customer),
        "order": order,
        "item": item,
        "event": event,
        "now": now,
        "occurrence": 1,
        "purchases_since_enrollment": 0,
        "previous": previous_view("sent", now),
    }


def previous_view(
    status: str | None, sent_at: datetime | None, reason: str | None = None
) -> dict[str, Any]:
    """The ``previous`` a step condition sees: how the previous step's message ended.

    ``status`` is the message's status (``sent``, ``delivered``, ``skipped``...), None when
    there is no previous message; ``sent_at`` when it went out, else None; ``reason`` why
    it was skipped or failed.
    """
    return {"status": status, "sent_at": sent_at, "reason": reason}


class _Lenient(dict):
    """Customer attributes are open-ended: an unknown attribute is None, not an error."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)


def customer_view(customer: Mapping[str, Any], attributes: Mapping[str, Any], today_year: int):
    """The ``customer`` a condition sees: fields, attributes flattened in, and ``age``."""
    view = _Lenient(attributes)
    view.update(customer)
    view["attributes"] = dict(attributes)
    birth_year = attributes.get("birth_year")
    try:
        view["age"] = today_year - int(birth_year) if birth_year not in (None, "") else None
    except (TypeError, ValueError):
        view["age"] = None
    return view


def load_journey_file(path: Path) -> tuple[Journey | None, list[JourneyProblem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [JourneyProblem(str(path), None, f"cannot read: {exc}")]
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

"""Why a customer did (or did not) get a journey's messages, on one screen.

For each journey asked about: every event that could have started it, either as an
enrolment (with its status) or as a ``not_enrolled`` row (with the reason and the condition
that failed); every message with its decisions; and what is planned next and when. All of
it read from one customer's rows, so it answers at once on a log of any size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import Connection

from aftersale.sendlog import Timeline, reason_text
from aftersale.terminal import safe
from aftersale.views import STATUS_STYLE, not_enrolled_text
from campaigns.models import PLANNED, JourneyState
from campaigns.timetable import from_micros

journeys_t = JourneyState.__table__


def known_journeys(conn: Connection) -> list[str]:
    """Every journey the project has run, for naming the valid choices."""
    return sorted(conn.execute(sa.select(journeys_t.c.journey_id)).scalars())


@dataclass
class JourneyStory:
    journey_id: str
    enrollments: list[Any] = field(default_factory=list)
    not_enrolled: list[Any] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)


def stories(t: Timeline, journey_id: str | None = None) -> list[JourneyStory]:
    """The customer's timeline by journey: one journey's, or every journey that came up."""
    found: dict[str, JourneyStory] = {}

    def story(jid: str) -> JourneyStory:
        return found.setdefault(jid, JourneyStory(jid))

    for e in t.enrollments:
        story(e.journey_id).enrollments.append(e)
    for n in t.not_enrolled:
        story(n.journey_id).not_enrolled.append(n)
    for m in t.messages:
        story(m.journey_id).messages.append(m)
    if journey_id is not None:
        return [found.get(journey_id, JourneyStory(journey_id))]
    return [found[k] for k in sorted(found)]


def upcoming(s: JourneyStory) -> list[tuple[Any, str, int]]:
    """What is planned next: the planned messages, then the rest of each active
    enrolment's timetable, as (due, step, occurrence), soonest first."""
    planned = {(m.enrollment_id, m.step, m.occurrence) for m in s.messages}
    ahead = [(m.due_at, m.step, m.occurrence) for m in s.messages if m.status == PLANNED]
    for e in s.enrollments:
        if e.status != "active" or not e.schedule:
            continue
        for step, occurrence, due, *_ in e.schedule:
            if (e.id, step, occurrence) not in planned and due > _latest(s, e.id):
                ahead.append((from_micros(due), step, occurrence))
    return sorted(ahead, key=lambda x: x[0])


def _latest(s: JourneyStory, enrollment_id: str) -> int:
    """The due time (microseconds) of the enrolment's last message so far."""
    dues = [m.due_at for m in s.messages if m.enrollment_id == enrollment_id]
    return int(max(dues).timestamp() * 1_000_000) if dues else 0


def print_why(
    console: Console, t: Timeline, zone: ZoneInfo, journey_id: str | None, *, utc: bool = False
) -> None:
    """One screen per journey: enrolled or not and why, messages and decisions, what is next."""
    shown = ZoneInfo("UTC") if utc else zone

    def at(moment: Any) -> str:
        return moment.astimezone(shown).strftime("%Y-%m-%d %H:%M") if moment else ""

    c = t.customer
    console.print(
        f"[bold]{safe(c.first_name)} {safe(c.last_name)}[/] ({safe(c.id)}) · times in {shown.key}",
        highlight=False,
    )
    for s in stories(t, journey_id):
        console.print(f"\n[bold]{safe(s.journey_id)}[/]", highlight=False)
        if not s.enrollments and not s.not_enrolled:
            console.print("  no event of this customer could start it yet")
        for e in s.enrollments:
            about = f" · order {safe(e.order_id)}" if e.order_id else ""
            ended = f" ({safe(e.reason)})" if e.reason else ""
            console.print(
                f"  [green]enrolled[/] {at(e.enrolled_at)} by {safe(e.trigger_event_id or '-')}"
                f"{about} · {safe(e.status)}{ended}",
                highlight=False,
            )
        for n in s.not_enrolled:
            console.print(
                f"  [yellow]not enrolled[/] by {safe(n.event_id)} ({at(n.at)}): "
                f"{safe(not_enrolled_text(n))}",
                highlight=False,
            )
        for m in s.messages:
            style = STATUS_STYLE.get(m.status, "white")
            reason = f" {safe(reason_text(m))}" if m.reason or m.bundled_into else ""
            item = f" · {safe(m.item_name)}" if m.item_name else ""
            console.print(
                f"  {safe(m.step)} #{m.occurrence}{item} · {safe(m.channel)} · "
                f"[{style}]{safe(m.status)}[/]{reason} · due {at(m.due_at)}"
                + (f" · sent {at(m.sent_at)}" if m.sent_at else ""),
                highlight=False,
            )
            for d in t.decisions.get(m.id, []):
                moved = f" → {at(d.due_after)}" if d.due_after else ""
                why = f" {safe(d.reason)}" if d.reason else ""
                console.print(f"    [dim]{at(d.at)} {safe(d.action)}{why}{moved}[/]",
                              highlight=False)  # fmt: skip
        ahead = upcoming(s)
        if ahead:
            due, step, occurrence = ahead[0]
            later = f" (then {len(ahead) - 1} more)" if len(ahead) > 1 else ""
            console.print(f"  next: {safe(step)} #{occurrence} at {at(due)}{later}",
                          highlight=False)  # fmt: skip
        else:
            console.print("  next: nothing planned")

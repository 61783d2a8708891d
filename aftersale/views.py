"""Terminal views shared by CLI commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.table import Table

from aftersale.sendlog import Timeline, reason_text
from aftersale.terminal import safe
from campaigns.models import NOT_ENROLLED_REASONS

STATUS_STYLE = {
    "sent": "green", "delivered": "green", "skipped": "yellow", "cancelled": "yellow",
    "failed": "red", "bounced": "red", "unknown": "magenta", "planned": "cyan",
}  # fmt: skip


def _zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def print_timeline(
    console: Console,
    t: Timeline,
    default_timezone: str = "Europe/Berlin",
    *,
    holidays: str | None = None,
    utc: bool = False,
) -> None:
    """A customer's story, in the customer's own time zone (UTC with ``utc``), readable in
    80 columns.

    ``holidays`` names the public-holiday calendar that applies to the customer."""
    c = t.customer
    zone = ZoneInfo("UTC") if utc else _zone(c.timezone, default_timezone)
    yes_no = {True: "[green]yes[/]", False: "[red]no[/]"}
    console.print(f"[bold]{safe(c.first_name)} {safe(c.last_name)}[/] ({safe(c.id)})",
                  highlight=False)  # fmt: skip
    console.print(f"  e-mail {safe(c.email or '-')} · phone {safe(c.phone or '-')}",
                  highlight=False)  # fmt: skip
    whose = "" if utc else "the customer's zone, "
    console.print(f"  locale {safe(c.locale)} · times below in {whose}{zone.key}")
    if holidays is not None:
        console.print(f"  public holidays: {holidays}", highlight=False, markup=False)
    console.print(
        f"  consent: e-mail {yes_no[bool(c.email_consent)]} ({safe(c.email_consent_source)}), "
        f"SMS {yes_no[bool(c.sms_consent)]} ({safe(c.sms_consent_source)})"
        + (f" · [red]{c.open_complaints} open complaint(s)[/]" if c.open_complaints else "")
    )
    chosen = getattr(c, "topic_consent", None) or {}
    if chosen:  # what the preference page or the import decided, per channel and topic
        topics = ", ".join(f"{safe(k)} {'yes' if v else 'no'}" for k, v in sorted(chosen.items()))
        console.print(f"  topics: {topics}", highlight=False)
    for s in t.suppressions:
        console.print(
            f"  [red]suppressed {safe(s.channel)}: {safe(s.reason)}[/] "
            f"({safe(s.source)}, {_local(s.created_at, zone)})"
        )

    events = Table("when", "event", "details", title="Events", title_justify="left")
    for e in t.events:
        details = e.payload.get("order")
        details = details.get("id") if isinstance(details, dict) else details
        kind = safe(e.type) if e.applied else f"{safe(e.type)} [dim](not yet applied)[/]"
        if e.failed_at is not None:
            kind = f"{safe(e.type)} [red](failed: {safe(e.error_detail or '')})[/]"
        events.add_row(_local(e.at, zone), kind, safe(details or e.payload.get("channel") or ""))
    console.print(events)

    enrolments = Table(
        "enrolled", "journey", "order", "status", title="Enrolments", title_justify="left"
    )
    for e in t.enrollments:
        status = e.status + (f" ({e.reason})" if e.reason else "")
        enrolments.add_row(_local(e.enrolled_at, zone), safe(e.journey_id),
                           safe(e.order_id or ""), safe(status))  # fmt: skip
    console.print(enrolments)
    print_not_enrolled(console, t.not_enrolled, zone)

    console.print("[bold]Messages[/]")
    for m in t.messages:
        style = STATUS_STYLE.get(m.status, "white")
        when = _local(m.sent_at or m.due_at, zone)
        reason = f" [dim]{safe(reason_text(m))}[/]" if m.reason else ""
        about = f" · {safe(m.item_name)}" if m.item_name else ""
        about += f" · “{safe(m.subject)}”" if m.subject else ""
        # What the customer did with it, as providers and short links report it.
        seen = "".join(
            f" · {name}"
            for name, at in (("opened", m.opened_at), ("clicked", m.clicked_at))
            if at is not None
        )
        console.print(
            f"  {when}  {safe(m.journey_id)}/{safe(m.step)} #{m.occurrence}{about} · "
            f"{safe(m.channel)} · [{style}]{safe(m.status)}[/]{reason}{seen}",
            highlight=False,
        )
        for d in t.decisions.get(m.id, []):
            moved = f" → {_local(d.due_after, zone)}" if d.due_after else ""
            why = f" {safe(d.reason)}" if d.reason else ""
            console.print(
                f"      [dim]{_local(d.at, zone)} {d.action}{why}{moved}[/]", highlight=False
            )


def not_enrolled_text(row: Any) -> str:
    """Why an event did not start a journey, in words, with the condition that failed."""
    text = NOT_ENROLLED_REASONS.get(row.reason, row.reason)
    return f"{text}: {row.expression}" if row.expression else text


def print_not_enrolled(console: Console, rows: list[Any], zone: ZoneInfo) -> None:
    if not rows:
        return
    table = Table("event at", "journey", "event", "why not", title="Not enrolled",
                  title_justify="left")  # fmt: skip
    for r in rows:
        table.add_row(_local(r.at, zone), safe(r.journey_id), safe(r.event_id),
                      safe(not_enrolled_text(r)))  # fmt: skip
    console.print(table)

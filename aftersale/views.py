"""Terminal views shared by CLI commands."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from aftersale.sendlog import Timeline


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


def print_timeline(console: Console, t: Timeline) -> None:
    c = t.customer
    console.print(
        f"[bold]{c.first_name} {c.last_name}[/] ({c.id}) · {c.email or '-'} · {c.phone or '-'}"
    )
    console.print(
        f"locale {c.locale} · time zone {c.timezone or 'project default'} · "
        f"e-mail consent {'yes' if c.email_consent else 'no'} ({c.email_consent_source}) · "
        f"SMS consent {'yes' if c.sms_consent else 'no'} ({c.sms_consent_source}) · "
        f"open complaints {c.open_complaints}"
    )
    for s in t.suppressions:
        console.print(
            f"[red]suppressed {s.channel}: {s.reason}[/] (source {s.source}, {_when(s.created_at)})"
        )
    events = Table("at (UTC)", "event", "id", title="Events")
    for e in t.events:
        events.add_row(_when(e.at), e.type, e.id)
    console.print(events)
    enrolments = Table("enrolled (UTC)", "journey", "order", "status", "reason", title="Enrolments")
    for e in t.enrollments:
        enrolments.add_row(
            _when(e.enrolled_at), e.journey_id, e.order_id or "", e.status, e.reason or ""
        )
    console.print(enrolments)
    messages = Table(
        "id",
        "journey",
        "step",
        "#",
        "channel",
        "status",
        "reason",
        "due (UTC)",
        "sent (UTC)",
        "history",
        title="Messages",
    )
    for m in t.messages:
        history = "; ".join(
            f"{d.action}{' ' + d.reason if d.reason else ''}"
            + (f" → {_when(d.due_after)}" if d.due_after else "")
            for d in t.decisions.get(m.id, [])
        )
        messages.add_row(
            str(m.id), m.journey_id, m.step, str(m.occurrence), m.channel, m.status,
            m.reason or "", _when(m.due_at), _when(m.sent_at), history,
        )  # fmt: skip
    console.print(messages)

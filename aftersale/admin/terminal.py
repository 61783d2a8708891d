"""Terminal commands of the console: ``aftersale users add|list|remove|passwd`` and ``stats``."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Connection

from aftersale.accounts import AccountError, create_user, list_users, remove_user, set_password
from aftersale.app import Project
from aftersale.stats import (
    JourneyReturn,
    Prices,
    deferral_reasons,
    journey_returns,
    skip_reasons,
    step_funnels,
)
from aftersale.terminal import clean, safe
from campaigns.models import reading

PASSWORD_ENV = "AFTERSALE_USER_PASSWORD"


def project_prices(project: Project) -> Prices:
    """Message prices and the attribution window from the project's settings."""
    s = project.settings
    return Prices(Decimal(s.email_price), Decimal(s.sms_segment_price), s.attribution_days)


def add_commands(app: typer.Typer, open_project: Callable[[], Project], console: Console) -> None:
    """Register ``users add`` and ``stats`` on the CLI ``app``."""
    users_app = typer.Typer(help="Admin console users.", no_args_is_help=True)
    app.add_typer(users_app, name="users")

    @users_app.command("add")
    def users_add(
        name: str,
        role: Annotated[str, typer.Option(help="admin or viewer.")] = "viewer",
        password: Annotated[
            str | None, typer.Option(help=f"Password (else ${PASSWORD_ENV}, else a prompt).")
        ] = None,
    ) -> None:
        """Add a user (or reset the password and role of an existing one)."""
        secret = password or os.environ.get(PASSWORD_ENV)
        if not secret:
            secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        _account(lambda proj: create_user(proj.db, name, secret, role, proj.now()),
                 f"user {name} ({role}) saved")  # fmt: skip

    @users_app.command("list")
    def users_list() -> None:
        """Every user with role, last login and live sessions."""
        table = Table("user", "role", "created", "last login", "sessions")
        proj = open_project()
        try:
            users = list_users(proj.db)
        finally:
            proj.close()
        for u in users:
            table.add_row(safe(u.name), safe(u.role), _when(u.created_at), _when(u.last_login_at),
                          str(u.sessions))  # fmt: skip
        console.print(table)

    @users_app.command("remove")
    def users_remove(name: str) -> None:
        """Delete a user; its sessions end at once."""
        _account(lambda proj: remove_user(proj.db, name), f"user {name} removed")

    @users_app.command("passwd")
    def users_passwd(
        name: str,
        password: Annotated[
            str | None, typer.Option(help=f"Password (else ${PASSWORD_ENV}, else a prompt).")
        ] = None,
    ) -> None:
        """Set a new password; the user's sessions end at once."""
        secret = password or os.environ.get(PASSWORD_ENV)
        if not secret:
            secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        _account(lambda proj: set_password(proj.db, name, secret),
                 f"password of {name} changed; its sessions ended")  # fmt: skip

    def _account(change: Callable[[Project], object], done: str) -> None:
        proj = open_project()
        try:
            change(proj)
        except AccountError as exc:
            console.print(f"[bold red]error:[/] {safe(exc)}")
            raise typer.Exit(2) from exc
        finally:
            proj.close()
        console.print(clean(done), markup=False)

    @app.command()
    def stats(
        journey: Annotated[
            str | None, typer.Option(help="Only this journey, step by step.")
        ] = None,
    ) -> None:
        """Funnels, cost, follow-up revenue and return per journey."""
        proj = open_project()
        try:
            with reading(proj.db) as conn:
                _known_journey(proj, conn, journey, console)
                returns = journey_returns(conn, project_prices(proj), journey)
                funnels = step_funnels(conn, journey)
                skips = skip_reasons(conn, journey)
                deferrals = deferral_reasons(conn, journey)
        finally:
            proj.close()
        console.print(funnel_table(funnels))
        console.print(returns_table(returns, proj.settings.attribution_days))
        console.print(reasons_table("Not sent", skips))
        console.print(reasons_table("Deferred", deferrals))


def _known_journey(proj: Project, conn: Connection, journey: str | None, out: Console) -> None:
    """Exit 2 naming the valid journeys when ``journey`` is none of them."""
    from aftersale.choices import known_steps, unknown_journey

    loaded, _ = proj.load_journeys()
    problem = unknown_journey(journey, known_steps(conn, {j.journey.id: [] for j in loaded}))
    if problem:
        out.print(f"[bold red]error:[/] {safe(problem)}")
        raise typer.Exit(2)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "–"


def funnel_table(funnels: list) -> Table:
    table = Table("journey", "step", "ch", "planned", "sent", "deliv.", "opened", "clicked",
                  title="Funnel per step")  # fmt: skip
    for f in funnels:
        table.add_row(safe(f.journey_id), safe(f.step), safe(f.channel),
                      *(str(n) for _, n in f.stages()))  # fmt: skip
    for column in table.columns[3:]:
        column.justify = "right"
    return table


def returns_table(returns: list[JourneyReturn], days: int) -> Table:
    table = Table("journey", "e-mails", "SMS seg.", "cost", "orders", "revenue", "ROI",
                  title=f"Return (follow-up purchases within {days} days)")  # fmt: skip
    for r in returns:
        roi = f"{r.roi * 100:.0f} %" if r.roi is not None else "–"
        table.add_row(safe(r.journey_id), str(r.emails), str(r.sms_segments), f"{r.cost:.2f}",
                      str(r.orders), f"{r.revenue:.2f}", roi)  # fmt: skip
    for column in table.columns[1:]:
        column.justify = "right"
    return table


def reasons_table(title: str, reasons: list[tuple[str, int]]) -> Table:
    table = Table("reason", "messages", title=title)
    for reason, count in reasons:
        table.add_row(safe(reason), str(count))
    table.columns[1].justify = "right"
    return table

"""Terminal commands of the console: ``aftersale users add|list|remove|passwd`` and ``stats``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from aftersale.terminal import clean, figures_table, right, safe

# The database stack is imported by the commands that use it: registering them stays cheap.
if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from aftersale.app import Project
    from aftersale.holdouts import ExperimentReport
    from aftersale.stats import JourneyReturn, Prices
    from aftersale.uplift import Estimate

PASSWORD_ENV = "AFTERSALE_USER_PASSWORD"


def project_prices(project: Project) -> Prices:
    """Message prices and the attribution window from the project's settings."""
    from aftersale.stats import Prices

    s = project.settings
    return Prices(Decimal(s.email_price), Decimal(s.sms_segment_price), s.attribution_days,
                  s.stats_currency, Decimal(str(s.stats_margin)))  # fmt: skip


def experiments(conn: Any, prices: Prices, journey_id: str | None = None) -> list[ExperimentReport]:
    """The experiment figures of every journey (or one), from its current definition."""
    from aftersale.holdouts import experiment_report
    from aftersale.stats import list_journeys
    from campaigns.journeys import Journey

    return [
        experiment_report(conn, Journey.model_validate(j.definition), prices)
        for j in list_journeys(conn)
        if journey_id in (None, j.journey_id)
    ]


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
        from aftersale.accounts import create_user

        secret = password or os.environ.get(PASSWORD_ENV)
        if not secret:
            secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        _account(lambda proj: create_user(proj.db, name, secret, role, proj.now()),
                 f"user {name} ({role}) saved")  # fmt: skip

    @users_app.command("list")
    def users_list() -> None:
        """Every user with role, last login and live sessions."""
        from aftersale.accounts import list_users

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
        from aftersale.accounts import remove_user

        _account(lambda proj: remove_user(proj.db, name), f"user {name} removed")

    @users_app.command("passwd")
    def users_passwd(
        name: str,
        password: Annotated[
            str | None, typer.Option(help=f"Password (else ${PASSWORD_ENV}, else a prompt).")
        ] = None,
    ) -> None:
        """Set a new password; the user's sessions end at once."""
        from aftersale.accounts import set_password

        secret = password or os.environ.get(PASSWORD_ENV)
        if not secret:
            secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        _account(lambda proj: set_password(proj.db, name, secret),
                 f"password of {name} changed; its sessions ended")  # fmt: skip

    def _account(change: Callable[[Project], object], done: str) -> None:
        from aftersale.accounts import AccountError

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
        format: Annotated[
            Literal["table", "json"], typer.Option("--format", help="table or json.")
        ] = "table",
    ) -> None:
        """Holdout results with intervals, variants, funnels and attributed returns."""
        from campaigns.models import reading

        proj = open_project()
        prices = project_prices(proj)
        try:
            with reading(proj.db) as conn:
                _known_journey(proj, conn, journey, console)
            reports, returns, funnels, skips, deferrals, held = stats_figures(proj, prices, journey)
        finally:
            proj.close()
        if format == "json":
            doc = stats_document(prices, reports, returns, funnels, skips, deferrals)
            doc["resting"] = held
            typer.echo(json.dumps(doc, indent=2))
            return
        for report in reports:
            for table in experiment_tables(report, prices):
                console.print(table)
        console.print(funnel_table(funnels))
        console.print(returns_table(returns, prices))
        console.print(reasons_table("Not sent", skips))
        console.print(reasons_table("Deferred", deferrals))
        console.print(
            f"Resting now (offers held): {held['unsatisfied']} unsatisfied after a complaint, "
            f"{held['fatigue']} tired of unanswered e-mails"
        )


def stats_figures(proj: Project, prices: Prices, journey: str | None = None) -> tuple:
    """Everything ``stats`` reports: (experiments, returns, funnels, skip reasons, deferral
    reasons, resting).

    Two halves on connections of their own, side by side: the holdout and variant reports,
    and the one pass over the log with what is drawn from it. The database works outside
    the interpreter's lock, so on two cores the answer takes about as long as the longer
    half; the work (CPU) is the same as one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    from aftersale.customer_value import resting
    from aftersale.stats import (
        deferral_reasons,
        journey_returns,
        log_groups,
        skip_reasons,
        step_funnels,
    )
    from campaigns.models import reading

    now = _project_time(proj)

    def from_the_log() -> tuple:
        with reading(proj.db) as conn:
            groups = log_groups(conn, journey)  # one pass over the log for both
            return (
                journey_returns(conn, prices, journey, groups),
                step_funnels(conn, journey, groups),
                skip_reasons(conn, journey),
                deferral_reasons(conn, journey),
                resting(proj, conn, now),
            )

    with ThreadPoolExecutor(max_workers=1) as pool:
        log_half = pool.submit(from_the_log)
        with reading(proj.db) as conn:
            reports = experiments(conn, prices, journey)
        return (reports, *log_half.result())


def _project_time(proj: Project) -> datetime:
    from aftersale.admin.pages import clock_now  # the web stack: only when asked

    return clock_now(proj)


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


def stats_document(prices, reports, returns, funnels, skips, deferrals) -> dict[str, Any]:
    """``aftersale stats --format json``: per journey, its experiments and attributed figures."""
    from aftersale.stats import JourneyReturn

    by_journey = {r.journey_id: r for r in returns}
    journeys = []
    for report in reports:
        r = by_journey.get(report.journey_id) or JourneyReturn(report.journey_id)
        journeys.append({
            "id": report.journey_id,
            **report.to_dict(),
            "attributed": {
                "emails": r.emails, "sms_segments": r.sms_segments, "cost": str(r.cost),
                "orders": r.orders, "revenue": str(r.revenue),
                "roi": None if r.roi is None else str(r.roi),
            },
            "funnel": [{"step": f.step, "channel": f.channel, **dict(f.stages())}
                       for f in funnels if f.journey_id == report.journey_id],
        })  # fmt: skip
    return {
        "currency": prices.currency,
        "margin": float(prices.margin),
        "attribution_days": prices.attribution_days,
        "journeys": journeys,
        "skip_reasons": dict(skips),
        "deferral_reasons": dict(deferrals),
    }


def _pct(e: Estimate) -> str:
    return f"{e.estimate * 100:.1f} % [{e.low * 100:.1f}, {e.high * 100:.1f}]"


def _amount(e: Estimate, currency: str) -> str:
    return f"{e.estimate:,.2f} [{e.low:,.2f}, {e.high:,.2f}] {currency}"


def experiment_tables(report: ExperimentReport, prices: Prices) -> list[Table]:
    """The holdout comparison and the variants of one journey."""
    tables = []
    cur = prices.currency
    h = report.holdout
    if h is not None:
        table = Table("", "customers", "conversions", "conversion rate (95 %)",
                      "revenue per customer (95 %)",
                      title=f"{report.journey_id}: treated vs holdout ({h.share * 100:.0f} % held "
                            f"out, goal {report.goal})",
                      caption=f"verdict: {h.verdict}")  # fmt: skip
        for name, g in (("treated", h.treated), ("holdout", h.control)):
            table.add_row(name, str(g.customers), str(g.conversions), _pct(g.conversion_rate),
                          _amount(g.revenue_per_customer, cur))  # fmt: skip
        table.add_row("uplift", "", "", _pct(h.uplift_rate), _amount(h.uplift_revenue, cur))
        tables.append(table)
        money = Table("incremental", "estimate [95 %]", title=f"{report.journey_id}: "
                      f"incremental return (margin {float(prices.margin) * 100:.0f} %)")  # fmt: skip
        money.add_row("revenue", _amount(h.incremental_revenue, cur))
        money.add_row("costs (offers and messages)", f"{h.incremental_cost:,.2f} {cur}")
        money.add_row("profit", _amount(h.incremental_profit, cur))
        money.add_row("verdict", h.verdict)
        tables.append(money)
    if report.variants:
        table = Table("step", "variant", "sent", "conversions", "conversion rate (95 %)",
                      "P(beats first)", title=f"{report.journey_id}: variants")  # fmt: skip
        for step, v in report.variants:
            p = "–" if v.p_best is None else f"{v.p_best * 100:.0f} %"
            table.add_row(step, v.id, str(v.sent), str(v.conversions), _pct(v.conversion_rate), p)
        tables.append(table)
    return tables


def funnel_table(funnels: list) -> Table:
    table = figures_table("journey", "step", "ch", "due", "sent", "deliv.", "opened", "clicked",
                          title="Funnel per step (messages whose time has come)")  # fmt: skip
    for f in funnels:
        table.add_row(safe(f.journey_id), safe(f.step), safe(f.channel),
                      *("n/a" if n is None else str(n) for _, n in f.stages()))  # fmt: skip
    return right(table, *range(3, 8))


def returns_table(returns: list[JourneyReturn], prices: Prices) -> Table:
    cur = prices.currency
    table = figures_table("journey", "e-mails", "SMS seg.", f"cost ({cur})", "orders",
                          f"revenue ({cur})", "ROI%",
                          title=f"Attributed return (each follow-up order within "
                                f"{prices.attribution_days} days, to the last marketing "
                                f"message before it; not causal: see the holdout)")  # fmt: skip
    for r in returns:
        roi = f"{r.roi * 100:,.0f}" if r.roi is not None else "–"
        table.add_row(safe(r.journey_id), str(r.emails), str(r.sms_segments), f"{r.cost:.2f}",
                      str(r.orders), f"{r.revenue:.2f}", roi)  # fmt: skip
    return right(table, *range(1, 7))


def reasons_table(title: str, reasons: list[tuple[str, int]]) -> Table:
    table = figures_table("reason", "messages", keep=0, title=title)
    for reason, count in reasons:
        table.add_row(safe(reason), str(count))
    return right(table, 1)

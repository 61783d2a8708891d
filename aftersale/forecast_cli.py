"""``aftersale forecast``: the journeys' next months on a throwaway copy, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from aftersale.errors import AftersaleError
from aftersale.terminal import figures_table, right, safe

# The forecast (and the database under it) is imported when one is asked for.
if TYPE_CHECKING:
    from aftersale.app import Project
    from aftersale.forecast import Forecast
    from aftersale.forecast_figures import Figures

SPREAD = ("median", "p90", "p99", "max", "at_max")


def parse_date(value: str, tz: str) -> datetime:
    """``2026-12-31`` (end of that day in ``tz``) or an ISO 8601 time, as UTC."""
    from aftersale.forecast import ForecastInputError

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ForecastInputError(f"--until {value!r} is not a date like 2026-12-31") from None
    if parsed.tzinfo is None:
        if len(value) <= 10:
            parsed = datetime.combine(parsed.date(), time(23, 59, 59))
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.astimezone(UTC)


def add_commands(app: typer.Typer, open_project: Callable[[], Project], console: Console) -> None:
    """Register ``forecast`` on the CLI ``app``."""

    @app.command()
    def forecast(
        until: Annotated[
            str, typer.Option(help="Forecast up to this date (end of day, project time zone).")
        ],
        journeys: Annotated[
            Path | None,
            typer.Option(help="A directory of proposed journeys, forecast side by side."),
        ] = None,
        format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    ) -> None:
        """What the journeys would send, defer, skip and cost up to UNTIL — nothing is sent,
        and the project's database, clock and outbox stay as they are."""
        from aftersale.forecast import ForecastInputError, run_forecast

        errors = Console(stderr=True)
        if format not in ("table", "json"):
            _refuse(errors, "--format must be table or json")
        try:
            proj = open_project()
            tz = proj.settings.policy.get("default_timezone", "Europe/Berlin")
            end = parse_date(until, tz)
            with errors.status("forecasting…") if format == "table" else nullcontext():
                result = run_forecast(proj, end, journeys)
        except ForecastInputError as exc:
            _refuse(errors, str(exc))
        except AftersaleError as exc:
            errors.print(f"[red]error:[/] {safe(exc)}")
            raise typer.Exit(1) from None
        if format == "json":
            typer.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
        else:
            print_forecast(console, result)


def _refuse(errors: Console, message: str) -> None:
    errors.print(f"[red]error:[/] {safe(message)}", soft_wrap=True)
    raise typer.Exit(2)


def print_forecast(console: Console, result: Forecast) -> None:
    """The forecast as tables: the current journeys, and the proposed ones beside them."""
    console.print(
        f"[bold]forecast[/] {result.start:%Y-%m-%d %H:%M} → {result.until:%Y-%m-%d %H:%M} UTC"
        " (nothing was sent; the project is unchanged)"
    )
    _print_figures(console, "current journeys", result.current)
    if result.proposed is not None:
        _print_figures(console, f"proposed: {safe(result.proposed_from)}", result.proposed)
        _print_comparison(console, result.current, result.proposed)


def _print_figures(console: Console, title: str, figures: Figures) -> None:
    from aftersale.forecast_figures import WINDOWS

    statuses = " · ".join(f"{safe(k)} {v}" for k, v in figures.statuses.items())
    console.print(f"\n[bold]{title}[/]  messages at the end: {statuses or 'none'}")
    table = _table("journey", "channel", "sent", "deferred and skipped, by reason")
    for row in figures.journeys:
        held = [*_reasons("deferred", row.deferred), *_reasons("skipped", row.skipped)]
        table.add_row(safe(row.journey), safe(row.channel), str(row.sent),
                      "\n".join(held) or "—")  # fmt: skip
    console.print(table)
    spread = _table("contacts per customer", *SPREAD)
    for name in WINDOWS:
        values = figures.per_customer[name]
        spread.add_row(f"in any {name}", *(str(values[k]) for k in SPREAD))
    console.print(spread)
    console.print(f"customers contacted: {figures.per_customer['customers']}")
    caps = figures.per_customer["cap_pressure"]
    if caps:
        pressure = _table("cap", "deferred", "held", "→ sent", "→ skipped", "→ waiting",
                          "skipped")  # fmt: skip

        for reason, c in caps.items():
            pressure.add_row(safe(reason), str(c["deferrals"]), str(c["messages"]),
                             str(c["then_sent"]), str(c["then_skipped"]), str(c["still_planned"]),
                             str(c["skipped"]))  # fmt: skip
        console.print(pressure)
        console.print("held: messages a cap deferred (→ then sent, skipped or still waiting); "
                      "skipped: messages it skipped outright")  # fmt: skip
    else:
        console.print("caps: held nothing back")
    cost = figures.cost
    console.print(
        f"cost: {cost['total']} {safe(cost['currency'])} "
        f"({cost['email']['messages']} e-mails {cost['email']['cost']}, "
        f"{cost['sms']['segments']} SMS segments {cost['sms']['cost']})"
    )
    held = figures.resting
    console.print(
        f"resting at the end (offers held): {held.get('unsatisfied', 0)} unsatisfied after a "
        f"complaint, {held.get('fatigue', 0)} tired of unanswered e-mails"
    )


def _table(*columns: str) -> Table:
    """A table of figures for 80 columns (:func:`aftersale.terminal.figures_table`): counts
    to the right, reasons and caps wrapping within their column, never cut off."""
    table = figures_table(*columns, keep=0)
    return right(table, *(i for i, c in enumerate(columns)
                           if i > 0 and c != "channel" and "reason" not in c))  # fmt: skip


def _reasons(kind: str, counts: Any) -> list[str]:
    """``kind reason count`` a line, the most frequent first."""
    return [f"{kind} {safe(reason)} {n}" for reason, n in counts.most_common()]


def _print_comparison(console: Console, current: Figures, proposed: Figures) -> None:
    from aftersale.forecast_figures import WINDOWS

    table = _table("", "current", "proposed", "difference")
    table.title = "current → proposed"
    before = {(j.journey, j.channel): j for j in current.journeys}
    after = {(j.journey, j.channel): j for j in proposed.journeys}
    for key in sorted({*before, *after}):
        old, new = before.get(key), after.get(key)
        for label, pick in (("sent", lambda j: j.sent),
                            ("deferred", lambda j: j.deferred.total()),
                            ("skipped", lambda j: j.skipped.total())):  # fmt: skip
            a, b = (pick(old) if old else 0), (pick(new) if new else 0)
            table.add_row(f"{safe(key[0])} {safe(key[1])} {label}", str(a), str(b), _signed(b - a))
    for name in WINDOWS:
        for k in ("median", "p90", "max"):
            a, b = current.per_customer[name][k], proposed.per_customer[name][k]
            table.add_row(f"contacts in any {name}: {k}", str(a), str(b), _signed(b - a))
    a_cost, b_cost = Decimal(current.cost["total"]), Decimal(proposed.cost["total"])
    table.add_row(f"cost ({safe(current.cost['currency'])})", str(a_cost), str(b_cost),
                  _signed(b_cost - a_cost))  # fmt: skip
    console.print(table)


def _signed(value: Any) -> str:
    return f"+{value}" if value > 0 else str(value)

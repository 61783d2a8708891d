"""Terminal commands for listening to customers: ``aftersale alerts``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from aftersale.terminal import safe

if TYPE_CHECKING:
    from aftersale.app import Project


def add_listening_commands(
    app: typer.Typer, open_project: Callable[[], Project], console: Console
) -> None:
    """Register ``alerts`` on the CLI ``app``."""

    @app.command()
    def alerts(
        format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
        no_mail: Annotated[
            bool, typer.Option("--no-mail", help="Do not mail support, even if configured.")
        ] = False,
    ) -> None:
        """Complaint rates by SKU, category and journey that rose significantly over the
        last 30 days (p-value shown) or passed the configured ceiling. Exit 1 with alerts."""
        from aftersale.alerts import evaluate

        if format not in ("table", "json"):
            console.print("--format must be table or json", style="red", markup=False)
            raise typer.Exit(2)
        project = open_project()
        try:
            report = evaluate(project, mail=not no_mail)
        finally:
            project.close()
        if format == "json":
            print(json.dumps(report.as_dict(), indent=2))
        else:
            console.print(_table(report))
        raise typer.Exit(1 if report.alerts else 0)


def _table(report) -> Table | str:
    if not report.alerts:
        return (
            f"No complaint alerts ({len(report.subjects)} SKUs, categories and journeys "
            f"checked at {report.at:%Y-%m-%d %H:%M} UTC)."
        )
    table = Table(title=f"Complaint alerts at {report.at:%Y-%m-%d %H:%M} UTC")
    for column in ("what", "name", "why", "last 30 d / 1,000", "baseline / 1,000", "p-value"):
        table.add_column(column)
    for a in report.alerts:
        table.add_row(
            a.dimension,
            safe(a.name),
            a.reason,
            f"{a.recent_rate:.1f} ({a.recent_complaints}/{a.recent_exposures})",
            "—" if a.baseline_rate is None else f"{a.baseline_rate:.1f}",
            "—" if a.p_value is None else f"{a.p_value:.2g}",
        )
    return table

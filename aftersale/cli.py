"""The ``aftersale`` command line."""

from __future__ import annotations

import inspect
import json
import os
import secrets
import shutil
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from aftersale.admin.terminal import add_commands
from aftersale.errors import AftersaleError, ConfigurationError
from aftersale.forecast_cli import add_commands as add_forecast
from aftersale.journeys_cli import add_journey_commands
from aftersale.listening import add_listening_commands
from aftersale.marketing import add_commands as add_marketing_commands
from aftersale.terminal import clean, safe
from channels.redaction import redact, redact_logs

# What only some commands need is imported inside them (here and in the modules above):
# `--help`, `init`, `journeys validate` and `templates copy` never load the database stack
# (SQLAlchemy, the models, migrations); tests/e2e/test_cli_startup.py keeps it so.
if TYPE_CHECKING:
    from aftersale.app import Project
    from aftersale.sendlog import LogFilter
    from campaigns.importing import ImportReport


class _Shell(typer.Typer):
    """The CLI app; a settings problem found anywhere ends any command with its lines."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        one_line_summaries(self)
        try:
            return super().__call__(*args, **kwargs)
        except ConfigurationError as exc:
            report_configuration(exc)
            sys.exit(2)


def one_line_summaries(group: typer.Typer) -> None:
    """Each command's summary in a group's listing: its docstring's first paragraph as one
    line, which the listing wraps to the terminal; it would keep the docstring's own line
    breaks and leave ragged lines at 80 columns."""
    for command in group.registered_commands:
        doc = command.help or inspect.getdoc(command.callback) or ""
        if command.short_help is None and doc:
            command.short_help = " ".join(doc.split("\n\n")[0].split())
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            one_line_summaries(sub.typer_instance)


def report_configuration(exc: ConfigurationError) -> None:
    """Each problem on its own line, no traceback."""
    for line in str(exc).splitlines():
        err.print(f"[bold red]error:[/] {safe(redact(line))}", highlight=False, soft_wrap=True)


app = _Shell(
    help="aftersale: post-purchase journeys over e-mail and SMS, with a contact policy "
    "that never harasses anyone.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(help="Import customers (CSV) or events (JSONL).", no_args_is_help=True)
log_app = typer.Typer(help="Search the send log, or export it.", invoke_without_command=True)
events_app = typer.Typer(help="Events that failed to apply: retry them.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(log_app, name="log")
app.add_typer(events_app, name="events")

console = Console(emoji=False)
err = Console(stderr=True, emoji=False)
STATE: dict[str, Any] = {"project": None}

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        envvar="AFTERSALE_PROJECT",
        help="Project directory (holds aftersale.toml, journeys/, templates/).",
    ),
]


@app.callback()
def main(ctx: typer.Context, project: ProjectOpt = None) -> None:
    STATE["project"] = project or Path(".")
    redact_logs()  # no password or token in any log line
    if ctx.invoked_subcommand != "init":
        check_settings()


def check_settings() -> None:
    """Refuse to start on invalid settings, one line per problem (exit 2). The ``[policy]``
    table is checked by the commands that apply it: a customer's view stays readable."""
    try:
        project()
    except ConfigurationError as exc:
        report_configuration(exc)
        raise typer.Exit(2) from None


def project() -> Project:
    from aftersale.app import Project

    return Project.open(STATE["project"])


def fail(message: str, code: int = 1) -> None:
    err.print(
        f"[bold red]error:[/] {safe(redact(message), lines=True)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


def run_guarded(fn: Any) -> Any:
    try:
        return fn()
    except AftersaleError as exc:
        fail(str(exc), 2)


# ------------------------------------------------------------------------------ init

DEFAULT_TOML = """\
# aftersale project settings. Every key can be overridden by an environment variable:
# [email] provider -> AFTERSALE_EMAIL_PROVIDER, secret_key -> AFTERSALE_SECRET_KEY, ...
secret_key = "{secret}"
default_locale = "de"
default_region = "DE"
public_url = "http://127.0.0.1:8000"

[shop]
# Every message names its sender: fill these in before going live. `run`, `serve` and
# `simulate` refuse SendGrid, SMTP and Twilio while one still says FILL IN (or .example).
{shop}
[email]
provider = "outbox"          # outbox | sendgrid | smtp
from = "{email_from}"

[sms]
provider = "outbox"          # outbox | twilio
help_text = "{sms_help}"
opt_out_hint = {{ de = "Abmelden: STOP", en = "Reply STOP to opt out" }}

[policy]
default_timezone = "Europe/Berlin"
quiet_hours = "20:00-09:00"   # recipient's local time; applies to every message
quiet_days = ["sun"]
public_holidays = "DE"        # or "auto": each customer's own (country, else phone, else default_region)
transactional_quiet = "hours" # transactional mail keeps quiet hours only; "all" | "none"

[[policy.caps]]               # marketing messages only; rolling windows
channel = "email"
max = 2
per = "7d"

[[policy.caps]]
channel = "sms"
max = 1
per = "7d"

[[policy.caps]]
channel = "any"
max = 3
per = "14d"
"""


PLACEHOLDER_SHOP = {
    "name": "FILL IN: the shop's name",
    "url": "https://FILL-IN.example",
    "support_email": "service@FILL-IN.example",
    "support_phone": "FILL IN: support phone, e.g. +49 30 9876543",
    "address": "FILL IN: company · street and number · postcode and city",
    "imprint": "FILL IN: company, register court and number, managing directors, VAT id",
}


def _shop_toml(shop: dict[str, str]) -> dict[str, str]:
    """The ``{shop}``, ``{email_from}`` and ``{sms_help}`` parts of DEFAULT_TOML."""
    lines = "".join(
        f"{key} = {json.dumps(value, ensure_ascii=False)}\n" for key, value in shop.items()
    )
    name = "Your shop" if shop["name"].startswith("FILL IN") else shop["name"]
    return {
        "shop": lines,
        "email_from": f"{name} <{shop['support_email']}>",
        "sms_help": f"{name}: {shop['support_phone']}. Abmelden mit STOP.",
    }


def write_project(directory: Path, *, shop: dict[str, str] | None = None) -> list[Path]:
    """Write a new project: settings, the built-in journeys, a templates folder.

    The ``[shop]`` table holds ``shop`` (the demo's sample shop), else placeholders.
    """
    from campaigns.journeys import BUILTIN_DIR

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    config = directory / "aftersale.toml"
    if not config.exists():  # it holds the secret key: the owner's alone
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            parts = _shop_toml(shop or PLACEHOLDER_SHOP)
            handle.write(DEFAULT_TOML.format(secret=secrets.token_urlsafe(32), **parts))
        written.append(config)
    journeys = directory / "journeys"
    journeys.mkdir(exist_ok=True)
    for source in sorted(BUILTIN_DIR.glob("*.yaml")):
        target = journeys / source.name
        if not target.exists():
            shutil.copyfile(source, target)
            written.append(target)
    (directory / "templates").mkdir(exist_ok=True)
    return written


@app.command()
def init(directory: Annotated[Path | None, typer.Argument(help="Where to create it.")] = None):
    """Create a project: aftersale.toml, the built-in journeys and a templates/ folder."""
    target = directory or STATE["project"]
    written = write_project(target)
    for path in written:
        console.print(f"  wrote {path}")
    if not written:
        console.print(f"{target} is already a project; nothing overwritten.")
    console.print(
        f"\nNext: [bold]aftersale -p {target} import customers customers.csv[/], then "
        "[bold]import events events.jsonl[/] and [bold]simulate --until 2026-12-31[/]."
    )


# ---------------------------------------------------------------------------- import


def _progress_import(label: str, path: Path, run: Any) -> ImportReport:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    if not path.exists():
        fail(f"{path}: no such file")
    total = path.stat().st_size
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        report = run(lambda done: bar.update(task, completed=done))
    return report


def _report(kind: str, path: Path, report: ImportReport, strict: bool) -> None:
    for problem in report.errors[:50]:
        err.print(f"[red]{safe(problem)}[/]", highlight=False)
    if len(report.errors) > 50:
        err.print(f"... and {len(report.errors) - 50} more problems")
    if report.header_unusable:
        fail(f"{path}: nothing imported: the header cannot be used")
    if report.rejected:
        fail(f"{path}: rejected ({len(report.errors)} bad rows, --strict): nothing imported")
    summary_line = f"{kind}: {report.imported} imported"
    if report.unchanged:
        summary_line += f", {report.unchanged} already known"
    if report.errors:
        summary_line += f", {len(report.errors)} rejected"
    console.print(summary_line)
    if report.errors:
        raise typer.Exit(1)


StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Reject the whole file if any row is bad.")
]


@import_app.command("customers")
def import_customers_cmd(file: Path, strict: StrictOpt = False) -> None:
    """Import customers.csv (id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent,...)."""
    from campaigns.importing import import_customers

    proj = project()
    s = proj.settings
    report = run_guarded(
        lambda: _progress_import(
            "customers",
            file,
            lambda progress: import_customers(
                proj.db,
                file,
                region=s.default_region,
                default_locale=s.default_locale,
                strict=strict,
                progress=progress,
            ),
        )
    )
    _report("customers", file, report, strict)


@import_app.command("events")
def import_events_cmd(file: Path, strict: StrictOpt = False) -> None:
    """Import events.jsonl (one event a line; re-importing an id is a no-op)."""
    from campaigns.importing import import_events

    proj = project()
    report = run_guarded(
        lambda: _progress_import(
            "events",
            file,
            lambda progress: import_events(proj.db, file, strict=strict, progress=progress),
        )
    )
    _report("events", file, report, strict)


# --------------------------------------------------------------------------- preview


@app.command()
def preview(
    template: str,
    customer: Annotated[
        str | None, typer.Option(help="Customer id (a sample when absent).")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="Locale, e.g. de or en.")] = None,
    channel: Annotated[str | None, typer.Option(help="email or sms.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write <out>.html and <out>.txt.")] = None,
    order: Annotated[
        str | None, typer.Option(help="Order id (the customer's latest when absent).")
    ] = None,
    item: Annotated[str | None, typer.Option(help="SKU of the order's item to show.")] = None,
) -> None:
    """Render a template with real data and print subject, sizes and SMS segments; say
    where sample data stands in for the customer's."""
    from aftersale.previewing import preview_template

    result = run_guarded(lambda: preview_template(project(), template, customer, locale, channel,
                                                  order_id=order, item_sku=item))  # fmt: skip
    for note in result.notes:
        err.print(f"[yellow]sample data:[/] {safe(note)}", highlight=False)
    table = Table(show_header=False)
    for key, value in result.summary().items():
        table.add_row(safe(key), safe(value))
    console.print(table)
    if result.sms_body is not None:
        console.print(clean(result.sms_body, lines=True), highlight=False, markup=False)
    elif result.text:
        console.print(clean(result.text, lines=True), highlight=False, markup=False)
    if out is not None:
        for path in result.write(out):
            console.print(f"wrote {path}")


# ------------------------------------------------------------------------- run, simulate


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Process what is due now, then exit.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Dispatcher processes on this machine (PostgreSQL: any)."
        ),
    ] = 1,
) -> None:
    """Run the dispatcher on the real clock (every dispatch.tick_seconds)."""
    from scheduler.runner import Runner
    from scheduler.workers import Worker, WorkerSpec, run_workers

    proj = project()
    _refuse_weak_key(proj)
    for warning in proj.warnings():
        err.print(f"[yellow]warning:[/] {safe(warning)}", highlight=False)
    if workers > 1:
        console.print(f"starting {workers} dispatcher processes; Ctrl-C stops them")
        spec = WorkerSpec(directory=str(proj.directory), once=once)
        raise typer.Exit(run_guarded(lambda: run_workers(spec, workers)))
    dispatcher = run_guarded(lambda: proj.dispatcher(proj.system_clock()))
    worker = Worker.for_dispatcher(dispatcher, [] if once else proj.chores())
    if once:
        stats = worker.tick()
        worker.close()
        console.print(_stats_line(stats))
        _warn_failed_events(proj)
        return
    console.print(f"dispatching every {proj.settings.dispatch_tick_seconds}s; Ctrl-C stops")
    Runner(
        worker,
        interval=proj.settings.dispatch_tick_seconds,
        on_tick=lambda s: s.claimed and console.print(_stats_line(s)),
    ).run()


def _refuse_weak_key(proj: Project, *, always: bool = False) -> None:
    """Signing for real customers (or the console) needs a strong ``secret_key``; sending
    to them needs the shop's own legal data (``aftersale.legal``)."""
    if always or proj.sends_for_real():
        run_guarded(proj.require_strong_key)
    run_guarded(proj.require_legal_data)


def _stats_line(stats: Any) -> str:
    return (
        f"events {stats.events} · sent {stats.sent} · deferred {stats.deferred} · "
        f"skipped {stats.skipped} · retried {stats.retried} · failed {stats.failed} · "
        f"unknown {stats.unknown}"
    )


def parse_until(value: str, tz: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-12-31") from None
    if parsed.tzinfo is None:
        if len(value) <= 10:
            parsed = datetime.combine(parsed.date(), time(23, 59, 59))
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.astimezone(UTC)


@app.command()
def simulate(
    until: Annotated[str, typer.Option(help="Stop at this date (end of day, project time zone).")],
) -> None:
    """Run the journeys on simulated time, from where the project's clock stands to UNTIL."""
    from scheduler.simulation import SimulationDispatcher
    from scheduler.simulation import simulate as run_simulation

    proj = project()
    tz = proj.settings.policy.get("default_timezone", "Europe/Berlin")
    end = parse_until(until, tz)
    _refuse_weak_key(proj)
    run_guarded(lambda: proj.policy)  # a broken policy is reported before anything runs
    clock = run_guarded(proj.simulated_clock)
    if clock is None:
        fail("nothing to simulate: import events first")
    if end <= clock.now():
        fail(f"the project's clock already stands at {clock.now():%Y-%m-%d %H:%M} UTC")
    dispatcher = run_guarded(lambda: proj.dispatcher(clock, kind=SimulationDispatcher))
    start = clock.now()
    with console.status("simulating…") as status:
        # Customers go forward each on their own: what has been decided, not one date.
        dispatcher.on_batch = lambda s: status.update(
            f"simulating… {s.sent + s.deferred + s.skipped:,} decisions, {s.events:,} events"
        )
        stats = run_simulation(
            dispatcher,
            clock,
            end,
            on_step=lambda now, _s: status.update(f"simulating… {now:%Y-%m-%d}"),
        )
    dispatcher.close()
    proj.save_simulated_now(clock.now())
    console.print(f"simulated {start:%Y-%m-%d} → {end:%Y-%m-%d}: {_stats_line(stats)}")
    _warn_failed_events(proj)


def _warn_failed_events(proj: Project) -> None:
    from aftersale.eventlog import count_failed
    from campaigns.models import reading

    with reading(proj.db) as conn:
        failed = count_failed(conn)
    if failed:
        err.print(
            f"[yellow]warning:[/] {failed} event(s) could not be applied and are set aside: "
            "see `aftersale log --events --status failed`, then `aftersale events retry`",
            highlight=False,
        )


# ------------------------------------------------------------------------------- log


def _filter(
    customer: str | None,
    contact: str | None,
    journey: str | None,
    step: str | None,
    channel: str | None,
    status: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
) -> LogFilter:
    from aftersale.sendlog import LogFilter

    def when(value: str | None) -> datetime | None:
        return parse_until(value, "UTC") if value else None

    since_at = (
        datetime.fromisoformat(since).replace(tzinfo=UTC)
        if since and len(since) <= 10
        else when(since)
    )
    return LogFilter(
        customer=customer,
        contact=contact,
        journey=journey,
        step=step,
        channel=channel,
        status=status,
        reason=reason,
        since=since_at,
        until=when(until),
    )


@log_app.callback()
def log(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option(help="Customer id.")] = None,
    contact: Annotated[str | None, typer.Option(help="E-mail address or phone number.")] = None,
    journey: Annotated[str | None, typer.Option(help="Journey id.")] = None,
    step: Annotated[str | None, typer.Option(help="Step id.")] = None,
    channel: Annotated[str | None, typer.Option(help="email or sms.")] = None,
    status: Annotated[str | None, typer.Option(help="planned, sent, skipped, unknown, …")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Reason prefix, e.g. quiet; deferrals count too.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Due on or after (YYYY-MM-DD, UTC).")] = None,
    until: Annotated[
        str | None, typer.Option(help="Due up to the end of (YYYY-MM-DD, UTC).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.", min=1, max=1_000_000)] = 50,
    events: Annotated[
        bool,
        typer.Option(
            "--events", help="List events instead (--status pending|applied|failed, --customer)."
        ),
    ] = False,
    upcoming: Annotated[
        bool, typer.Option("--upcoming", help="Planned messages, the soonest first.")
    ] = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, however wide.")] = False,
    utc: Annotated[bool, typer.Option("--utc", help="Times in UTC.")] = False,
) -> None:
    """Search the send log: every decided message, the latest decision first, with its
    reason; planned messages with --upcoming. Times in the customer's zone with --customer,
    else the project's (--utc for UTC)."""
    from aftersale.sendlog import decided_log, upcoming_log
    from campaigns.models import reading

    flt = _filter(customer, contact, journey, step, channel, status, reason, since, until)
    ctx.obj = flt
    proj = project()
    if events:
        _log_events(proj, status, customer, limit)
        return
    try:
        with reading(proj.db) as conn:
            _check_filter(proj, conn, flt)
            if ctx.invoked_subcommand:
                return
            upcoming = upcoming or status == "planned"
            rows = (upcoming_log if upcoming else decided_log)(conn, flt, limit=limit)
            zone = _log_zone(proj, conn, customer, utc)
    finally:
        proj.close()
    table = _log_table(rows, zone, upcoming=upcoming, wide=wide)
    # --wide: every column whole, however wide the terminal
    (Console(emoji=False, width=1000) if wide else console).print(table)
    if not rows:
        console.print("no planned messages match" if upcoming else "no decided messages match")
    elif len(rows) == limit:
        first = "soonest" if upcoming else "latest"
        console.print(f"[dim]showing the {first} {limit}; narrow with filters or use --limit[/]")


def _check_filter(proj: Project, conn: Any, flt: LogFilter) -> None:
    """Exit 2 naming the valid choices when a filter value names nothing known."""
    from aftersale.choices import known_steps, unknown_value

    loaded, _ = proj.load_journeys()
    defined = {j.journey.id: [s.id for s in j.journey.steps] for j in loaded}
    problem = unknown_value(conn, flt, known_steps(conn, defined))
    if problem:
        fail(problem, 2)


def _log_zone(proj: Project, conn: Any, customer_id: str | None, utc: bool) -> ZoneInfo:
    """The zone the log's times are shown in: UTC when asked, else the customer's when the
    log is one customer's, else the project's."""
    from aftersale.sendlog import customer_timezone
    from aftersale.views import _zone

    if utc:
        return ZoneInfo("UTC")
    default = proj.settings.policy.get("default_timezone", "Europe/Berlin")
    return _zone(customer_timezone(conn, customer_id) if customer_id else None, default)


def _log_table(rows: list[Any], zone: ZoneInfo, *, upcoming: bool, wide: bool) -> Table:
    """The log at 80 columns: what, who, when and why, long values wrapped; ``wide``
    shows every column."""
    from aftersale.sendlog import reason_text

    def at(moment: datetime | None) -> str:
        return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}" if moment else ""

    caption = f"times in {zone.key}"
    if wide:
        table = Table("id", "customer", "journey", "step", "#", "item", "channel", "status",
                      "reason", "due", "sent", "decided", caption=caption)  # fmt: skip
        for r in rows:
            table.add_row(
                str(r.id), safe(r.customer_id), safe(r.journey_id), safe(r.step),
                str(r.occurrence), safe(r.item_name or ""), safe(r.channel), _status(r.status),
                safe(reason_text(r)), at(r.due_at), at(r.sent_at), at(r.updated_at),
            )  # fmt: skip
        return table
    table = Table(box=box.SIMPLE_HEAD, caption=caption, show_edge=False, padding=(0, 1))
    table.add_column("id", no_wrap=True, justify="right")
    table.add_column("due" if upcoming else "decided", width=10)
    table.add_column("customer", overflow="fold", max_width=10)
    table.add_column("message", overflow="fold", ratio=1)
    table.add_column("status, reason", overflow="fold", ratio=1)
    for r in rows:
        what = f"{r.journey_id}\n{r.step}" + (f" #{r.occurrence}" if r.occurrence > 1 else "")
        what += f" · {r.item_name}" if r.item_name else ""
        when = r.due_at if upcoming else (r.updated_at or r.sent_at or r.due_at)
        reason = reason_text(r)
        table.add_row(str(r.id), at(when).replace(" ", "\n"), safe(r.customer_id),
                      safe(f"{what} · {r.channel}", lines=True),
                      _status(r.status) + (f"\n{safe(reason)}" if reason else ""))  # fmt: skip
    return table


def _log_events(proj: Project, status: str | None, customer: str | None, limit: int) -> None:
    from aftersale.eventlog import EVENT_STATUSES, event_status, query_events
    from campaigns.models import reading

    if status is not None and status not in EVENT_STATUSES:
        fail(f"--status with --events must be one of {', '.join(EVENT_STATUSES)}")
    with reading(proj.db) as conn:
        rows = query_events(conn, status=status, customer=customer, limit=limit)
    table = Table("event", "type", "customer", "at (UTC)", "status", "error", "failed (UTC)")
    for r in rows:
        state = event_status(r)
        table.add_row(
            safe(r.id), safe(r.type), safe(r.customer_id), f"{r.at:%Y-%m-%d %H:%M}",
            "[red]failed[/]" if state == "failed" else state, safe(r.error_detail or ""),
            f"{r.failed_at:%Y-%m-%d %H:%M}" if r.failed_at else "",
        )  # fmt: skip
    console.print(table)
    if len(rows) == limit:
        console.print(f"[dim]showing {limit}; narrow with filters or use --limit[/]")


def _status(status: str) -> str:
    colour = {"sent": "green", "delivered": "green", "skipped": "yellow", "cancelled": "yellow",
              "failed": "red", "bounced": "red", "unknown": "magenta"}.get(status)  # fmt: skip
    return f"[{colour}]{status}[/]" if colour else safe(status)


@log_app.command("export")
def log_export(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: standard output).")
    ] = None,
) -> None:
    """Export the (filtered) send log, one record a message, times in UTC."""
    from aftersale.sendlog import LogFilter, write_export
    from campaigns.models import reading

    if format not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv")
    proj = project()
    flt: LogFilter = ctx.obj or LogFilter()
    with reading(proj.db) as conn:
        if out is None:
            write_export(conn, flt, sys.stdout, format)
            return
        with out.open("w", encoding="utf-8", newline="") as handle:
            count = write_export(conn, flt, handle, format)
    err.print(f"wrote {count} messages to {out}")


# ---------------------------------------------------------------------------- events


@events_app.command("retry")
def events_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids of failed events.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed event.")] = False,
) -> None:
    """Queue failed events again (after a fix); the next run or simulate applies them."""
    from campaigns.engine import retry_events

    if bool(ids) == all_failed:
        fail("name the failed events to retry, or give --all-failed")
    proj = project()
    with proj.db.begin() as conn:
        queued = retry_events(conn, None if all_failed else ids)
    unknown = sorted(set(ids or ()) - set(queued))
    for event_id in unknown:
        err.print(f"[yellow]{safe(event_id)}: no failed event with this id[/]", highlight=False)
    console.print(f"{len(queued)} event(s) queued again; the next run or simulate applies them")
    if unknown:
        raise typer.Exit(1)


# -------------------------------------------------------------------------- customer


@app.command()
def customer(
    customer_id: str,
    utc: Annotated[bool, typer.Option("--utc", help="Times in UTC, not the customer's.")] = False,
) -> None:
    """One customer's timeline: events, enrolments (and why not) and every message with its
    reason, in the customer's time zone."""
    from aftersale.admin.pages import clock_now
    from aftersale.customer_value import customer_value, value_lines
    from aftersale.sendlog import customer_timeline
    from campaigns.models import reading

    proj = project()
    try:
        with reading(proj.db) as conn:
            timeline = customer_timeline(conn, customer_id)
            value = timeline and customer_value(proj, conn, timeline.customer, clock_now(proj))
    finally:
        proj.close()
    if timeline is None:
        fail(f"no customer {customer_id!r}")
    from aftersale.admin.customers import holiday_calendar
    from aftersale.views import print_timeline

    holidays = holiday_calendar(lambda: proj.policy, timeline.customer)
    tz = proj.settings.policy.get("default_timezone", "Europe/Berlin")
    print_timeline(console, timeline, tz, holidays=holidays, utc=utc, value=value_lines(value))


@app.command()
def why(
    customer_id: str,
    journey: Annotated[str | None, typer.Argument(help="Journey id (default: every one).")] = None,
    utc: Annotated[bool, typer.Option("--utc", help="Times in UTC, not the customer's.")] = False,
) -> None:
    """Why a customer did or did not get a journey: enrolled or not and why, each message
    with its decisions, and what is planned next and when."""
    from aftersale.sendlog import customer_timeline
    from aftersale.views import _zone
    from aftersale.why import known_journeys, print_why
    from campaigns.models import reading

    proj = project()
    try:
        with reading(proj.db) as conn:
            timeline = customer_timeline(conn, customer_id)
            journeys = known_journeys(conn)
    finally:
        proj.close()
    if timeline is None:
        fail(f"no customer {customer_id!r}", 2)
    if journey is not None and journey not in journeys:
        fail(f"no journey {journey!r}; choose one of: {', '.join(journeys)}", 2)
    tz = proj.settings.policy.get("default_timezone", "Europe/Berlin")
    print_why(console, timeline, _zone(timeline.customer.timezone, tz), journey, utc=utc)


# ------------------------------------------------------------------------------ demo


@app.command()
def demo(
    dir: Annotated[Path | None, typer.Option("--dir", help="Project directory to use.")] = None,
    customers: Annotated[
        int, typer.Option(help="How many customers to generate.", min=1, max=1_000_000)
    ] = 500,
    months: Annotated[int, typer.Option(help="How many months to simulate.", min=1, max=120)] = 12,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    providers: Annotated[
        str, typer.Option(help="outbox (files), or fake: SendGrid and Twilio fakes on loopback.")
    ] = "outbox",
) -> None:
    """Generate a German shop, simulate a year of journeys and show what happened."""
    from aftersale.demo import run_demo

    if providers == "outbox":
        run_demo(console, dir, customers=customers, months=months, seed=seed)
        return
    if providers != "fake":
        fail(f"--providers must be outbox or fake, not {providers!r}")
    from aftersale.providers import FakeProviders

    with FakeProviders() as fakes:
        run_demo(console, dir, customers=customers, months=months, seed=seed,
                 settings=fakes.settings())  # fmt: skip
        console.print(f"fake providers received: {fakes.received()}")


# ----------------------------------------------------------------------------- serve


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the admin console (its address is printed first), the webhooks, the
    unsubscribe pages and the HTTP API."""
    import uvicorn

    from aftersale.web import create_app, server_options

    proj = project()
    _refuse_weak_key(proj, always=True)
    app = create_app(proj)
    console.print(f"admin console: {console_url(host, port)}", markup=False, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info", **server_options(proj.settings))


def console_url(host: str, port: int) -> str:
    """Where a browser on this machine finds the console served on ``host``:``port``."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/admin/"


# ------------------------------------------------------------------ users and stats

add_commands(app, project, console)
add_journey_commands(app, project, console)
add_marketing_commands(app, project, console)
add_forecast(app, project, console)
add_listening_commands(app, project, console)


if __name__ == "__main__":  # pragma: no cover
    app()

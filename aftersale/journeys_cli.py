"""``aftersale journeys list|validate|show|migrate`` and ``aftersale templates copy``."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from aftersale.errors import AftersaleError
from aftersale.terminal import clean, safe

# Registering the commands imports neither the journeys' models nor the templates (`--help`
# stays quick); the database stack is loaded only to read a project's database.
if TYPE_CHECKING:
    from aftersale.app import Project
    from campaigns.journey_problems import JourneyProblem
    from campaigns.journeys import LoadedJourney
    from campaigns.policy import ContactPolicy

err = Console(stderr=True, emoji=False)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {safe(message, lines=True)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except AftersaleError as exc:
        fail(str(exc))


def add_journey_commands(app: typer.Typer, open_project: Callable[[], Project], console: Console):
    """Register ``journeys ...`` and ``templates copy`` on the CLI ``app``."""
    journeys_app = typer.Typer(help="List, validate, show and migrate journeys.",
                               no_args_is_help=True)  # fmt: skip
    templates_app = typer.Typer(help="The project's templates.", no_args_is_help=True)
    app.add_typer(journeys_app, name="journeys")
    app.add_typer(templates_app, name="templates")

    @journeys_app.command("list")
    def journeys_list() -> None:
        """The project's journeys with their trigger and steps."""
        loaded, problems = open_project().load_journeys()
        # The id is what one types: whole. The file only where it is not <id>.yaml.
        files = [Path(item.source).name for item in loaded]
        named = any(f != f"{item.journey.id}.yaml" for f, item in zip(files, loaded, strict=True))
        table = Table()
        table.add_column("journey", no_wrap=True)
        for column in ("name", "trigger", "steps", *(["file"] if named else [])):
            table.add_column(column, overflow="fold")  # a long word breaks, not ends in …
        for item, file in zip(loaded, files, strict=True):
            j = item.journey
            steps = ", ".join(f"{s.id} ({s.send.channel})" for s in j.steps)
            trigger = j.trigger.event + (" per item" if j.trigger.for_each == "item" else "")
            table.add_row(*map(safe, (j.id, j.name, trigger, steps, *([file] if named else []))))
        console.print(table)
        if problems:
            err.print(f"[yellow]{len(problems)} problem(s): run `aftersale journeys validate`[/]")

    @journeys_app.command("validate")
    def journeys_validate() -> None:
        """Check every journey, the templates it uses and, once data is imported, the
        names it reads; exit 1 on any error (warnings alone exit 0)."""
        proj = open_project()
        try:
            loaded, problems = proj.load_journeys()
            problems += guarded(lambda: template_problems(proj, loaded))
            problems += guarded(lambda: window_problems(proj.policy, loaded))
            problems += data_problems(proj, loaded)
            problems += topic_problems(loaded)
        finally:
            proj.close()
        for problem in problems:
            style = "red" if problem.level == "error" else "yellow"
            console.print(f"[{style}]{safe(str(problem))}[/]", highlight=False, soft_wrap=True)
        errors = [p for p in problems if p.level == "error"]
        if errors:
            files = len({p.file for p in errors})
            err.print(f"[bold red]error:[/] {len(errors)} error(s) in {files} journey file(s)")
            raise typer.Exit(1)
        console.print(f"[green]{len(loaded)} journeys valid[/]")

    @journeys_app.command("show")
    def journeys_show(journey_id: str) -> None:
        """Show one journey's definition and its active enrolments per version."""
        proj = open_project()
        loaded, _ = proj.load_journeys()
        item = next((i for i in loaded if i.journey.id == journey_id), None)
        if item is None:
            fail(f"no journey {journey_id!r}", 1)
        j = item.journey
        console.print(f"[bold]{safe(j.name)}[/] ({safe(j.id)}) — {safe(item.source)}")
        if j.description:
            console.print(clean(j.description.strip(), lines=True), markup=False)
        console.print_json(json.dumps(j.model_dump(mode="json", by_alias=True, exclude_none=True)))
        if has_database(proj):
            try:
                _store_edits(proj)
                print_versions(proj, journey_id, console)
            finally:
                proj.close()

    @journeys_app.command("migrate")
    def journeys_migrate(
        journey_id: str,
        from_version: Annotated[
            int | None, typer.Option("--from", help="Move only enrolments on this version.")
        ] = None,
        dry_run: Annotated[bool, typer.Option(help="Say what would move; change nothing.")] = False,
    ) -> None:
        """Move active enrolments to the journey's current version, replanning the steps
        they have not sent from their own anchors."""
        from campaigns.migrating import migrate

        proj = open_project()
        try:
            guarded(lambda: proj.journeys)  # stores an edited definition as the new version
            zone = ZoneInfo(proj.policy.rules.default_timezone)
            now = proj.simulated_now() or proj.now()
            with proj.db.begin() as conn:
                report = migrate(conn, journey_id, now, default_zone=zone,
                                 from_version=from_version, dry_run=dry_run)  # fmt: skip
        except LookupError as exc:
            fail(str(exc))
        finally:
            proj.close()
        print_migration(report, console)

    @templates_app.command("copy")
    def templates_copy(
        name: str,
        force: Annotated[bool, typer.Option(help="Overwrite files already there.")] = False,
    ) -> None:
        """Copy a built-in template (every channel and language) into the project's
        templates/ folder, to edit there."""
        proj = open_project()
        copied = guarded(lambda: copy_template(name, proj.settings.templates_dir, force=force))
        for path in copied:
            console.print(f"wrote {safe(str(path))}", highlight=False)


def _store_edits(proj: Project) -> None:
    """Store edited definitions as new versions, as the next run would; with invalid
    journeys the versions stored so far are shown, and said to be."""
    try:
        assert proj.journeys is not None
    except AftersaleError:
        err.print("[yellow]some journeys are invalid: versions as last stored[/]")


def builtin_template_names() -> list[str]:
    """The names of the built-in templates (``warranty_offer``, ``thank_you``...)."""
    from templates.renderer import BUILTIN_DIR as TEMPLATES_BUILTIN

    names = {p.name.split(".")[0] for p in TEMPLATES_BUILTIN.glob("*.j2")}
    return sorted(name for name in names if not name.startswith("_"))


def copy_template(name: str, target: Path, *, force: bool = False) -> list[Path]:
    """Copy built-in template ``name``'s files into ``target``; refuses to overwrite."""
    from campaigns.journey_problems import nearest
    from templates.renderer import BUILTIN_DIR as TEMPLATES_BUILTIN

    plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) is not None
    files = sorted(TEMPLATES_BUILTIN.glob(f"{name}.*.j2")) if plain else []
    if not files:
        known = builtin_template_names()
        guess = nearest(name, known)
        hint = f"did you mean {guess!r}? " if guess else ""
        raise AftersaleError(f"no built-in template {name!r}; {hint}built-ins: {', '.join(known)}")
    target.mkdir(parents=True, exist_ok=True)
    there = [target / f.name for f in files if (target / f.name).exists()]
    if there and not force:
        raise AftersaleError(f"{there[0]} already exists (--force overwrites)")
    return [Path(shutil.copyfile(f, target / f.name)) for f in files]


def template_problems(proj: Project, loaded: list[LoadedJourney]) -> list[JourneyProblem]:
    """Each step's template (and its variants' templates) checked in every locale."""
    from campaigns.journey_problems import JourneyProblem, source_line

    renderer = proj.renderer
    locales = proj.settings.locales
    found: list[JourneyProblem] = []
    for item in loaded:
        for i, step in enumerate(item.journey.steps):
            marketing = step.send.category == "marketing"
            places = [(f"steps.{i}.send.template", ("steps", i, "send", "template"),
                       step.send.template)]  # fmt: skip
            places += [
                (
                    f"steps.{i}.variants.{j}.template",
                    ("steps", i, "variants", j, "template"),
                    v.template,
                )  # fmt: skip
                for j, v in enumerate(step.variants or ())
                if v.template
            ]
            for where, loc, name in places:
                line = source_line(item.source, loc)
                if not renderer.available_locales(name, step.send.channel):
                    message = missing_template(proj, name, step.send.channel, locales)
                    found.append(JourneyProblem(item.source, line, f"{where}: {name}: {message}"))
                    continue
                for issue in renderer.validate(name, step.send.channel, marketing=marketing,
                                               locales=locales):  # fmt: skip
                    if issue.level != "info":
                        file = f" ({issue.file}{f':{issue.line}' if issue.line else ''})"
                        text = f"{where}: {issue.template}{file if issue.file else ''}: "
                        found.append(JourneyProblem(item.source, line, text + issue.message,
                                                    issue.level))  # fmt: skip
    return found


def missing_template(proj: Project, name: str, channel: str, locales: list[str]) -> str:
    """What to do about a template that exists nowhere: the files to create, the nearest
    built-in, where the built-ins live and the command that copies one."""
    from campaigns.journey_problems import nearest
    from templates.renderer import BUILTIN_DIR as TEMPLATES_BUILTIN

    folder = proj.settings.templates_dir
    if channel == "email":
        files = [f"{name}.email.{loc}.html.j2 (and .txt.j2)" for loc in locales[:1]]
    else:
        files = [f"{name}.sms.{loc}.j2" for loc in locales[:1]]
    names = builtin_template_names()
    guess = nearest(name, names)
    start = guess or ("warranty_offer" if channel == "email" else "warranty_reminder")
    hint = f"did you mean `{guess}`? " if guess else ""
    return (
        f"no {channel} template named {name!r}. {hint}Create {folder / files[0]}, one per "
        f"language ({', '.join(locales)}); the built-ins are in {TEMPLATES_BUILTIN}, and "
        f"`aftersale templates copy {start}` copies one into the project to start from"
    )


def window_problems(policy: ContactPolicy, loaded: list[LoadedJourney]) -> list[JourneyProblem]:
    """A step whose send window lies wholly in the policy's quiet hours can never send."""
    from campaigns.journey_problems import JourneyProblem, source_line

    found = []
    for item in loaded:
        for i, step in enumerate(item.journey.steps):
            window = step.window
            if window is not None and not _window_ever_open(policy, window, step.send.category):
                line = source_line(item.source, ("steps", i, "send_window"))
                text = (f"steps.{i}.send_window: {step.send_window!r} lies wholly in the "
                        f"policy's quiet time, so this step could never send")  # fmt: skip
                found.append(JourneyProblem(item.source, line, text))
    return found


def _window_ever_open(policy: ContactPolicy, window: Any, category: str) -> bool:
    zone = ZoneInfo(policy.rules.default_timezone)
    start = datetime(2026, 6, 1, tzinfo=UTC)  # a week without holidays in most calendars
    for quarter in range(7 * 24 * 4):
        at = start + timedelta(minutes=15 * quarter)
        if window.allows(at.astimezone(zone)) and not policy.is_quiet(at, None, category=category):
            return True
    return False


def has_database(proj: Project) -> bool:
    """Whether the project has a database yet (validation never creates one)."""
    if proj.settings.database_url:
        return True
    return (proj.directory / "aftersale.db").exists()


def topic_problems(loaded: list[LoadedJourney]) -> list[JourneyProblem]:
    """A warning for each journey with marketing steps and no ``topic``: it counts as
    ``offers``, so customers who keep only service messages do not get it (journeys copied
    into a project before topics existed have none)."""
    from campaigns.journey_problems import JourneyProblem

    return [
        JourneyProblem(
            item.source,
            1,
            "topic: not set, so its marketing counts as `offers` and customers who keep only "
            "service messages will not get it; add `topic: service` or `topic: offers`",
            "warning",
        )  # fmt: skip
        for item in loaded
        if item.journey.topic is None
        and any(step.send.category == "marketing" for step in item.journey.steps)
    ]


def data_problems(proj: Project, loaded: list[LoadedJourney]) -> list[JourneyProblem]:
    """Warnings about names that no imported customer, item or event carries."""
    if not loaded or not has_database(proj):
        return []  # before any import: no database to read, nor its stack to load
    from campaigns.journey_data import data_warnings, imported_names, imported_names_in_file

    if proj.settings.database_url:
        from campaigns.models import reading

        with reading(proj.db) as conn:
            names = imported_names(conn)
    else:  # the embedded default: read with the standard library, no database stack
        names = imported_names_in_file(proj.directory / "aftersale.db")
    return [w for item in loaded for w in data_warnings(item.journey, item.source, names)]


def print_versions(proj: Project, journey_id: str, console: Console) -> None:
    from campaigns.migrating import active_by_version
    from campaigns.models import reading

    with reading(proj.db) as conn:
        versions = active_by_version(conn, journey_id)
    if not versions:
        console.print("not run yet: no versions stored")
        return
    table = Table("version", "active enrolments", "")
    for number, active, current in versions:
        table.add_row(f"v{number}", str(active), "current" if current else "")
    console.print(table)
    older = sum(active for _, active, current in versions if not current)
    if older:
        console.print(f"{older} active enrolment(s) run on older versions: "
                      f"`aftersale journeys migrate {journey_id}` moves them")  # fmt: skip


def print_migration(report: Any, console: Console) -> None:
    verb = "would move" if report.dry_run else "moved"
    for m in report.moves:
        if m.problem:
            console.print(f"{safe(m.enrollment_id)}: left on v{m.from_version}: {m.problem}")
            continue
        before = ", ".join(f"{s}#{k} {_when(d)}" for s, k, d in m.before) or "nothing planned"
        after = f"{m.after[0]}#{m.after[1]} {_when(m.after[2])}" if m.after else "nothing left"
        console.print(f"{safe(m.enrollment_id)}: v{m.from_version} → v{report.to_version}: "
                      f"{safe(before)} → {safe(after)}", highlight=False)  # fmt: skip
    console.print(f"{verb} {report.moved} enrolment(s) of {report.journey_id} "
                  f"to v{report.to_version}")  # fmt: skip


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

"""Moving running enrolments to an edited journey: `journeys show` counts them per
version, `journeys migrate` replans what they have not sent from their own anchors."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from typer.testing import CliRunner

from aftersale.app import Project
from aftersale.cli import app
from campaigns.migrating import active_by_version, migrate
from campaigns.store import enrollments_t, versions_t
from tests.conftest import Harness, item, purchase, utc

BERLIN = ZoneInfo("Europe/Berlin")
WARRANTY_END = utc("2028-01-05T09:00:00")  # 24 months after 5 Jan 2026, 10:00 in Berlin


def bought(h: Harness, *customers: str) -> None:
    h.customers([{"id": c, "email": f"{c}@example.com", "phone": "+4915112345678",
                  "sms_consent": "yes", "timezone": "Europe/Berlin"} for c in customers])  # fmt: skip
    h.events([purchase(f"e-{c}", c, "2026-01-05T10:00:00+01:00", f"o-{c}",
                       item(warranty_months=24)) for c in customers])  # fmt: skip


def edit(h: Harness, old: str, new: str) -> None:
    """The marketer edits the built-in warranty journey; the next command opens it anew."""
    path = h.directory / "journeys" / "extended_warranty.yaml"
    path.write_text(path.read_text().replace(old, new), encoding="utf-8")
    url = h.project.settings.database_url
    h.project.close()
    h.project = Project.open(h.directory, **({"database_url": url} if url else {}))
    h.project.channel_overrides = {"email": h.email, "sms": h.sms}
    assert h.project.journeys is not None  # stores the edited definition as version 2


def warranty_messages(h: Harness) -> list[tuple]:
    return [(m.customer_id, m.step, m.status, m.journey_version, m.due_at, m.reason)
            for m in h.messages(journey_id="extended_warranty")]  # fmt: skip


def run_migrate(h: Harness, **kwargs):
    with h.project.db.begin() as conn:
        return migrate(conn, "extended_warranty", h.project.simulated_now(),
                       default_zone=BERLIN, **kwargs)  # fmt: skip


def test_a_changed_offer_date_reaches_running_enrolments(harness: Harness):
    h = harness
    bought(h, "c1", "c2")
    h.simulate(utc("2026-01-06T12:00:00"))
    assert {m[4] for m in warranty_messages(h)} == {WARRANTY_END - timedelta(days=60)}
    edit(h, "wait: -60d", "wait: -90d")
    with h.project.db.connect() as conn:
        assert active_by_version(conn, "extended_warranty") == [(1, 2, False), (2, 0, True)]

    dry = run_migrate(h, dry_run=True)
    assert dry.moved == 2 and dry.to_version == 2
    assert {m.after[2] for m in dry.moves} == {WARRANTY_END - timedelta(days=90)}
    assert {m[3] for m in warranty_messages(h)} == {1}  # a dry run writes nothing

    report = run_migrate(h)
    assert [(m.enrollment_id.split(":")[1], m.from_version, m.after[0]) for m in report.moves] == [
        ("c1", 1, "offer_email"),
        ("c2", 1, "offer_email"),
    ]
    assert warranty_messages(h) == [
        (c, "offer_email", "planned", 2, WARRANTY_END - timedelta(days=90), None)
        for c in ("c1", "c2")
    ]
    with h.project.db.connect() as conn:
        assert active_by_version(conn, "extended_warranty") == [(1, 0, False), (2, 2, True)]
        schedules = conn.execute(
            sa.select(enrollments_t.c.schedule).where(
                enrollments_t.c.journey_id == "extended_warranty"
            )
        ).scalars()
        assert all(s[0][0] == "offer_email" and s[1][0] == "reminder_sms" for s in schedules)
    assert run_migrate(h).moves == []  # nothing left on older versions

    h.simulate(WARRANTY_END)
    sent = [(m[0], m[1], m[4]) for m in warranty_messages(h) if m[2] == "sent"]
    offers = [s for s in sent if s[1] == "offer_email"]
    assert len(offers) == 2
    assert all(due == WARRANTY_END - timedelta(days=90) for *_, due in offers)
    assert len([s for s in sent if s[1] == "reminder_sms"]) == 2  # the timetable went on


def test_what_went_out_stays_and_the_next_step_follows_the_new_version(harness: Harness):
    h = harness
    bought(h, "c1")
    h.simulate(WARRANTY_END - timedelta(days=30))  # the offer went out, the reminder waits
    edit(h, "wait: -14d", "wait: -7d")
    report = run_migrate(h, from_version=1)
    [moved] = report.moves
    assert moved.before == [("reminder_sms", 1, WARRANTY_END - timedelta(days=14))]
    assert moved.after == ("reminder_sms", 1, WARRANTY_END - timedelta(days=7))
    offer, reminder = warranty_messages(h)
    assert offer[1:4] == ("offer_email", "sent", 1)
    assert reminder == ("c1", "reminder_sms", "planned", 2, WARRANTY_END - timedelta(days=7), None)


def test_a_step_that_is_gone_is_cancelled_and_the_enrolment_completes(harness: Harness):
    h = harness
    bought(h, "c1")
    h.simulate(WARRANTY_END - timedelta(days=30))
    path = h.directory / "journeys" / "extended_warranty.yaml"
    text = path.read_text()
    edit(h, text[text.index("  - id: reminder_sms") :], "")
    [moved] = run_migrate(h).moves
    assert moved.after is None
    offer, reminder = warranty_messages(h)
    assert reminder[1:3] == ("reminder_sms", "cancelled") and reminder[5] == "migrated:v2"
    with h.project.db.connect() as conn:
        status = conn.execute(
            sa.select(enrollments_t.c.status).where(
                enrollments_t.c.journey_id == "extended_warranty"
            )
        ).scalar()
    assert status == "completed"


def test_from_a_version_no_enrolment_runs_on_nothing_moves(harness: Harness):
    h = harness
    bought(h, "c1")
    h.simulate(utc("2026-01-06T12:00:00"))
    edit(h, "wait: -60d", "wait: -90d")
    assert run_migrate(h, from_version=2).moves == []
    assert {m[3] for m in warranty_messages(h)} == {1}


def test_show_and_migrate_on_the_command_line(harness: Harness):
    h = harness
    bought(h, "c1")
    h.simulate(utc("2026-01-06T12:00:00"))
    edit(h, "wait: -60d", "wait: -90d")
    url = h.project.settings.database_url
    env = {"COLUMNS": "200", **({"AFTERSALE_DATABASE_URL": url} if url else {})}
    project = ["--project", str(h.directory)]
    shown = CliRunner().invoke(app, [*project, "journeys", "show", "extended_warranty"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "│ v1      │ 1                 │         │" in shown.output
    assert "│ v2      │ 0                 │ current │" in shown.output
    assert "1 active enrolment(s) run on older versions" in shown.output
    dry = CliRunner().invoke(
        app, [*project, "journeys", "migrate", "extended_warranty", "--dry-run"], env=env
    )
    assert dry.exit_code == 0, dry.output
    assert "v1 → v2: offer_email#1 2027-11-06 09:00 UTC → offer_email#1 2027-10-07 09:00 UTC" in (
        dry.output
    )
    assert "would move 1 enrolment(s) of extended_warranty to v2" in dry.output
    done = CliRunner().invoke(app, [*project, "journeys", "migrate", "extended_warranty"], env=env)
    assert "moved 1 enrolment(s)" in done.output
    unknown = CliRunner().invoke(app, [*project, "journeys", "migrate", "nope"], env=env)
    assert unknown.exit_code == 2 and "no journey 'nope' in the database yet" in unknown.output
    with h.project.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(versions_t)).scalar() >= 5

"""The `aftersale` command end to end, as a user runs it, on a temporary project."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.invariants import audit

AFTERSALE = str(Path(sys.executable).with_name("aftersale"))


def run(*args: str, project: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    command = [AFTERSALE, *(["--project", str(project)] if project else []), *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "shop"
    out = run("init", str(directory)).stdout
    assert "aftersale.toml" in out
    return directory


CUSTOMERS = """id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent,city
c1,anna@example.com,+4915112345678,Anna,Muster,de,Europe/Berlin,yes,yes,Berlin
c2,bob@example.com,,Bob,Smith,en,America/New_York,yes,no,Boston
c3,not-an-email,,Bad,Row,de,,yes,no,
"""


def events() -> str:
    item = {"sku": "WM-1", "name": "Waschmaschine", "category": "appliance", "price": "499.00",
            "quantity": 1, "warranty_months": 12, "inspection_interval_days": 90}  # fmt: skip
    lines = [
        {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+01:00",
         "order": {"id": "o1", "total": "499.00", "currency": "EUR", "items": [item]}},
        {"id": "e2", "type": "purchase", "customer": "c2", "at": "2026-01-06T22:00:00+01:00",
         "order": {"id": "o2", "total": "499.00", "currency": "EUR", "items": [item]}},
        {"id": "e3", "type": "complaint_opened", "customer": "c1", "at": "2026-03-01T10:00:00+01:00"},
        {"id": "e4", "type": "complaint_resolved", "customer": "c1", "at": "2026-05-01T10:00:00+02:00"},
        {"id": "e5", "type": "unsubscribed", "customer": "c2", "channel": "email",
         "at": "2026-06-01T10:00:00+02:00"},
    ]  # fmt: skip
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def test_a_year_from_import_to_export(project: Path, tmp_path: Path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(events(), encoding="utf-8")

    bad = run("import", "customers", str(tmp_path / "customers.csv"), project=project, ok=False)
    assert bad.returncode == 1
    assert "customers.csv:4: email:" in bad.stderr
    assert "2 imported, 1 rejected" in bad.stdout
    assert (
        "5 imported"
        in run("import", "events", str(tmp_path / "events.jsonl"), project=project).stdout
    )
    again = run("import", "events", str(tmp_path / "events.jsonl"), project=project).stdout
    assert "0 imported, 5 already known" in again

    assert "5 journeys valid" in run("journeys", "validate", project=project).stdout
    listing = run("journeys", "list", project=project).stdout
    assert "inspection_invitation" in listing and "extended_warranty" in listing

    sim = run("simulate", "--until", "2026-12-31", project=project).stdout
    assert "simulated 2026-01-05" in sim
    # The clock continues from where it stands.
    assert (
        "simulated 2026-12-31" in run("simulate", "--until", "2027-02-01", project=project).stdout
    )

    exported = run("log", "export", "--format", "jsonl", project=project).stdout
    records = [json.loads(line) for line in exported.splitlines()]
    assert {r["journey"] for r in records} == {
        "thank_you",
        "inspection_invitation",
        "loyalty_offer",
        "extended_warranty",
        "complaint_followup",  # c1's complaint was resolved
    }
    assert all(r["sent_at"].endswith("Z") for r in records if r["sent_at"])
    customers = {row["id"]: row for row in csv.DictReader(io.StringIO(CUSTOMERS))}
    event_list = [json.loads(line) for line in events().splitlines()]
    policy = {"default_timezone": "Europe/Berlin", "quiet_hours": "20:00-09:00",
              "quiet_days": ["sun"], "public_holidays": "DE",
              "caps": [{"channel": "email", "max": 2, "per": "7d"}, {"channel": "sms", "max": 1, "per": "7d"},
                       {"channel": "any", "max": 3, "per": "14d"}]}  # fmt: skip
    assert audit(records, customers, event_list, policy) == []
    # Bob unsubscribed in June: his later marketing was skipped for it, and the log says so.
    bob = [r for r in records if r["customer"] == "c2" and r["category"] == "marketing"]
    assert any(r["reason"] == "no_consent:email" for r in bob)

    csv_out = tmp_path / "log.csv"
    run(
        "log",
        "--journey",
        "thank_you",
        "export",
        "--format",
        "csv",
        "--out",
        str(csv_out),
        project=project,
    )
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text(encoding="utf-8"))))
    assert len(rows) == 2 and rows[0]["journey"] == "thank_you"

    table = run("log", "--customer", "c1", "--status", "sent", project=project).stdout
    assert "inspection_invitation" in table and "c2" not in table

    timeline = run("customer", "c1", project=project).stdout
    assert "complaint_opened" in timeline and "complaint_open" in timeline

    emails = list((project / "outbox" / "email").glob("*.eml"))
    assert emails, "the outbox holds the sent e-mails"


def test_validate_reports_file_line_and_reason(project: Path):
    broken = project / "journeys" / "broken.yaml"
    broken.write_text(
        "id: broken\ntrigger:\n  event: purchase\nsteps:\n  - id: one\n    wait: 2d\n"
        "    condition: customer.city ==\n"
        "    send: {channel: email, template: thank_you, category: transactional}\n",
        encoding="utf-8",
    )
    (project / "journeys" / "schema.yaml").write_text(
        "id: schema\ntrigger: {event: purchase}\nsteps:\n  - id: one\n"
        "    send: {channel: fax, template: thank_you}\n",
        encoding="utf-8",
    )
    (project / "journeys" / "missing.yaml").write_text(
        "id: missing\ntrigger: {event: purchase}\nsteps:\n  - id: one\n"
        "    send: {channel: email, template: no_such_template, category: marketing}\n",
        encoding="utf-8",
    )
    (project / "templates" / "nick.email.de.html.j2").write_text(
        '{% extends "_layout.email.html.j2" %}{% block subject %}Hallo{% endblock %}'
        "{% block content %}{{ customer.nickname }}{% endblock %}",
        encoding="utf-8",
    )
    (project / "journeys" / "nick.yaml").write_text(
        "id: nick\ntrigger: {event: purchase}\nsteps:\n  - id: one\n"
        "    send: {channel: email, template: nick, category: transactional}\n",
        encoding="utf-8",
    )
    done = run("journeys", "validate", project=project, ok=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1
    assert "broken.yaml:7" in out and "steps.0.condition" in out
    assert "schema.yaml:5" in out and "channel" in out
    assert "no_such_template" in out
    assert "nick.email.de.html.j2" in out and "nickname" in out


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize(
    "template",
    [
        "thank_you",
        "inspection_invite",
        "inspection_reminder",
        "loyalty_offer",
        "warranty_offer",
        "warranty_reminder",
    ],  # fmt: skip
)
def test_preview_every_builtin(project: Path, tmp_path: Path, template: str, locale: str):
    out = run(
        "preview", template, "--locale", locale, "--out", str(tmp_path / "p"), project=project
    ).stdout
    assert f"locale {locale}" in " ".join(out.split()) or locale in out
    if template.endswith("reminder"):
        assert "segments" in out
        assert (tmp_path / "p.sms.txt").read_text(encoding="utf-8").strip()
    else:
        assert "subject" in out
        assert "<html" in (tmp_path / "p.html").read_text(encoding="utf-8")


def test_demo_summary_shows_every_journey_and_the_policy_at_work(tmp_path: Path):
    out = run("demo", "--dir", str(tmp_path / "demo"), "--customers", "120").stdout
    for journey in ("thank_you", "inspection_invitation", "loyalty_offer", "extended_warranty"):
        assert journey in out
    assert "quiet_hours" in out and "no_consent:" in out
    assert "Why messages were deferred" in out and "customers reached" in out
    assert "bundled: " in out and "per-item messages went out inside" in out
    assert (tmp_path / "demo" / "aftersale.db").exists()


def test_bad_settings_name_the_key(project: Path):
    config = project / "aftersale.toml"
    config.write_text(
        config.read_text().replace('quiet_hours = "20:00-09:00"', 'quiet_hours = "late"')
    )
    (project / "e.jsonl").write_text(events(), encoding="utf-8")
    done = run("simulate", "--until", "2026-02-01", project=project, ok=False)
    assert done.returncode == 2
    assert "quiet_hours" in done.stderr


@pytest.mark.parametrize("group", [[], ["journeys"], ["log"], ["import"]])
def test_command_listings_wrap_to_the_terminal(group: list[str]) -> None:
    """At 80 columns a command's summary fills each line before it breaks: a docstring's own
    line breaks would leave a word or two on a line of their own."""
    done = subprocess.run(
        [AFTERSALE, *group, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert done.returncode == 0, done.stderr
    panel = done.stdout.split("Commands")[1].splitlines()[1:]
    rows = [line.strip("│").rstrip() for line in panel if line.startswith("│")]
    assert rows and all(len(line) <= 80 for line in done.stdout.splitlines())
    width = len(panel[0]) - 2  # inside the panel's borders
    indent = min(len(r) - len(r.lstrip()) for r in rows)
    text = [r for r in rows if r.strip()]
    name_width = max(len(r.split()[0]) for r in text if not r.startswith(" " * (indent + 1)))
    for line, following in zip(text, text[1:], strict=False):
        if not following.startswith(" " * (indent + name_width + 2)):
            continue  # the next command begins
        first_word = following.split()[0]
        assert len(line) + 1 + len(first_word) > width - 1, (line, following)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["log", "--limit", "-5"], "--limit"),  # SQLite reads LIMIT -5 as no limit at all
        (["log", "--limit", "99999999999999999999"], "--limit"),  # the driver overflowed
        (["serve", "--port", "99999"], "--port"),  # bind() overflowed
        (["demo", "--customers", "0"], "--customers"),  # an empty shop crashed the generator
        (["demo", "--months", "-3"], "--months"),
    ],
)
def test_numbers_out_of_range_are_refused_before_anything_runs(
    project: Path, tmp_path: Path, args: list[str], option: str
) -> None:
    if args[0] == "demo":
        args = [*args, "--dir", str(tmp_path / "demo")]
    done = run(*args, project=project, ok=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Invalid value for '{option}'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "demo").exists()

"""What customers, shops and providers wrote reaches the terminal as text, and CSV as data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from aftersale.cli import app as cli
from aftersale.sendlog import csv_cell
from campaigns.models import Customer, Message
from tests.conftest import Harness, item, purchase, utc

NASTY_FIRST = "[link=https://evil.example]Anna[/link]\x1b[2J\x1b]0;owned\x07\u202e"
NASTY_LAST = "[/]"
REASON = "552 mailbox [/] full <anna@example.com>"
CONTROLS = ("\x1b", "\x07", "\u202e")


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "anna@example.com", "first_name": "Anna"}])
    h.events([purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item())])
    h.simulate(utc("2026-02-01T00:00:00"))
    with h.project.db.begin() as conn:
        conn.execute(Customer.__table__.update().values(first_name=NASTY_FIRST,
                                                        last_name=NASTY_LAST))  # fmt: skip
        first = conn.execute(sa.select(sa.func.min(Message.__table__.c.id))).scalar()
        conn.execute(
            Message.__table__.update()
            .where(Message.__table__.c.id == first)
            .values(status="bounced", reason=REASON, journey_id='=HYPERLINK("x")')
        )
    return h


def _run(shop: Harness, *args: str) -> str:
    done = CliRunner().invoke(cli, ["-p", str(shop.directory), *args], env={"COLUMNS": "250"})
    assert done.exit_code == 0, (done.output, done.exception)
    return done.output


@pytest.mark.parametrize("command", [["log"], ["stats"], ["customer", "c1"]])
def test_customer_text_is_shown_literally_without_control_characters(
    shop: Harness, command: list[str]
) -> None:
    out = _run(shop, *command)
    assert not any(c in out for c in CONTROLS), repr(out)
    if command[0] != "stats":
        assert "mailbox [/] full" in out
    if command[0] == "customer":
        assert "[link=https://evil.example]Anna[/link]" in out and "[/] (c1)" in out


def test_validate_prints_patterns_literally(shop: Harness) -> None:
    (shop.directory / "journeys" / "pattern.yaml").write_text(
        "id: Pattern\ntrigger: {event: purchase}\nsteps:\n  - id: one\n"
        "    send: {channel: email, template: thank_you, category: transactional}\n",
        encoding="utf-8",
    )
    done = CliRunner().invoke(cli, ["-p", str(shop.directory), "journeys", "validate"],
                              env={"COLUMNS": "250"})  # fmt: skip
    assert done.exit_code == 1
    assert "'^[a-z][a-z0-9_]*$'" in done.output, done.output


@pytest.mark.parametrize(
    ("value", "written"),
    [("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
     ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
     ("plain", "plain"), (None, None), (3, 3)],
)  # fmt: skip
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(value, written) -> None:
    assert csv_cell(value) == written


def test_the_csv_export_and_the_console_write_the_same_neutralised_cells(
    shop: Harness, tmp_path: Path
) -> None:
    out = tmp_path / "log.csv"
    _run(shop, "log", "export", "--format", "csv", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert '\'=HYPERLINK("x")' in {r["journey"] for r in rows}
    from aftersale.accounts import create_user
    from tests.integration.admin_data import ADMIN, client_for, login

    create_user(shop.project.db, *ADMIN, "admin", utc("2026-02-01T00:00:00"))
    with client_for(shop) as client:
        login(client, ADMIN)
        console = list(csv.DictReader(io.StringIO(client.get("/admin/log.csv").text)))
    assert console == rows

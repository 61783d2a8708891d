"""`aftersale log` as support reads it: the latest decision first, planned messages apart,
deferrals found by reason, unknown filter values refused with the valid choices, 80 columns."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from aftersale.cli import app as cli
from campaigns.models import Message
from tests.conftest import Harness, item, purchase, utc

messages_t = Message.__table__


def run(h: Harness, *args: str, code: int = 0, columns: int = 80) -> str:
    done = CliRunner().invoke(
        cli,
        ["-p", str(h.directory), *args],
        env={"COLUMNS": str(columns), "AFTERSALE_DATABASE_URL": str(h.project.db.url)},
    )
    assert done.exit_code == code, (done.output, done.exception)
    return done.output


@pytest.fixture
def shop(harness: Harness) -> Harness:
    harness.customers(
        [
            {"id": "c1", "email": "anna@example.com", "first_name": "Anna",
             "timezone": "Europe/Berlin"},
            {"id": "c2", "email": "bob@example.com", "first_name": "Bob",
             "timezone": "America/New_York"},
        ]
    )  # fmt: skip
    harness.events(
        [  # 22:00 in Berlin: the thank-you due at midnight waits for the end of quiet hours
            purchase("e1", "c1", "2026-03-02T22:00:00+01:00", "o1",
                     item(warranty_months=24, inspection_interval_days=30)),
            purchase("e2", "c2", "2026-03-02T10:00:00-05:00", "o2", item()),
        ]
    )  # fmt: skip
    harness.simulate(utc("2026-03-05T00:00:00"), start=utc("2026-03-02T08:00:00"))
    return harness


def ids(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\s*(\d+)\s", output, re.M)]


def test_latest_decision_first_and_planned_messages_apart(shop: Harness) -> None:
    m = messages_t.c
    with shop.project.db.connect() as conn:
        decided = conn.execute(
            sa.select(m.id).where(m.status != "planned").order_by(m.updated_at.desc(), m.id.desc())
        ).scalars()
        planned = conn.execute(
            sa.select(m.id).where(m.status == "planned").order_by(m.due_at, m.id)
        ).scalars()
        decided, planned = list(decided), list(planned)
    assert decided and planned
    assert ids(run(shop, "log")) == decided
    assert ids(run(shop, "log", "--upcoming")) == planned
    assert ids(run(shop, "log", "--status", "planned")) == planned


def test_reason_finds_deferrals_as_well_as_final_reasons(shop: Harness) -> None:
    out = run(shop, "log", "--reason", "quiet", "--wide")
    assert "thank_you" in out and "sent" in out  # sent in the end, deferred on the way
    assert "c2" not in out


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["log", "--status", "sennt"], "planned, sending, sent, delivered"),
        (["log", "--customer", "k99"], "no customer 'k99'"),
        (["log", "--contact", "nobody@example.com"], "no customer with the e-mail"),
        (["log", "--journey", "nope"], "extended_warranty, inspection_invitation"),
        (["log", "--journey", "thank_you", "--step", "nope"], "choose one of: thanks"),
        (["log", "--step", "nope"], "invite"),
        (["log", "--channel", "fax"], "email, sms"),
        (["log", "--status", "sennt", "export"], "no status 'sennt'"),
        (["stats", "--journey", "nope"], "loyalty_offer, thank_you"),
    ],
)
def test_unknown_values_exit_2_with_the_valid_choices(shop: Harness, args, named) -> None:
    out = run(shop, *args, code=2, columns=200)
    assert named in out


def test_tables_fit_80_columns_and_wide_shows_everything(shop: Harness) -> None:
    for args, whole in (
        (["log"], "thank_you"),
        (["log", "--upcoming"], "inspection_invitation"),
        (["log", "--reason", "quiet"], "thank_you"),
    ):
        out = run(shop, *args)
        assert all(len(line) <= 80 for line in out.splitlines()), out
        assert "…" not in out and whole in out
    wide = run(shop, "log", "--wide", "--customer", "c1")
    assert "…" not in wide
    for header in ("journey", "step", "item", "channel", "due", "sent", "decided"):
        assert f" {header} " in wide
    assert "times in Europe/Berlin" in wide


def test_times_in_the_customers_zone_or_utc(shop: Harness) -> None:
    assert "times in America/New_York" in run(shop, "log", "--customer", "c2")
    assert "times in UTC" in run(shop, "log", "--customer", "c2", "--utc")
    # c1's thank-you went out at the end of quiet hours, 09:00 in Berlin, 08:00 UTC
    local = run(shop, "log", "--customer", "c1", "--journey", "thank_you", "--wide")
    assert "2026-03-03 09:00" in local
    assert "2026-03-03 08:00" in run(
        shop, "log", "--customer", "c1", "--journey", "thank_you", "--wide", "--utc"
    )


def test_the_customer_command_says_which_zone_and_switches_to_utc(shop: Harness) -> None:
    local = run(shop, "customer", "c1", columns=120)
    assert "times below in the customer's zone, Europe/Berlin" in local
    assert "2026-03-03 09:00" in local  # the thank-you, after quiet hours
    in_utc = run(shop, "customer", "c1", "--utc", columns=120)
    assert "times below in UTC" in in_utc and "2026-03-03 08:00" in in_utc

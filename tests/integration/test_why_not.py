"""Why an event did not start a journey: one row per (event, journey) with the first reason
that held and the condition that failed. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from typer.testing import CliRunner

from aftersale.cli import app as cli
from aftersale.stats import set_paused
from campaigns.models import NotEnrolled
from tests.conftest import item, purchase, utc

not_enrolled_t = NotEnrolled.__table__
ANNA = {"id": "c1", "email": "anna@example.com", "first_name": "Anna", "last_name": "Muster",
        "timezone": "Europe/Berlin"}  # fmt: skip


def journey(journey_id: str, trigger: str, extra: str = "") -> str:
    return f"""\
id: {journey_id}
name: {journey_id}
trigger:
{trigger}
{extra}
steps:
  - id: hello
    wait: 1d
    send:
      channel: email
      template: thank_you
      category: transactional
"""


JOURNEYS = {
    "big.yaml": journey("big_spenders", "  event: purchase", "audience: order.total > 1000"),
    "usd.yaml": journey("usd", "  event: purchase\n  condition: order.currency == 'USD'"),
    "care.yaml": journey(
        "care",
        "  event: purchase\n  for_each: item\n  item_condition: item.warranty_months",
    ),
    "welcome.yaml": journey("welcome", "  event: purchase", "reentry: once"),
    "held.yaml": journey("held", "  event: purchase"),
}


def why_not(h, event_id: str) -> dict[str, tuple[str, str | None]]:
    t = not_enrolled_t.c
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(t.journey_id, t.reason, t.expression, t.customer_id).where(
                t.event_id == event_id
            )
        )
        return {r.journey_id: (r.reason, r.expression) for r in rows if r.customer_id == "c1"}


def test_every_reason_an_event_did_not_start_a_journey(make_harness, database_url):
    h = make_harness(database_url=database_url, journeys=JOURNEYS, builtin_journeys=False)
    try:
        h.customers([ANNA])
        h.simulate(utc("2026-03-02T08:00:00"), start=utc("2026-03-02T08:00:00"))  # journeys stored
        with h.project.db.begin() as conn:
            assert set_paused(conn, "held", True)
        h.events(
            [
                purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item("GS-2")),
                purchase("e2", "c1", "2026-03-02T11:00:00+01:00", "o2"),  # no items
            ]
        )
        h.simulate(utc("2026-03-02T12:00:00"))
        h.events(
            [purchase("e3", "c1", "2026-03-03T10:00:00+01:00", "o3", item(warranty_months=24))]
        )
        h.simulate(utc("2026-03-03T12:00:00"))
        assert why_not(h, "e1") == {
            "big_spenders": ("audience", "order.total > 1000"),
            "usd": ("trigger_condition", "order.currency == 'USD'"),
            "care": ("item_condition", "item.warranty_months"),
            "held": ("paused", None),
        }
        assert why_not(h, "e2") == {
            "big_spenders": ("audience", "order.total > 1000"),
            "usd": ("trigger_condition", "order.currency == 'USD'"),
            "care": ("no_item", None),
            "welcome": ("reentry", None),  # e1 took the only entry, in the same batch
            "held": ("paused", None),
        }
        assert why_not(h, "e3") == {
            "big_spenders": ("audience", "order.total > 1000"),
            "usd": ("trigger_condition", "order.currency == 'USD'"),
            "welcome": ("reentry", None),  # taken in an earlier batch
            "held": ("paused", None),
        }
        shown = why(h, "c1", "welcome")
        assert "enrolled 2026-03-02 10:00 by e1" in shown  # the customer's zone, Berlin
        assert "not enrolled by e2" in shown and "by e3" in shown
        assert shown.count("already enrolled (re-entry rule)") == 2
        in_utc = why(h, "c1", "welcome", "--utc")
        assert "times in UTC" in in_utc and "enrolled 2026-03-02 09:00 by e1" in in_utc
        assert "next: nothing planned" in in_utc
        assert "next: hello #1 at 2026-03-04 10:00" in why(h, "c1", "care")  # planned, Berlin
        everything = why(h, "c1")
        for text in (
            "outside the journey's audience: order.total > 1000",
            "the trigger's condition is false: order.currency == 'USD'",
            "no item of the order meets the item condition: item.warranty_months",
            "the order has no items",
            "the journey is paused",
        ):
            assert text in everything
        customer = why(h, "c1", command="customer")
        assert "Not enrolled" in customer and "the journey is paused" in customer
    finally:
        h.project.close()


def why(h, *args: str, command: str = "why", code: int = 0) -> str:
    done = CliRunner().invoke(
        cli,
        ["-p", str(h.directory), command, *args],
        env={"COLUMNS": "200", "AFTERSALE_DATABASE_URL": str(h.project.db.url)},
    )
    assert done.exit_code == code, (done.output, done.exception)
    return done.output


def test_why_names_the_valid_choices(sqlite_harness):
    h = sqlite_harness
    h.customers([ANNA])
    h.simulate(utc("2026-03-02T08:00:00"), start=utc("2026-03-02T08:00:00"))
    assert "no customer 'k99'" in why(h, "k99", code=2)
    out = why(h, "c1", "nope", code=2)
    assert "no journey 'nope'" in out and "thank_you" in out
    assert "no event of this customer could start it yet" in why(h, "c1", "thank_you")

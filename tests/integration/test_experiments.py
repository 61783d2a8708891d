"""Holdouts and step variants through the real engine and dispatcher, SQLite and PostgreSQL."""

from __future__ import annotations

import json

import sqlalchemy as sa

from aftersale.sendlog import LogFilter, write_export
from campaigns.experiments import choose_variant, held_out
from campaigns.models import MessageDecision
from tests.conftest import POLICY_TOML, item, purchase, utc

SECRET = "test-secret-key"  # POLICY_TOML's
OFFER = """\
id: offer
trigger: {event: purchase}
reentry: always
holdout: 50%
steps:
  - id: offer
    wait: 30d
    send: {channel: email, template: loyalty_offer}
  - id: receipt
    wait: 1d
    from: previous
    send: {channel: email, template: thank_you, category: transactional}
"""
NEWS = """\
id: news
trigger: {event: purchase}
reentry: once
steps:
  - id: first
    wait: 30d
    send: {channel: email, template: loyalty_offer}
  - id: second
    wait: 1h
    from: previous
    send: {channel: email, template: loyalty_offer}
"""
SUBJECTS = """\
id: subjects
trigger: {event: purchase}
steps:
  - id: offer
    wait: 30d
    send: {channel: email, template: loyalty_offer}
    variants:
      - {id: plain, subject: "Ein Dankeschön für {{ customer.first_name }}", weight: 1}
      - {id: warm, template: warranty_offer, subject: {de: "Hallo {{ customer.first_name }}!", en: "Hi!"}, weight: 3}
"""
CUSTOMERS = [
    {"id": f"c{i:02d}", "email": f"c{i}@example.com", "first_name": f"Kunde{i}",
     "last_name": "Muster", "timezone": "Europe/Berlin"}
    for i in range(1, 21)
]  # fmt: skip


def buy(customer: str, n: int = 1) -> dict:
    return purchase(f"e-{customer}-{n}", customer, f"2026-01-0{5 + n}T10:00:00+01:00",
                    f"o-{customer}-{n}", item())  # fmt: skip


def test_held_out_customers_are_skipped_at_due_time_and_count_against_no_cap(
    make_harness, database_url
):
    h = make_harness(database_url=database_url, toml=POLICY_TOML, builtin_journeys=False,
                     journeys={"offer.yaml": OFFER, "news.yaml": NEWS})  # fmt: skip
    try:
        h.customers(CUSTOMERS)
        h.events([buy(c["id"], n) for c in CUSTOMERS for n in (1, 2)])
        h.simulate(utc("2026-03-01T00:00:00"))
        control = {c["id"] for c in CUSTOMERS if held_out(SECRET, "offer", c["id"], 0.5)}
        assert 0 < len(control) < len(CUSTOMERS)
        with h.project.db.connect() as conn:
            decided_at = dict(
                conn.execute(
                    sa.select(MessageDecision.message_id, MessageDecision.at).where(
                        MessageDecision.reason == "holdout"
                    )
                ).all()
            )
        for m in h.messages(journey_id="offer", step="offer"):
            if m.customer_id in control:  # both enrolments: stable across re-entries
                assert (m.status, m.reason) == ("skipped", "holdout")
                assert decided_at[m.id] == m.due_at  # at its due time, not at planning
            else:
                assert m.status == "sent" and m.reason is None
        # The enrolment goes on as planned; a receipt is owed and never held out.
        receipts = h.messages(journey_id="offer", step="receipt")
        assert len(receipts) == 2 * len(CUSTOMERS)
        assert {m.status for m in receipts} == {"sent"}
        # Two marketing e-mails a week at most: a held-out offer takes no place, so a
        # control customer gets both newsletters in the week of the offer.
        capped = _capped_customers(h)
        for cid in control:
            assert [m.status for m in h.messages(journey_id="news", customer_id=cid)] == [
                "sent",
                "sent",
            ]
        assert capped and not capped & control
    finally:
        h.project.close()


def test_each_customer_gets_one_variant_of_a_step_and_the_export_names_it(
    make_harness, database_url, tmp_path
):
    h = make_harness(database_url=database_url, toml=POLICY_TOML, builtin_journeys=False,
                     journeys={"subjects.yaml": SUBJECTS})  # fmt: skip
    try:
        h.customers(CUSTOMERS)
        h.events([buy(c["id"]) for c in CUSTOMERS])
        h.simulate(utc("2026-03-01T00:00:00"))
        journey = h.project.load_journeys()[0][0].journey
        variants = journey.step("offer").variants
        mails = {m.customer_id: m for m in h.email.sent}
        seen = set()
        for m in h.messages(journey_id="subjects"):
            expected = choose_variant(SECRET, "subjects", "offer", m.customer_id, variants)
            assert m.variant == expected.id
            seen.add(m.variant)
            first_name = "Kunde" + m.customer_id[1:].lstrip("0")
            if m.variant == "plain":
                assert mails[m.customer_id].subject == f"Ein Dankeschön für {first_name}"
                assert m.template == "loyalty_offer"
            else:
                assert mails[m.customer_id].subject == f"Hallo {first_name}!"
                assert m.template == "warranty_offer"
        assert seen == {"plain", "warm"}
        out = tmp_path / "log.jsonl"
        with h.project.db.connect() as conn, out.open("w") as handle:
            write_export(conn, LogFilter(), handle, "jsonl")
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert {r["variant"] for r in records} == {"plain", "warm"}
    finally:
        h.project.close()


def _capped_customers(h) -> set[str]:
    """Customers any of whose messages waited for a frequency cap."""
    from campaigns.models import Message

    m, d = Message.__table__.c, MessageDecision.__table__.c
    with h.project.db.connect() as conn:
        return set(
            conn.execute(
                sa.select(m.customer_id)
                .join(MessageDecision.__table__, d.message_id == m.id)
                .where(d.action == "deferred", d.reason.like("frequency_cap%"))
            ).scalars()
        )


BAD = """\
id: bad
trigger: {event: purchase}
holdout: 80%
goal: coupon_used
steps:
  - id: offer
    wait: 30d
    send: {channel: email, template: loyalty_offer}
    variants:
      - {id: a, subject: "x", weight: 0}
      - {id: b, subject: "y", weight: "heavy"}
"""
MISSING_TEMPLATE = """\
id: missing
trigger: {event: purchase}
offer_cost: offer.discount
steps:
  - id: offer
    wait: 30d
    send: {channel: email, template: loyalty_offer}
    variants:
      - id: a
        subject: "x"
      - id: b
        template: no_such_template
"""


def test_validate_refuses_bad_experiments_with_file_line_and_reason(sqlite_harness):
    from typer.testing import CliRunner

    from aftersale.cli import app as cli

    journeys = sqlite_harness.directory / "journeys"
    (journeys / "bad.yaml").write_text(BAD, encoding="utf-8")
    (journeys / "missing.yaml").write_text(MISSING_TEMPLATE, encoding="utf-8")
    done = CliRunner().invoke(
        cli, ["--project", str(sqlite_harness.directory), "journeys", "validate"],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert done.exit_code == 1
    out = done.output
    assert "bad.yaml:3: error: holdout:" in out and "80% is outside 0-50 %" in out
    assert "bad.yaml:4: error: goal:" in out and "unknown goal event 'coupon_used'" in out
    assert "bad.yaml:10: error: steps.0.variants.0.weight:" in out
    assert "weight 0 is not a positive number" in out
    assert "bad.yaml:11: error: steps.0.variants.1.weight:" in out
    assert "weight 'heavy' is not a positive number" in out
    assert "missing.yaml:12: error: steps.0.variants.1.template: no_such_template: " in out
    assert "no email template named 'no_such_template'" in out

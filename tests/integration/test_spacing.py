"""Steps keep their spacing: ``from: previous`` counts from when the previous message went
out, ``min_gap`` holds between two marketing messages of one journey, and a step can ask
how the previous one ended. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from campaigns.journeys import parse_journey
from campaigns.models import MessageDecision
from tests.conftest import item, purchase, utc

ANNA = {"id": "c1", "email": "anna@example.com", "phone": "+4915112345678", "first_name": "Anna",
        "last_name": "Muster", "timezone": "Europe/Berlin", "sms_consent": "yes"}  # fmt: skip


def reasons(h, message_id) -> list[tuple[str, str | None]]:
    t = MessageDecision.__table__
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.action, t.c.reason).where(t.c.message_id == message_id).order_by(t.c.id)
        )
        return [tuple(r) for r in rows]


def test_a_reminder_counts_from_when_its_invitation_went_out(harness):
    harness.customers([ANNA])
    # The first invitation falls due on Christmas Day: held over both holidays and the
    # Sunday, it goes out on Monday 28 December at 09:00 in Berlin.
    bought = "2026-09-26T10:00:00+02:00"
    harness.events([purchase("e1", "c1", bought, "o1", item(inspection_interval_days=90))])
    harness.simulate(utc("2027-01-10T00:00:00"))
    [invite] = harness.messages(journey_id="inspection_invitation", step="invite", occurrence=1)
    assert invite.sent_at == utc("2026-12-28T08:00:00")
    [reminder] = harness.messages(journey_id="inspection_invitation", step="reminder", occurrence=1)
    assert reminder.status == "sent"
    assert reminder.due_at == invite.sent_at + timedelta(days=3)
    assert reminder.sent_at - invite.sent_at >= timedelta(days=3)


def test_a_reminder_of_an_invitation_that_never_went_out_is_skipped(harness):
    harness.customers([{**ANNA, "email_consent": "no"}])
    harness.events(
        [purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item(inspection_interval_days=90))]
    )
    harness.simulate(utc("2026-05-01T00:00:00"))
    [invite] = harness.messages(journey_id="inspection_invitation", step="invite", occurrence=1)
    assert (invite.status, invite.reason) == ("skipped", "no_consent:email")
    [reminder] = harness.messages(journey_id="inspection_invitation", step="reminder", occurrence=1)
    assert (reminder.status, reminder.reason) == ("skipped", "condition:reminder")
    assert harness.sms.sent == []


def test_two_messages_of_one_journey_keep_min_gap_apart(harness):
    """An older purchase imported late: the warranty e-mail and SMS are both overdue."""
    harness.customers([ANNA])
    harness.events(
        [purchase("e1", "c1", "2024-03-10T12:00:00+01:00", "o1", item(warranty_months=24))]
    )
    harness.simulate(utc("2026-03-09T00:00:00"), start=utc("2026-03-03T10:00:00"))
    sms, mail = (
        harness.messages(journey_id="extended_warranty", step=step)[0]
        for step in ("reminder_sms", "offer_email")
    )
    assert sms.status == mail.status == "sent"
    assert mail.sent_at == utc("2026-03-03T10:00:00")
    assert sms.sent_at - mail.sent_at == timedelta(hours=24)
    assert ("deferred", "min_gap") in reasons(harness, sms.id)


def test_a_message_pushed_past_its_expiry_by_min_gap_is_skipped_expired(harness):
    harness.customers([ANNA])
    # The warranty ends on 11 March 2026 at 12:00 in Berlin; the clock starts a day before.
    harness.events(
        [purchase("e1", "c1", "2024-03-11T12:00:00+01:00", "o1", item(warranty_months=24))]
    )
    harness.simulate(utc("2026-03-12T00:00:00"), start=utc("2026-03-10T12:00:00"))
    sms, mail = (
        harness.messages(journey_id="extended_warranty", step=step)[0]
        for step in ("reminder_sms", "offer_email")
    )
    assert mail.status == "sent"
    assert (sms.status, sms.reason) == ("skipped", "expired")
    assert not [m for m in harness.sms.sent if m.journey == "extended_warranty"]


SPACED = """
id: spaced
name: Spaced
trigger: {{event: purchase}}
{min_gap}
steps:
  - id: first
    wait: 1d
    send: {{channel: email, template: loyalty_offer, category: marketing}}
  - id: second
    wait: 2h
    from: previous
    condition: "previous.status == 'sent' and previous.sent_at is not none"
    send: {{channel: email, template: loyalty_offer, category: marketing}}
"""
NO_CAPS = """
secret_key = "k"
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = "22:00-06:00"
"""


@pytest.mark.parametrize(("setting", "gap"), [("", 24), ("min_gap: 6h", 6)])
def test_min_gap_is_a_journey_setting(make_harness, database_url, setting, gap):
    h = make_harness(database_url=database_url, toml=NO_CAPS, builtin_journeys=False,
                     journeys={"spaced.yaml": SPACED.format(min_gap=setting)})  # fmt: skip
    try:
        h.customers([ANNA])
        # Two purchases two hours apart: each one's second message is due two hours after
        # its first went out, the second's first two hours after the first's.
        h.events([purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item()),
                  purchase("e2", "c1", "2026-03-02T12:00:00+01:00", "o2", item())])  # fmt: skip
        h.simulate(utc("2026-03-10T00:00:00"))
        sent = sorted(m.sent_at for m in h.messages(status="sent"))
        assert len(sent) == 4
        gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
        assert min(gaps) >= timedelta(hours=gap)
        assert min(gaps) < timedelta(hours=gap + 1)  # deferred to the gap, not further
    finally:
        h.project.close()


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0h", "must be longer than zero"),
        ("-2h", "must be longer than zero"),
        ("soon", "is not a duration"),
        ("12", "bare number"),
    ],
)
def test_journeys_validate_refuses_a_bad_min_gap(value, said):
    journey, problems = parse_journey(SPACED.format(min_gap=f"min_gap: {value!r}"), "spaced.yaml")
    assert journey is None
    [problem] = problems
    assert problem.line == 5  # the line of min_gap
    assert problem.message.startswith("min_gap: ") and said in problem.message


FALLBACK = """
id: fallback
name: SMS where the e-mail could not go
trigger: {event: purchase}
steps:
  - id: mail
    wait: 1d
    send: {channel: email, template: loyalty_offer, category: marketing}
  - id: text
    wait: 1h
    condition: >-
      previous.status == 'skipped' and previous.reason == 'no_consent:email'
      and previous.sent_at is none
    send: {channel: sms, template: inspection_reminder, category: marketing}
"""


def test_a_condition_reads_how_the_previous_message_ended(make_harness, database_url):
    h = make_harness(database_url=database_url, toml=NO_CAPS, builtin_journeys=False,
                     journeys={"fallback.yaml": FALLBACK})  # fmt: skip
    try:
        h.customers(
            [{**ANNA, "email_consent": "no"}, {**ANNA, "id": "c2", "phone": "+4915112345679"}]
        )
        h.events([purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item()),
                  purchase("e2", "c2", "2026-03-02T10:00:00+01:00", "o2", item())])  # fmt: skip
        h.simulate(utc("2026-03-10T00:00:00"))
        by_customer = {(m.customer_id, m.step): (m.status, m.reason) for m in h.messages()}
        assert by_customer == {
            ("c1", "mail"): ("skipped", "no_consent:email"),
            ("c1", "text"): ("sent", None),
            ("c2", "mail"): ("sent", None),
            ("c2", "text"): ("skipped", "condition:text"),
        }
    finally:
        h.project.close()


INTERLEAVED = """
id: interleaved
name: A step waits for the one listed before it, not for the one due before it
trigger: {event: purchase}
min_gap: 1h
steps:
  - id: first
    wait: 1d
    send: {channel: email, template: loyalty_offer, category: marketing}
  - id: after_first
    wait: 5d
    from: previous
    send: {channel: email, template: loyalty_offer, category: marketing}
  - id: meanwhile
    wait: 2d
    from: trigger
    send: {channel: email, template: loyalty_offer, category: marketing}
"""
SUNDAYS = NO_CAPS + 'quiet_days = ["sun"]\n'


def test_a_step_counts_from_the_step_listed_before_it(make_harness, database_url):
    h = make_harness(database_url=database_url, toml=SUNDAYS, builtin_journeys=False,
                     journeys={"interleaved.yaml": INTERLEAVED})  # fmt: skip
    try:
        h.customers([ANNA])
        # Saturday: the first message falls due on Sunday and goes out on Monday at 06:00;
        # the one two days after the purchase goes out between it and the last.
        h.events([purchase("e1", "c1", "2026-03-07T10:00:00+01:00", "o1", item())])
        h.simulate(utc("2026-03-20T00:00:00"))
        sent = {m.step: m.sent_at for m in h.messages(status="sent")}
        assert sent["first"] == utc("2026-03-09T05:00:00")
        assert sent["meanwhile"] == utc("2026-03-09T09:00:00")
        assert sent["after_first"] == sent["first"] + timedelta(days=5)
    finally:
        h.project.close()

"""Each built-in journey on the simulated clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from campaigns.models import MessageDecision
from tests.conftest import item, purchase, utc

ANNA = {"id": "c1", "email": "anna@example.com", "phone": "+4915112345678", "first_name": "Anna",
        "last_name": "Muster", "timezone": "Europe/Berlin", "sms_consent": "yes"}  # fmt: skip
BOB = {"id": "c2", "email": "bob@example.com", "first_name": "Bob", "last_name": "Smith",
       "locale": "en", "timezone": "America/New_York"}  # fmt: skip


def decisions(h, message_id):
    t = MessageDecision.__table__
    with h.project.db.connect() as conn:
        return list(conn.execute(sa.select(t).where(t.c.message_id == message_id).order_by(t.c.id)))


def test_thank_you_is_sent_two_hours_after_the_purchase(harness):
    harness.customers([ANNA])
    # Monday 2 March 2026, 10:00 in Berlin (09:00 UTC).
    harness.events([purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item())])
    harness.simulate(utc("2026-03-03T00:00:00"))
    [thanks] = harness.messages(journey_id="thank_you")
    assert thanks.status == "sent"
    assert thanks.sent_at == utc("2026-03-02T11:00:00")
    [mail] = [m for m in harness.email.sent if m.journey == "thank_you"]
    assert mail.to == "anna@example.com"
    assert "List-Unsubscribe" not in mail.headers  # transactional


def test_a_thank_you_due_at_night_waits_for_the_morning(harness):
    harness.customers([ANNA])
    harness.events([purchase("e1", "c1", "2026-03-03T21:30:00+01:00", "o1", item())])
    harness.simulate(utc("2026-03-05T00:00:00"))
    [thanks] = harness.messages(journey_id="thank_you")
    assert thanks.status == "sent"
    assert thanks.sent_at == utc("2026-03-04T08:00:00")  # 09:00 in Berlin
    [deferral, sent] = decisions(harness, thanks.id)
    assert (deferral.action, deferral.reason) == ("deferred", "quiet_hours")
    assert deferral.due_after == utc("2026-03-04T08:00:00")
    assert sent.action == "sent"


def test_inspection_invitations_every_interval_through_the_first_year(harness):
    harness.customers([ANNA, BOB])
    harness.events(
        [
            purchase(
                "e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item(inspection_interval_days=90)
            ),
            purchase(
                "e2", "c2", "2026-01-05T10:00:00+01:00", "o2", item(inspection_interval_days=120)
            ),
        ]
    )
    harness.simulate(utc("2027-02-01T00:00:00"))
    anna_invites = harness.messages(
        journey_id="inspection_invitation", customer_id="c1", step="invite"
    )
    assert [m.occurrence for m in anna_invites] == [1, 2, 3, 4]
    assert all(m.status == "sent" for m in anna_invites)
    bought = utc("2026-01-05T09:00:00")
    for k, invite in enumerate(anna_invites, start=1):
        planned = bought + timedelta(days=90 * k)
        # Quiet hours, Sundays and holidays (Easter 2026) may move it by a few days, never earlier.
        assert planned <= invite.sent_at <= planned + timedelta(days=3)
    reminders = harness.messages(
        journey_id="inspection_invitation", customer_id="c1", step="reminder"
    )
    assert [m.status for m in reminders] == ["sent"] * 4
    assert len([s for s in harness.sms.sent if s.to == "+4915112345678"]) == 4
    bob_invites = harness.messages(
        journey_id="inspection_invitation", customer_id="c2", step="invite"
    )
    assert len(bob_invites) == 3  # 120, 240 and 360 days
    bob_sms = harness.messages(
        journey_id="inspection_invitation", customer_id="c2", step="reminder"
    )
    assert {m.reason for m in bob_sms} == {"no_consent:sms"}


def test_loyalty_offer_after_thirty_days_unless_the_customer_bought_again(harness):
    harness.customers([ANNA, BOB])
    harness.events(
        [
            purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item()),
            purchase("e2", "c2", "2026-03-02T10:00:00+01:00", "o2", item()),
            purchase("e3", "c2", "2026-03-12T10:00:00+01:00", "o3", item(sku="TV-1")),
        ]
    )
    harness.simulate(utc("2026-04-01T18:00:00"))
    [anna] = harness.messages(journey_id="loyalty_offer", customer_id="c1")
    assert anna.status == "sent"
    assert anna.sent_at.date().isoformat() == "2026-04-01"
    bob = {m.order_id: m for m in harness.messages(journey_id="loyalty_offer", customer_id="c2")}
    assert (bob["o2"].status, bob["o2"].reason) == ("cancelled", "journey_exit:repurchase")
    assert bob["o3"].status == "planned"  # the new purchase has its own offer coming
    [mail] = [m for m in harness.email.sent if m.journey == "loyalty_offer"]
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.headers["List-Unsubscribe"].startswith("<https://shop.example/after/unsubscribe/")


def test_extended_warranty_offer_before_the_end_and_exit_on_extension(harness):
    harness.customers(
        [ANNA, {**ANNA, "id": "c3", "email": "c3@example.com", "phone": "+4915199999999"}]
    )
    harness.events(
        [
            purchase("e1", "c1", "2026-01-07T10:00:00+01:00", "o1", item(warranty_months=12)),
            purchase("e2", "c3", "2026-01-07T10:00:00+01:00", "o2", item(warranty_months=12)),
            {
                "id": "e3",
                "type": "warranty_extended",
                "customer": "c3",
                "order": "o2",
                "at": "2026-11-20T10:00:00+01:00",
            },
        ]  # fmt: skip
    )
    harness.simulate(utc("2027-02-01T00:00:00"))
    anna = {m.step: m for m in harness.messages(journey_id="extended_warranty", customer_id="c1")}
    end = utc("2027-01-07T09:00:00")
    assert anna["offer_email"].status == "sent"
    assert end - timedelta(days=61) <= anna["offer_email"].sent_at <= end - timedelta(days=59)
    assert anna["reminder_sms"].status == "sent"
    assert anna["reminder_sms"].sent_at < end
    other = {m.step: m for m in harness.messages(journey_id="extended_warranty", customer_id="c3")}
    assert other["offer_email"].status == "sent"
    assert (other["reminder_sms"].status, other["reminder_sms"].reason) == (
        "cancelled",
        "journey_exit:warranty_extended",
    )


def test_no_warranty_offer_after_the_warranty_end(harness):
    harness.customers([ANNA])
    harness.events(
        [
            purchase("e1", "c1", "2026-01-07T10:00:00+01:00", "o1", item(warranty_months=12)),
            {
                "id": "e2",
                "type": "complaint_opened",
                "customer": "c1",
                "at": "2026-12-01T10:00:00+01:00",
            },
            {
                "id": "e3",
                "type": "complaint_resolved",
                "customer": "c1",
                "at": "2027-02-01T10:00:00+01:00",
            },
        ]  # fmt: skip
    )
    harness.simulate(utc("2027-03-01T00:00:00"))
    sms = harness.messages(journey_id="extended_warranty", step="reminder_sms")[0]
    assert (sms.status, sms.reason) == ("skipped", "complaint_open")
    assert all(m.sent_at is None or m.sent_at < utc("2027-01-07T09:00:00")
               for m in harness.messages(journey_id="extended_warranty"))  # fmt: skip


def test_a_return_cancels_every_journey_of_that_order(harness):
    harness.customers([ANNA])
    harness.events(
        [
            purchase(
                "e1",
                "c1",
                "2026-03-02T10:00:00+01:00",
                "o1",
                item(warranty_months=24, inspection_interval_days=90),
            ),
            purchase("e2", "c1", "2026-03-02T11:00:00+01:00", "o2", item(sku="X")),
            {
                "id": "e3",
                "type": "return",
                "customer": "c1",
                "order": "o1",
                "at": "2026-03-10T10:00:00+01:00",
            },
        ]  # fmt: skip
    )
    harness.simulate(utc("2026-03-11T00:00:00"))
    o1 = harness.messages(order_id="o1")
    assert {m.status for m in o1} == {"sent", "cancelled"}
    reasons = {m.reason for m in o1 if m.status == "cancelled" and m.journey_id != "loyalty_offer"}
    assert reasons == {"journey_exit:return"}  # loyalty already ended with the second purchase
    assert all(m.status != "cancelled" for m in harness.messages(order_id="o2"))


def test_caps_defer_the_lower_priority_message(harness):
    harness.customers([ANNA])
    # Three purchases the same morning: three thank-yous (transactional: not capped) and,
    # thirty days later, three loyalty offers due together against a cap of two a week.
    harness.events(
        [
            purchase(f"e{i}", "c1", f"2026-03-02T1{i}:00:00+01:00", f"o{i}", item(sku=f"S{i}"))
            for i in range(3)
        ]  # fmt: skip
    )
    harness.simulate(utc("2026-03-03T00:00:00"))
    assert [m.status for m in harness.messages(journey_id="thank_you")] == ["sent"] * 3
    # Only the newest purchase keeps its loyalty enrolment (the others exit on repurchase).
    offers = harness.messages(journey_id="loyalty_offer")
    assert sorted(m.status for m in offers) == ["cancelled", "cancelled", "planned"]


def test_reimporting_events_plans_nothing_twice(harness):
    harness.customers([ANNA])
    events = [
        purchase("e1", "c1", "2026-03-02T10:00:00+01:00", "o1", item(inspection_interval_days=90))
    ]
    assert harness.events(events).imported == 1
    second = harness.events(events)
    assert (second.imported, second.unchanged) == (0, 1)
    harness.simulate(utc("2026-03-03T00:00:00"))
    before = len(harness.messages())
    harness.events(events)
    harness.simulate(utc("2026-03-04T00:00:00"))
    assert len(harness.messages()) == before

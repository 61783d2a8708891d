"""Erasure leaves no address anywhere in the database; the export shows everything first."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import SQLModel

from aftersale.admin.customers import erase, gdpr_export
from campaigns.delivery import apply_delivery_events
from campaigns.models import Message, NotEnrolled
from channels import DeliveryEvent, EventType
from tests.conftest import Harness, item, purchase, utc

EMAIL, PHONE = "erika@example.com", "+4915199887766"


def _everything(h: Harness) -> str:
    """Every row of every table, as text."""
    rows = []
    with h.project.db.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows += [repr(tuple(r)) for r in conn.execute(sa.select(table))]
    return "\n".join(rows)


def _shop(h: Harness) -> int:
    h.customers([{"id": "c9", "email": EMAIL, "phone": PHONE, "first_name": "Erika",
                  "sms_consent": "yes"}])  # fmt: skip
    h.events([
        purchase("e1", "c9", "2026-01-05T10:00:00+01:00", "o1", item(warranty_months=24)),
        {"id": "e2", "type": "unsubscribed", "customer": "c9", "channel": "email",
         "at": "2027-06-01T10:00:00+02:00", "note": f"asked by {EMAIL} from {PHONE}"},
    ])  # fmt: skip
    h.simulate(utc("2026-01-07T00:00:00"))
    (sent,) = [m for m in h.messages(customer_id="c9") if m.status == "sent"][:1]
    bounce = DeliveryEvent(EventType.BOUNCED, "sendgrid", event_id="sg-1", message_id=str(sent.id),
                           recipient=EMAIL, description=f"550 5.1.1 <{EMAIL}> unknown",
                           raw={"email": EMAIL, "reason": f"550 5.1.1 <{EMAIL}>"})  # fmt: skip
    stop = DeliveryEvent(EventType.UNSUBSCRIBED, "twilio", event_id="SM-1", recipient=PHONE,
                         raw={"From": PHONE, "Body": "STOP"})  # fmt: skip
    with h.project.db.begin() as conn:
        apply_delivery_events(conn, [bounce, stop], utc("2026-01-07T00:00:00"))
    return sent.id


def test_the_export_holds_delivery_events_and_pending_events(harness: Harness) -> None:
    message_id = _shop(harness)
    with harness.project.db.connect() as conn:
        data = gdpr_export(conn, "c9")
    assert data is not None
    raws = [d["raw"] for d in data["delivery_events"]]
    assert {"email": EMAIL, "reason": f"550 5.1.1 <{EMAIL}>"} in raws
    assert {"From": PHONE, "Body": "STOP"} in raws
    assert any(d["message_id"] == message_id for d in data["delivery_events"])
    assert any(PHONE in str(e["payload"]) for e in data["events"] if not e["applied"])


def test_erasure_leaves_no_address_anywhere(harness: Harness) -> None:
    _shop(harness)
    assert EMAIL in _everything(harness) and PHONE in _everything(harness)
    now = utc("2026-01-08T00:00:00")
    with harness.project.db.begin() as conn:
        assert erase(conn, "c9", "alice", now)
    text = _everything(harness)
    assert EMAIL not in text and PHONE not in text and "Erika" not in text
    harness.simulate(now + timedelta(days=600))  # the discarded pending event changes nothing
    with harness.project.db.connect() as conn:
        statuses = conn.execute(sa.select(Message.__table__.c.status)
                                .where(Message.__table__.c.customer_id == "c9")).scalars()  # fmt: skip
        assert "planned" not in set(statuses)


def test_a_guest_id_made_of_the_address_is_replaced_everywhere(harness: Harness) -> None:
    legacy = "shopify:guest:gina@example.com"
    harness.customers([{"id": legacy, "email": "gina@example.com", "first_name": "Gina"}])
    harness.events([purchase("g1", legacy, "2026-01-05T10:00:00+01:00", "o9", item())])
    harness.simulate(utc("2026-01-07T00:00:00"))
    assert harness.messages(customer_id=legacy)
    with harness.project.db.begin() as conn:
        new_id = erase(conn, legacy, "alice", utc("2026-01-08T00:00:00"))
    assert new_id and new_id != legacy and "gina" not in new_id
    assert "gina@example.com" not in _everything(harness)
    assert harness.messages(customer_id=new_id) and not harness.messages(customer_id=legacy)
    with harness.project.db.connect() as conn:
        data = gdpr_export(conn, new_id)
    assert data is not None and data["enrollments"]
    assert all(e["id"].split(":")[1:3] != ["shopify", "guest"] or "gina" not in e["id"]
               for e in data["enrollments"])  # fmt: skip


def test_the_export_holds_why_journeys_did_not_start_and_erasure_deletes_it(
    harness: Harness,
) -> None:
    _shop(harness)
    with harness.project.db.connect() as conn:
        data = gdpr_export(conn, "c9")
    assert data is not None
    reasons = {(n["journey_id"], n["reason"]) for n in data["not_enrolled"]}
    assert ("inspection_invitation", "item_condition") in reasons
    assert all(n["customer_id"] == "c9" and n["event_id"] == "e1" for n in data["not_enrolled"])
    with harness.project.db.begin() as conn:
        assert erase(conn, "c9", "alice", utc("2026-01-08T00:00:00"))
    with harness.project.db.connect() as conn:
        left = conn.execute(sa.select(NotEnrolled.__table__)).all()
        assert left == []
        assert gdpr_export(conn, "c9")["not_enrolled"] == []

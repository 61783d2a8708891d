"""A message's context built from its parts, in another process, is the one the loader gives."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from campaigns.engine import CUSTOMERS, CustomerRow, customers_t
from campaigns.models import Message
from scheduler.context import ContextLoader
from scheduler.parts import LinkSettings, render_context
from tests.conftest import item, purchase, utc

LINKS = LinkSettings("https://shop.example/after", "test-secret-key", short_links=True)


def test_parts_survive_pickling_and_build_the_loaders_context(sqlite_harness) -> None:
    h = sqlite_harness
    h.customers([{"id": "c1", "email": "kim@example.com", "phone": "+4915112345678",
                  "first_name": "Kim", "sms_consent": "yes", "birth_year": "1980"}])  # fmt: skip
    h.events([purchase("e1", "c1", "2026-03-02T09:00:00+00:00", "o1",
                       item(warranty_months=24, inspection_interval_days=90),
                       item("TAB-40", name="Tabs", price="12.99", quantity=2),
                       total="524.98")])  # fmt: skip
    h.simulate(utc("2026-03-02T09:00:01+00:00"), start=utc("2026-03-02T08:59:00+00:00"))
    messages = h.messages()
    assert len(messages) >= 3  # thank-you, inspection, loyalty, warranty: each its next message
    now = utc("2026-03-03T10:00:00+00:00")
    with h.project.db.connect() as conn:
        customer = conn.execute(CUSTOMERS, {"ids": ["c1"]}).one()
        full_row = conn.execute(sa.select(customers_t)).one()
        loader = ContextLoader(conn, messages)
        for message in messages:
            parts = loader.parts_for(message, CustomerRow._make(customer), now)
            copied = pickle.loads(pickle.dumps(parts))
            built = copied.context(LINKS)
            base = loader.context_for(message, full_row, now)
            expected = render_context(
                message, base, LINKS.public_url, LINKS.secret_key, short_links=True
            )
            assert built == expected
            assert built["customer"]["first_name"] == "Kim" and built["customer"]["age"] == 46
            assert built["order"]["total"] == Decimal("524.98")
            assert [i["quantity"] for i in built["order"]["items"]] == [1, 2]
            warranty = built["order"]["items"][0]["warranty_end"]
            assert warranty == utc("2028-03-02T09:00:00+00:00")
            assert built["now"] == now and built["step"]["id"] == message.step
            assert "short" not in built["links"]  # e-mails link in full
            as_sms = dataclasses.replace(copied, channel="sms").context(LINKS)
            assert as_sms["links"]["short"].startswith("https://shop.example/after/l/")


def test_a_message_without_an_order_has_no_order_and_no_item(sqlite_harness) -> None:
    h = sqlite_harness
    h.customers([{"id": "c2", "email": "jo@example.com"}])
    with h.project.db.begin() as conn:
        customer = CustomerRow._make(conn.execute(CUSTOMERS, {"ids": ["c2"]}).one())
        row = Message(id=7, enrollment_id="x:c2:1", customer_id="c2", order_id=None,
                      journey_id="win_back", journey_version=1, step="hello", occurrence=1,
                      channel="email", category="marketing", template="t", priority=0,
                      due_at=utc("2026-03-02T09:00:00+00:00"))  # fmt: skip
        parts = ContextLoader(conn, [row]).parts_for(row, customer, utc("2026-03-02T10:00:00Z"))
    context = parts.context(LINKS)
    assert context["order"] is None and context["item"] is None
    assert context["offer"]["bonus_points"] == 100
    assert context["journey"] == {"id": "win_back", "name": "win back"}
    assert parts.now - timedelta(hours=1) == utc("2026-03-02T09:00:00+00:00")

"""A step's send window through the whole engine: a Saturday purchase's SMS waits for
Monday 10:00 in the customer's own time zone, logged as deferred for ``send_window``."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from campaigns.models import MessageDecision
from tests.conftest import Harness, item, purchase, utc

WINDOWED = """\
id: service_sms
trigger: {event: purchase}
steps:
  - id: hello
    send_window: "10:00-18:00 mon-fri"
    send: {channel: sms, template: inspection_reminder, category: transactional}
"""


def test_a_saturday_purchase_is_told_on_monday_in_the_customers_own_time(
    make_harness, database_url
):
    h: Harness = make_harness(database_url=database_url, builtin_journeys=False,
                              journeys={"service_sms.yaml": WINDOWED})  # fmt: skip
    try:
        h.customers([
            {"id": "berlin", "phone": "+4915112345678", "timezone": "Europe/Berlin"},
            {"id": "tokyo", "phone": "+819012345678", "timezone": "Asia/Tokyo"},
        ])  # fmt: skip
        saturday = "2026-01-10T11:00:00+01:00"
        h.events([purchase("e1", "berlin", saturday, "o1", item()),
                  purchase("e2", "tokyo", saturday, "o2", item())])  # fmt: skip
        h.simulate(utc("2026-01-14T00:00:00"), start=utc("2026-01-10T10:00:00"))
        sent = {m.customer_id: m.sent_at for m in h.messages(journey_id="service_sms")}
        assert sent["berlin"].astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None) == (
            datetime(2026, 1, 12, 10, 0)
        )
        assert sent["tokyo"].astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None) == (
            datetime(2026, 1, 12, 10, 0)
        )
        decisions = MessageDecision.__table__
        with h.project.db.connect() as conn:
            reasons = conn.execute(
                sa.select(decisions.c.reason).where(decisions.c.action == "deferred")
            ).scalars()
            assert set(reasons) == {"send_window"}
    finally:
        h.project.close()

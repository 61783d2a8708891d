"""Fault injection: a fifth of provider calls fail (429, 500); nothing is lost or sent twice."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from aftersale.app import Project
from aftersale.providers import FakeProviders
from campaigns.models import Message, MessageDecision
from tests.conftest import Harness, item, purchase, utc

CUSTOMERS = 24
UNTIL = utc("2026-07-01T00:00:00")


def test_transient_failures_end_sent_or_failed_and_never_twice(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    with FakeProviders() as fakes:
        project = Project.open(h.directory, **fakes.settings())
        h.project = project  # the real SendGrid and Twilio clients, not in-memory channels
        h.customers([{"id": f"c{i}", "email": f"kunde{i}@example.org",
                      "phone": f"+49151123456{i:02d}", "sms_consent": "yes"}
                     for i in range(CUSTOMERS)])  # fmt: skip
        h.events([purchase(f"e{i}", f"c{i}", f"2026-01-{5 + i % 20:02d}T10:00:00+01:00",
                           f"o{i}", item(warranty_months=3, inspection_interval_days=30))
                   for i in range(CUSTOMERS)])  # fmt: skip
        for fake in (fakes.sendgrid, fakes.twilio):
            fake.failure_rate(0.2, ["rate_limit", "server_error"], seed=11)

        h.simulate(UNTIL)

        ids = fakes.accepted_message_ids()
        failed_calls = sum(1 for f in (fakes.sendgrid, fakes.twilio) for c in f.calls if c.failure)
        received = fakes.received()
    project.close()

    rows = [r for r in h.messages() if r.due_at <= UNTIL]  # later ones are not due yet
    assert len(rows) > 150
    assert {r.status for r in rows} <= {"sent", "failed", "skipped", "cancelled"}
    sent = [r for r in rows if r.status == "sent"]
    assert all(r.reason for r in rows if r.status in ("failed", "skipped", "cancelled"))
    # Every accepted request is one sent message, and no message id was accepted twice.
    assert max(ids.values()) == 1
    assert sorted(ids) == sorted(f"{r.channel}:{r.id}" for r in sent)
    assert received["sendgrid_accepted"] + received["twilio_accepted"] == len(sent)
    # The faults really happened and were retried.
    assert failed_calls > 0.1 * (received["sendgrid_requests"] + received["twilio_requests"])
    d = MessageDecision.__table__
    with project.db.connect() as conn:
        retries = conn.execute(
            sa.select(sa.func.count()).select_from(d).where(d.c.action == "retry")
        ).scalar_one()
        m = Message.__table__
        providers = set(conn.execute(sa.select(m.c.provider).where(m.c.status == "sent")).scalars())
    assert retries == failed_calls
    assert providers == {"sendgrid", "twilio"}

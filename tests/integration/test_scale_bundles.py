"""Several dispatcher processes on PostgreSQL bundle one customer's items exactly once.

With small batches, one customer's items fall into different batches of different
processes; a carrier must take along the items another process has claimed without either
process waiting on the other for good, and no item may go out alone beside its bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaigns.models import Message
from scheduler.workers import run_workers
from tests.conftest import Harness, item, purchase
from tests.integration.test_scale import pg_url, spec_for  # noqa: F401 - a fixture
from tests.integration.test_scale_channels import LEDGER_ENV, ledger_counts

messages_t = Message.__table__
ITEMS = 3
PER_ITEM = """
id: per_item
trigger: {event: purchase, for_each: item}
steps:
  - id: offer
    wait: 1m
    send: {channel: email, template: warranty_offer, category: marketing, expires_after: 30d}
"""
TOML = """
secret_key = "test-secret-key"
[dispatch]
batch_size = 7
[policy]
quiet_hours = ""
"""


def test_four_dispatchers_send_each_customer_s_items_as_one_message(
    make_harness: Callable[..., Harness],
    pg_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = tmp_path / "ledger"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    h = make_harness(database_url=pg_url, toml=TOML, journeys={"per_item.yaml": PER_ITEM},
                     builtin_journeys=False)  # fmt: skip
    try:
        customers = 300
        h.customers([{"id": f"c{n}", "email": f"c{n}@example.com"} for n in range(customers)])
        at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        skus = [item(f"S{k}", warranty_months=24) for k in range(ITEMS)]
        h.events([purchase(f"e{n}", f"c{n}", at, f"o{n}", *skus) for n in range(customers)])
        with h.project.db.begin() as conn:
            while h.project.journeys.apply_due_events(conn, datetime.now(UTC), limit=5000).events:
                pass

        assert run_workers(spec_for(h, pg_url, once=True), 4) == 0

        with h.project.db.connect() as conn:
            rows = conn.execute(
                sa.select(messages_t.c.id, messages_t.c.customer_id, messages_t.c.status,
                          messages_t.c.reason, messages_t.c.bundled_into)
            ).all()  # fmt: skip
        assert max(ledger_counts(ledger).values()) == 1
        sent = {r.id: r for r in rows if r.status == "sent"}
        assert sorted(r.customer_id for r in sent.values()) == sorted(
            f"c{n}" for n in range(customers)
        ), "each customer got exactly one message"
        bundled = [r for r in rows if r.status != "sent"]
        assert len(bundled) == customers * (ITEMS - 1)
        for r in bundled:
            assert (r.status, r.reason) == ("skipped", "bundled")
            assert sent[r.bundled_into].customer_id == r.customer_id
    finally:
        h.project.close()

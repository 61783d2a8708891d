"""Several dispatcher processes on one PostgreSQL database: caps hold, nothing is doubled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from campaigns.models import Message
from scheduler.clock import SimulatedClock
from scheduler.workers import Heartbeat, WorkerSpec, dispatchers_t, run_workers
from tests.conftest import Harness, _reset_postgres, purchase
from tests.integration.test_scale_channels import LEDGER_ENV, ledger_counts

messages_t = Message.__table__
CHANNELS = "tests.integration.test_scale_channels:ledger_channels"

# Three marketing e-mails per purchase, one from each of three journeys, all due at the same
# instant, and room for one a week: every dispatcher sees competing messages for the same
# customers in the same moment.
COMPETING = {
    f"competing{n}.yaml": f"""
id: competing{n}
name: Competing offer {n}
trigger:
  event: purchase
steps:
  - id: offer
    wait: 1m
    send:
      channel: email
      template: loyalty_offer
      category: marketing
      priority: {n}
      expires_after: 30d
"""
    for n in range(3)
}

TIGHT_TOML = """
secret_key = "test-secret-key"
public_url = "https://shop.example/after"
[dispatch]
batch_size = 200
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = ""
public_holidays = ""
[[policy.caps]]
channel = "email"
max = 1
per = "7d"
"""


@pytest.fixture
def pg_url(postgres_server: str) -> str:
    _reset_postgres(postgres_server)
    return postgres_server


@pytest.fixture
def shop(make_harness: Callable[..., Harness], pg_url: str) -> Iterator[Callable[[int], Harness]]:
    made: list[Harness] = []

    def build(customers: int) -> Harness:
        h = make_harness(
            database_url=pg_url,
            toml=TIGHT_TOML,
            journeys=COMPETING,
            builtin_journeys=False,
        )
        h.customers([{"id": f"c{n}", "email": f"c{n}@example.com"} for n in range(customers)])
        at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        h.events([purchase(f"e{n}", f"c{n}", at, f"o{n}") for n in range(customers)])
        with h.project.db.begin() as conn:
            while h.project.journeys.apply_due_events(conn, datetime.now(UTC), limit=5000).events:
                pass
        made.append(h)
        return h

    yield build
    for h in made:
        h.project.close()


def spec_for(h: Harness, pg_url: str, **kw: Any) -> WorkerSpec:
    return WorkerSpec(
        directory=str(h.directory), overrides={"database_url": pg_url}, channels=CHANNELS, **kw
    )


def statuses(h: Harness) -> dict[str, int]:
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(messages_t.c.status, sa.func.count()).group_by(messages_t.c.status)
        )
        return dict(rows.all())


def cap_violations(h: Harness) -> list[Any]:
    """Customers with more than one counting marketing e-mail within any 7 days."""
    sql = """
        select a.customer_id, count(*) from messages a join messages b
          on a.customer_id = b.customer_id and a.id <> b.id
         where a.status in ('sending','sent','delivered','bounced','unknown')
           and b.status in ('sending','sent','delivered','bounced','unknown')
           and a.category = 'marketing' and b.category = 'marketing'
           and abs(extract(epoch from a.sent_at - b.sent_at)) < 7 * 86400
         group by a.customer_id
    """
    with h.project.db.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def test_four_dispatchers_keep_caps_and_send_once(
    shop: Callable[[int], Harness], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    h = shop(5000)
    assert statuses(h) == {"planned": 15_000}

    assert run_workers(spec_for(h, pg_url, once=True), 4) == 0

    sent = ledger_counts(ledger)
    assert max(sent.values()) == 1, "a message reached the provider twice"
    assert len({pid for pid in _ledger_pids(ledger)}) >= 2, "only one process dispatched"
    assert statuses(h) == {"sent": 5000, "planned": 10_000}  # the rest deferred a week
    assert cap_violations(h) == []
    with h.project.db.connect() as conn:
        sent_ids = set(
            conn.execute(sa.select(messages_t.c.id).where(messages_t.c.status == "sent")).scalars()
        )
        # The highest priority won every customer's one slot.
        winners = set(
            conn.execute(
                sa.select(messages_t.c.journey_id).where(messages_t.c.status == "sent")
            ).scalars()
        )
        deferred = conn.execute(
            sa.select(sa.func.min(messages_t.c.due_at)).where(messages_t.c.status == "planned")
        ).scalar()
        beats = conn.execute(sa.select(sa.func.count()).select_from(dispatchers_t)).scalar()
    assert sent_ids == set(sent)
    assert winners == {"competing2"}
    assert deferred > datetime.now(UTC) + timedelta(days=6)
    assert beats == 0  # clean exits leave the dispatcher list


def _ledger_pids(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


def test_heartbeat_lists_a_live_dispatcher(shop: Callable[[int], Harness]) -> None:
    h = shop(1)
    beat = Heartbeat(h.project.db)
    beat.beat(leader=True, sent=3)
    beat.beat(leader=True, sent=2)
    with h.project.db.connect() as conn:
        row = conn.execute(sa.select(dispatchers_t)).one()
    assert (row.id, row.is_leader, row.sent) == (beat.id, True, 5)
    assert datetime.now(UTC) - row.seen_at < timedelta(seconds=5)
    beat.remove()
    with h.project.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dispatchers_t)).scalar() == 0


def wait_until_released(conn: sa.Connection, pid: int, timeout: float = 10.0) -> None:
    """Wait until backend ``pid`` holds no advisory lock any more."""
    held = sa.text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory'")
    deadline = time.monotonic() + timeout
    while conn.execute(held, {"pid": pid}).scalar():
        assert time.monotonic() < deadline, f"backend {pid} still holds its advisory lock"
        time.sleep(0.01)


def test_leadership_passes_on_when_the_leader_connection_dies(pg_url: str) -> None:
    from aftersale.database import create_engine
    from scheduler.leadership import AdvisoryLeadership

    first, second = create_engine(pg_url), create_engine(pg_url)
    a, b = AdvisoryLeadership(first), AdvisoryLeadership(second)
    try:
        assert a.holds() and not b.holds()
        assert a.holds(), "asking again keeps the lead"
        with second.connect() as conn:  # the leader's process dies: its session ends
            pid = a._conn.connection.dbapi_connection.info.backend_pid
            conn.execute(sa.select(sa.func.pg_terminate_backend(pid)))
            # The server ends that backend a moment later; its locks go with it.
            wait_until_released(conn, pid)
        assert b.holds()
        assert not a.holds(), "the old leader finds the lock taken"
        b.release()
        assert a.holds()
    finally:
        a.release(), b.release()
        first.dispose(), second.dispose()


def test_file_leadership_on_sqlite(tmp_path: Path) -> None:
    from scheduler.leadership import FileLeadership

    a, b = FileLeadership(tmp_path / "db.leader"), FileLeadership(tmp_path / "db.leader")
    assert a.holds() and not b.holds()
    a.release()
    assert b.holds() and not a.holds()
    b.release()


def test_cli_runs_two_worker_processes_once_on_sqlite(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aftersale.cli import app, write_project
    from tests.conftest import CUSTOMER_HEADER

    directory = tmp_path / "shop"
    write_project(directory)
    toml = directory / "aftersale.toml"
    # Whatever the hour the test runs at: no quiet hours, days or holidays.
    text = toml.read_text().replace('quiet_hours = "20:00-09:00"', 'quiet_hours = ""')
    toml.write_text(
        text.replace('quiet_days = ["sun"]', "quiet_days = []").replace(
            'public_holidays = "DE"', 'public_holidays = ""'
        )
    )
    customers = [CUSTOMER_HEADER] + [
        f"c{n},c{n}@example.com,,Kim,Test,de,Europe/Berlin,yes,no" for n in range(20)
    ]
    (directory / "customers.csv").write_text("\n".join(customers) + "\n")
    at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    events = [purchase(f"e{n}", f"c{n}", at, f"o{n}") for n in range(20)]
    (directory / "events.jsonl").write_text("\n".join(map(_json, events)) + "\n")
    runner = CliRunner()
    for args in (["import", "customers", "customers.csv"], ["import", "events", "events.jsonl"]):
        result = runner.invoke(app, ["-p", str(directory), *args[:2], str(directory / args[2])])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["-p", str(directory), "run", "--workers", "2", "--once"])
    assert result.exit_code == 0, result.output
    # The leader applied the purchases; the thank-you e-mails (due after 2 h) went out once.
    assert len(list((directory / "outbox" / "email").glob("*.eml"))) == 20


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_a_customer_whose_rows_another_claim_held_is_claimed_again_in_the_tick(
    shop: Callable[[int], Harness],
) -> None:
    """Two claims at one moment split a customer's due rows: the one holding the
    customer's lock leaves it, for its other rows, and claims again once the other has let
    go, however short its claim was. Before, a short claim ended the tick: a ``run --once``
    of several dispatchers could leave a customer unsent."""
    h = shop(1)
    m = messages_t.c
    holder = h.project.db.connect()
    other_claim = holder.begin()
    holder.execute(  # what another dispatcher's claim holds at this moment
        sa.select(m.id).where(m.customer_id == "c0").order_by(m.id).limit(1).with_for_update()
    ).scalar_one()
    dispatcher = h.project.dispatcher(SimulatedClock(datetime.now(UTC)))
    claim = dispatcher._claim_skip_locked
    seen: list[int] = []

    def claiming(conn: sa.Connection, now: datetime) -> Any:
        found = claim(conn, now)
        seen.append(len(found[0]))
        if other_claim.is_active:
            other_claim.rollback()  # that dispatcher failed the lock and let go
        return found

    dispatcher._claim_skip_locked = claiming  # type: ignore[method-assign]
    try:
        stats = dispatcher.tick()
    finally:
        dispatcher.close()
        holder.close()
    assert seen[0] == 0  # the first claim left the customer to no one
    assert stats.sent == 1  # one e-mail a week: the highest priority, sent in this tick
    assert statuses(h).get("sent") == 1

"""Crashes and faults of a dispatcher process: SIGKILL, SIGTERM, dropped connections.

Sends go to a ledger file that outlives the process, so "nothing sent twice" is checked
against what reached the provider, not against what the database believes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from aftersale.app import Project
from aftersale.providers import FakeProviders
from campaigns.models import Message
from scheduler.clock import SimulatedClock
from scheduler.dispatcher import DispatchStats
from scheduler.workers import WorkerSpec, start_workers
from tests.conftest import Harness, _reset_postgres, purchase
from tests.integration.test_scale_channels import (
    DELAY_ENV,
    LEDGER_ENV,
    ledger_channels,
    ledger_counts,
)
from tests.live_shop import live_shop_env

messages_t = Message.__table__
CHANNELS = "tests.integration.test_scale_channels:ledger_channels"
AFTERSALE = str(Path(sys.executable).with_name("aftersale"))
ONE_OFFER = """
id: offer
name: One offer
trigger:
  event: purchase
steps:
  - id: offer
    wait: 1m
    send: {channel: email, template: loyalty_offer, category: marketing, expires_after: 30d}
"""
SLOW_TOML = """
secret_key = "crash-test-secret-key-of-thirty-two-or-more-characters"
[dispatch]
batch_size = 40
workers = 8
tick_seconds = 0.5
[policy]
quiet_hours = ""
public_holidays = ""
"""
TOTAL = 400


@pytest.fixture
def crash_shop(
    make_harness: Callable[..., Harness],
    postgres_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Harness, WorkerSpec, Path]]:
    """TOTAL due offers on PostgreSQL and a worker spec whose sends take 50 ms each."""
    _reset_postgres(postgres_server)
    ledger = tmp_path / "ledger"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    monkeypatch.setenv(DELAY_ENV, "0.05")
    h = make_harness(
        database_url=postgres_server,
        toml=SLOW_TOML,
        journeys={"offer.yaml": ONE_OFFER},
        builtin_journeys=False,
    )
    h.customers([{"id": f"c{n}", "email": f"c{n}@example.com"} for n in range(TOTAL)])
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    h.events([purchase(f"e{n}", f"c{n}", at, f"o{n}") for n in range(TOTAL)])
    h.project.channel_overrides = dict(ledger_channels(None))
    spec = WorkerSpec(
        directory=str(h.directory), overrides={"database_url": postgres_server}, channels=CHANNELS
    )
    yield h, spec, ledger
    h.project.close()


def counts(h: Harness) -> dict[str, int]:
    with h.project.db.connect() as conn:
        rows = conn.execute(
            sa.select(messages_t.c.status, sa.func.count()).group_by(messages_t.c.status)
        )
        return dict(rows.all())


def ids_with(h: Harness, *statuses: str) -> set[int]:
    with h.project.db.connect() as conn:
        query = sa.select(messages_t.c.id).where(messages_t.c.status.in_(statuses))
        return set(conn.execute(query).scalars())


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def mid_batch(h: Harness) -> Callable[[], bool]:
    """True once some messages are sent and others reserved: a batch is on the wire."""

    def check() -> bool:
        c = counts(h)
        return c.get("sent", 0) > 0 and c.get("sending", 0) > 0

    return check


def handed_over_without_answer(h: Harness) -> set[int]:
    """Messages a dispatcher handed to the provider and has no answer for: in flight."""
    with h.project.db.connect() as conn:
        query = sa.select(messages_t.c.id).where(
            messages_t.c.status == "sending",
            messages_t.c.handed_over_at.is_not(None),
            messages_t.c.provider_message_id.is_(None),
        )
        return set(conn.execute(query).scalars())


def restart_after_the_lease(h: Harness) -> DispatchStats:
    """A dispatcher whose clock stands past every lease the dead ones held."""
    later = datetime.now(UTC) + timedelta(seconds=h.project.settings.dispatch_lease_seconds + 1)
    dispatcher = h.project.dispatcher(SimulatedClock(later))
    try:
        return dispatcher.tick()
    finally:
        dispatcher.close()


def test_sigkill_mid_batch_loses_only_what_was_in_flight(crash_shop) -> None:
    h, spec, ledger = crash_shop
    (process,) = start_workers(spec, 1)
    wait_for(mid_batch(h))
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    reserved = ids_with(h, "sending")
    in_flight = handed_over_without_answer(h)
    assert reserved, "the kill should land while messages are reserved"

    # Restart after the lease ran out: only what was on the wire becomes unknown, never
    # re-sent; the rest of the batch goes out now, once.
    stats = restart_after_the_lease(h)

    sent = ledger_counts(ledger)
    assert max(sent.values()) == 1
    assert stats.unknown == len(in_flight) <= h.project.sending_threads
    assert ids_with(h, "unknown") == in_flight
    assert counts(h) == {
        "sent": TOTAL - len(in_flight),
        **({"unknown": len(in_flight)} if in_flight else {}),
    }
    # Everything the database calls sent reached the provider once; what is unknown maybe.
    assert ids_with(h, "sent") <= set(sent) <= ids_with(h, "sent", "unknown")


def test_sigterm_finishes_the_batch_in_flight(crash_shop) -> None:
    h, spec, ledger = crash_shop
    (process,) = start_workers(spec, 1)
    wait_for(mid_batch(h))
    os.kill(process.pid, signal.SIGTERM)
    process.join(30)
    assert process.exitcode == 0

    c = counts(h)
    assert "sending" not in c and "unknown" not in c
    assert c.get("planned", 0) > 0, "a stopped dispatcher claims no more"
    assert set(ledger_counts(ledger)) == ids_with(h, "sent")
    assert max(ledger_counts(ledger).values()) == 1


def test_dropped_connections_are_survived(crash_shop) -> None:
    h, spec, ledger = crash_shop
    (process,) = start_workers(spec, 1)
    database = h.project.db.url.database
    kill = sa.text(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity "
        "where datname = :db and pid <> pg_backend_pid()"
    )
    killed = 0
    try:
        wait_for(mid_batch(h))
        for _ in range(5):  # five times during the run, each mid-batch
            with h.project.db.connect() as conn:
                killed += conn.execute(kill, {"db": database}).scalar()
            h.project.db.dispose()  # our own pool held killed connections too
            time.sleep(0.4)
        wait_for(lambda: counts(h) == {"sent": TOTAL}, timeout=60)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.join(30)
    assert killed >= 5
    assert process.exitcode == 0
    sent = ledger_counts(ledger)
    assert set(sent) == ids_with(h, "sent") and max(sent.values()) == 1


# ---------------------------------------------- the CLI, two processes, a real provider

CLI_TOML = SLOW_TOML.replace("tick_seconds = 0.5", "tick_seconds = 0.2")


def test_sigkill_of_run_with_two_workers_resends_nothing_and_loses_only_the_in_flight(
    make_harness: Callable[..., Harness], database_url: str
) -> None:
    """``aftersale run --workers 2`` against the fake SendGrid answering in 50 ms, killed
    (the parent and both dispatchers) mid-run, then restarted."""
    postgres = database_url.startswith("postgresql")
    with FakeProviders() as fakes:
        fakes.sendgrid.latency = 0.05
        h = make_harness(
            database_url=database_url,
            toml=CLI_TOML,
            journeys={"offer.yaml": ONE_OFFER},
            builtin_journeys=False,
        )
        try:
            h.customers([{"id": f"c{n}", "email": f"c{n}@example.com"} for n in range(TOTAL)])
            at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            h.events([purchase(f"e{n}", f"c{n}", at, f"o{n}") for n in range(TOTAL)])
            _ = h.project.journeys  # the project is migrated and its journeys synced
            env = {
                **os.environ,
                **fakes.environment(),
                **live_shop_env(),
                "AFTERSALE_DATABASE_URL": database_url,
            }
            run = subprocess.Popen(
                [AFTERSALE, "--project", str(h.directory), "run", "--workers", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the kill takes all three
            )
            try:
                wait_for(lambda: len(fakes.sendgrid.requests) >= TOTAL // 4, timeout=60)
            finally:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(10)
            time.sleep(0.2)  # requests the dead dispatchers left on the wire are answered
            in_flight = handed_over_without_answer(h)  # on PostgreSQL, in the table
            assert counts(h).get("planned", 0) > 0, "the kill should land mid-run"

            h.project.close()
            h.project = Project.open(h.directory, database_url=database_url, **fakes.settings())
            stats = restart_after_the_lease(h)
            accepted = fakes.accepted_message_ids()

            assert max(accepted.values()) == 1, "nothing reached the provider twice"
            unknown = ids_with(h, "unknown")
            assert stats.unknown == len(unknown) <= 2 * h.project.sending_threads
            if postgres:
                assert unknown == in_flight
            assert counts(h) == {
                "sent": TOTAL - len(unknown),
                **({"unknown": len(unknown)} if unknown else {}),
            }
            sent = {f"email:{i}" for i in ids_with(h, "sent")}
            assert sent <= set(accepted) <= sent | {f"email:{i}" for i in unknown}
        finally:
            h.project.close()


def test_a_dispatcher_sends_on_as_many_threads_as_its_hand_off_journal_serves(
    make_harness: Callable[..., Harness], database_url: str
) -> None:
    """What a crash can leave ``unknown`` is bounded by the sending threads: 8 on SQLite
    (each thread writes its own hand-off line), 32 on PostgreSQL (threads ready together
    share one hand-off statement), unless ``dispatch.workers`` says otherwise."""
    from aftersale.settings import ConfigurationError

    h = make_harness(database_url=database_url)
    expected = 32 if database_url.startswith("postgresql") else 8
    dispatcher = h.project.dispatcher(SimulatedClock(datetime(2026, 3, 2, tzinfo=UTC)))
    try:
        assert h.project.sending_threads == expected
        assert dispatcher.config.workers == expected
        assert dispatcher._pool._max_workers == expected
    finally:
        dispatcher.close()
        h.project.close()
    chosen = Project.open(h.directory, database_url=database_url, dispatch_workers=3)
    assert chosen.sending_threads == 3
    chosen.close()
    with pytest.raises(ConfigurationError, match="dispatch.workers"):
        Project.open(h.directory, database_url=database_url, dispatch_workers=0)

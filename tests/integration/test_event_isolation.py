"""One poison event fails alone: set aside as failed, logged once, retryable; the tick goes on.

The poison rows are written straight into the events table, as an older release's import
or a database edited by hand could have left them: the edge's bounds would refuse them.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from campaigns.engine import retry_events
from campaigns.models import Event
from scheduler.clock import SimulatedClock
from tests.conftest import Harness, item, purchase, utc

events_t = Event.__table__
AT = "2026-01-05T10:00:00+01:00"
POISON = {
    "p-warranty": item(warranty_months=999_999_999),
    "p-inspection": item(inspection_interval_days=99_999_999),
    "p-quantity": item(quantity=10**30),
}


def store_raw(h: Harness, *events: dict[str, Any]) -> None:
    rows = [
        {"id": e["id"], "type": e["type"], "customer_id": e["customer"], "at": utc(e["at"]),
         "payload": {k: v for k, v in e.items() if k not in ("id", "type", "customer", "at")},
         "applied": False, "source": "import"}
        for e in events
    ]  # fmt: skip
    with h.project.db.begin() as conn:
        conn.execute(events_t.insert(), rows)


def shop_with_poison(h: Harness) -> None:
    h.customers([{"id": "bad", "email": "bad@example.org"},
                 {"id": "c1", "email": "anna@example.org"},
                 {"id": "c2", "email": "bob@example.org"}])  # fmt: skip
    h.events([purchase("g1", "c1", AT, "o-g1", item(warranty_months=24))])
    store_raw(h, *(purchase(eid, "bad", AT, f"o-{eid}", poison) for eid, poison in POISON.items()))
    h.events([purchase("g2", "c2", "2026-01-05T11:00:00+01:00", "o-g2", item())])


def stored(h: Harness) -> dict[str, Any]:
    with h.project.db.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(events_t))}


def test_simulate_goes_on_past_poison_events(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    shop_with_poison(harness)
    with caplog.at_level(logging.ERROR, logger="campaigns.engine"):
        harness.simulate(utc("2026-01-10T00:00:00"))

    events = stored(harness)
    for eid in POISON:
        assert events[eid].failed_at is not None and events[eid].applied
        assert events[eid].error.startswith("error:"), events[eid].error
        assert events[eid].error_detail
    assert {e.id for e in events.values() if e.failed_at is None} == {"g1", "g2"}
    assert all(events[eid].applied_at is not None for eid in ("g1", "g2"))
    thanks = {m.customer_id: m.status for m in harness.messages(journey_id="thank_you")}
    assert thanks["c1"] == thanks["c2"] == "sent"
    logged = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert sorted(r.getMessage().split()[1] for r in logged) == sorted(POISON)  # once each


def test_a_tick_on_the_real_path_goes_on_past_poison_events(harness: Harness) -> None:
    """What ``run --once`` does: one tick of the dispatcher, here on a fixed clock."""
    shop_with_poison(harness)
    dispatcher = harness.project.dispatcher(SimulatedClock(utc("2026-01-05T13:00:00")))
    try:
        first = dispatcher.tick()
        again = dispatcher.tick()
    finally:
        dispatcher.close()
    assert first.events == 5 and first.sent >= 2
    assert again.events == 0  # a failed event is not applied again on every tick
    assert {m.customer_id for m in harness.messages(journey_id="thank_you", status="sent")} >= {
        "c1", "c2"
    }  # fmt: skip


def test_a_failed_event_can_be_retried_after_a_fix(harness: Harness) -> None:
    shop_with_poison(harness)
    harness.simulate(utc("2026-01-06T00:00:00"))
    with harness.project.db.begin() as conn:  # the fix: a sane warranty
        order = {"id": "o-p-warranty", "items": [item(warranty_months=12)]}
        conn.execute(
            events_t.update().where(events_t.c.id == "p-warranty").values(payload={"order": order})
        )
        assert retry_events(conn, ["p-warranty", "g1"]) == ["p-warranty"]

    harness.simulate(utc("2026-01-07T00:00:00"))

    events = stored(harness)
    assert events["p-warranty"].failed_at is None and events["p-warranty"].applied_at is not None
    assert [m.customer_id for m in harness.messages(journey_id="thank_you", customer_id="bad")]
    with harness.project.db.begin() as conn:
        assert retry_events(conn) == ["p-inspection", "p-quantity"]
    harness.simulate(utc("2026-01-08T00:00:00"))
    assert {eid for eid, e in stored(harness).items() if e.failed_at} == {
        "p-inspection", "p-quantity"
    }  # fmt: skip


# ------------------------------------------------------------------ CLI and console


def cli(h: Harness, *args: str) -> Any:
    from typer.testing import CliRunner

    from aftersale.cli import app

    env = {"COLUMNS": "250"}
    return CliRunner().invoke(app, ["--project", str(h.directory), *args], env=env)


def test_failed_events_are_listed_and_retried_from_the_command_line(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    shop_with_poison(h)
    simulated = cli(h, "simulate", "--until", "2026-01-06")
    assert simulated.exit_code == 0, simulated.output
    assert "3 event(s) could not be applied" in simulated.output

    listed = cli(h, "log", "--events", "--status", "failed")
    assert listed.exit_code == 0, listed.output
    for eid in POISON:
        assert eid in listed.output
    assert "g1" not in listed.output and "year 83335359 is out of range" in listed.output

    assert cli(h, "events", "retry").exit_code != 0  # neither ids nor --all-failed
    one = cli(h, "events", "retry", "p-warranty", "nope")
    assert one.exit_code == 1 and "nope: no failed event" in one.output
    assert {eid for eid, e in stored(h).items() if e.failed_at} == {"p-inspection", "p-quantity"}
    rest = cli(h, "events", "retry", "--all-failed")
    assert rest.exit_code == 0 and "2 event(s) queued again" in rest.output
    assert cli(h, "log", "--events", "--status", "pending").output.count("p-") == 3

    h.simulate(utc("2026-01-07T00:00:00"))  # still broken: failed again, once each
    assert {eid for eid, e in stored(h).items() if e.failed_at} == set(POISON)


def test_the_console_lists_failed_events_and_an_admin_retries_them(
    sqlite_harness: Harness,
) -> None:
    from aftersale.accounts import create_user
    from tests.integration.admin_data import ADMIN, VIEWER, client_for, login, post

    h = sqlite_harness
    shop_with_poison(h)
    h.simulate(utc("2026-01-06T00:00:00"))
    create_user(h.project.db, *ADMIN, "admin", utc("2026-01-06T00:00:00"))
    create_user(h.project.db, *VIEWER, "viewer", utc("2026-01-06T00:00:00"))

    with client_for(h) as viewer:
        token = login(viewer, VIEWER)
        page = viewer.get("/admin/events").text
        assert all(eid in page for eid in POISON) and "error:ValueError" in page
        assert ">3<" in viewer.get("/admin/").text.replace("</a>", "<")
        api = viewer.get("/api/admin/events").json()["events"]
        assert {e["id"] for e in api} == set(POISON) and all(e["error"] for e in api)
        assert post(viewer, "/admin/events/retry", token, event_id="p-warranty").status_code == 403
    with client_for(h) as admin:
        token = login(admin, ADMIN)
        assert post(admin, "/admin/events/retry", token, event_id="p-warranty").status_code == 303
        response = admin.post(
            "/api/admin/events/retry", json={"all_failed": True}, headers={"X-CSRF-Token": token}
        )
        assert sorted(response.json()["queued"]) == ["p-inspection", "p-quantity"]
    assert not any(e.failed_at for e in stored(h).values())


def test_a_customers_timeline_shows_the_failed_event(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    shop_with_poison(h)
    h.simulate(utc("2026-01-06T00:00:00"))
    shown = cli(h, "customer", "bad")
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("failed:") == 3 and "year 83335359" in shown.output

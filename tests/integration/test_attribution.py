"""Attributed figures: each order credited once, never to a receipt, no future baselines."""

from __future__ import annotations

from decimal import Decimal

from aftersale.admin.terminal import project_prices
from aftersale.stats import journey_returns, step_funnels
from campaigns.models import reading
from tests.conftest import POLICY_TOML, item, purchase, utc

THANKS = """\
id: thanks
trigger: {event: purchase}
steps:
  - id: receipt
    wait: 2h
    send: {channel: email, template: thank_you, category: transactional}
"""


def offer(journey_id: str, wait: str) -> str:
    return (
        f"id: {journey_id}\ntrigger: {{event: purchase}}\nsteps:\n  - id: offer\n"
        f"    wait: {wait}\n    send: {{channel: email, template: loyalty_offer}}\n"
    )


ANNA = {"id": "c1", "email": "anna@example.com", "first_name": "Anna", "last_name": "Muster",
        "timezone": "Europe/Berlin"}  # fmt: skip


def shop(make_harness, database_url):
    journeys = {"thanks.yaml": THANKS, "early.yaml": offer("early", "10d"),
                "late.yaml": offer("late", "20d")}  # fmt: skip
    h = make_harness(database_url=database_url, toml=POLICY_TOML, builtin_journeys=False,
                     journeys=journeys)  # fmt: skip
    h.customers([ANNA])
    # Bought on 6 January: the receipt goes out that day, "early" on the 16th, "late" on
    # the 26th; she buys again on the 28th, which plans a second round for February.
    h.events([
        purchase("e1", "c1", "2026-01-06T10:00:00+01:00", "o1", item()),
        purchase("e2", "c1", "2026-01-28T10:00:00+01:00", "o2", item(), total="899.00"),
    ])  # fmt: skip
    h.simulate(utc("2026-02-01T00:00:00"))
    return h


def test_a_follow_up_order_is_credited_once_to_the_last_marketing_message(
    make_harness, database_url
):
    h = shop(make_harness, database_url)
    try:
        with reading(h.project.db) as conn:
            returns = {r.journey_id: r for r in journey_returns(conn, project_prices(h.project))}
            only_early = journey_returns(conn, project_prices(h.project), "early")
        assert (returns["late"].orders, returns["late"].revenue) == (1, Decimal("899.00"))
        assert returns["early"].orders == 0  # sent before "late": not the last one
        assert returns["thanks"].orders == 0  # a receipt is never credited
        assert returns["thanks"].emails == 2  # though what it cost still counts
        assert [(r.journey_id, r.orders) for r in only_early] == [("early", 0)]
    finally:
        h.project.close()


def test_funnels_count_only_messages_whose_time_has_come(make_harness, database_url):
    h = shop(make_harness, database_url)
    try:
        assert len(h.messages(journey_id="late")) == 2  # one sent, one planned for February
        with reading(h.project.db) as conn:
            funnels = {f.journey_id: f for f in step_funnels(conn)}
        assert (funnels["late"].planned, funnels["late"].sent) == (1, 1)
        assert dict(funnels["late"].stages())["delivered"] == 0  # a reporting channel: zero
    finally:
        h.project.close()


def test_delivery_figures_are_not_applicable_where_the_provider_reports_none(
    make_harness, database_url
):
    h = make_harness(database_url=database_url, toml=POLICY_TOML, builtin_journeys=False,
                     journeys={"early.yaml": offer("early", "10d")})  # fmt: skip
    h.project.channel_overrides = {}  # the settings' providers: the outbox
    try:
        h.customers([ANNA])
        h.events([purchase("e1", "c1", "2026-01-06T10:00:00+01:00", "o1", item())])
        h.simulate(utc("2026-02-01T00:00:00"))
        with reading(h.project.db) as conn:
            [funnel] = step_funnels(conn)
        stages = dict(funnel.stages())
        assert (stages["planned"], stages["sent"]) == (1, 1)
        assert stages["delivered"] is stages["opened"] is stages["clicked"] is None
        from datetime import UTC, datetime

        from aftersale.accounts import create_user
        from tests.integration.admin_data import VIEWER, client_for, login

        create_user(h.project.db, *VIEWER, "viewer", datetime.now(UTC))
        with client_for(h) as client:
            login(client, VIEWER)
            for page in ("/admin/journeys", "/admin/journeys/early"):
                assert 'the provider reports no deliveries">n/a</span>' in client.get(page).text
    finally:
        h.project.close()


def test_an_order_past_the_window_is_credited_to_nobody(make_harness, database_url):
    h = make_harness(database_url=database_url, toml=POLICY_TOML, builtin_journeys=False,
                     journeys={"early.yaml": offer("early", "10d")})  # fmt: skip
    try:
        h.customers([ANNA])
        # The offer goes out on 16 January; 31 days later is past the 30-day window.
        h.events([
            purchase("e1", "c1", "2026-01-06T10:00:00+01:00", "o1", item()),
            purchase("e2", "c1", "2026-02-17T10:00:00+01:00", "o2", item()),
        ])  # fmt: skip
        h.simulate(utc("2026-02-18T00:00:00"))
        [sent, _] = h.messages(journey_id="early")
        assert sent.status == "sent" and sent.sent_at < utc("2026-01-17T00:00:00")
        with reading(h.project.db) as conn:
            [early] = journey_returns(conn, project_prices(h.project))
        assert (early.emails, early.orders) == (1, 0)
    finally:
        h.project.close()

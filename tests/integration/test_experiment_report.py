"""The holdout report wired end to end: engine, dispatcher, log, ``stats --format json``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aftersale.cli import app as cli
from campaigns.experiments import held_out
from tests.conftest import POLICY_TOML, item, purchase, utc

SECRET = "test-secret-key"
OFFER = """\
id: offer
trigger: {event: purchase}
holdout: 30%
goal: coupon_redeemed
offer_cost: offer.discount
steps:
  - id: offer
    wait: 30d
    send: {channel: email, template: loyalty_offer}
    variants:
      - {id: a, subject: "Für Sie", weight: 1}
      - {id: b, subject: "Nur für Sie", weight: 1}
"""
MARGIN_TOML = POLICY_TOML + '\n[stats]\nmargin = 0.5\ncurrency = "CHF"\n'
CUSTOMERS = [
    {"id": f"c{i:03d}", "email": f"c{i}@example.com", "first_name": "Kim", "last_name": "Muster",
     "timezone": "Europe/Berlin"}
    for i in range(60)
]  # fmt: skip


def test_stats_compares_treated_with_holdout_in_the_shape_the_readme_gives(
    make_harness, database_url
):
    sqlite = database_url.startswith("sqlite")  # then the project's own file, as the CLI reads
    h = make_harness(database_url=None if sqlite else database_url, toml=MARGIN_TOML, builtin_journeys=False,
                     journeys={"offer.yaml": OFFER})  # fmt: skip
    try:
        h.customers(CUSTOMERS)
        ids = [c["id"] for c in CUSTOMERS]
        control = {c for c in ids if held_out(SECRET, "offer", c, 0.3)}
        # Every treated customer redeems the coupon (worth 100, giving 15 away) two weeks
        # after the offer; in the holdout, every third one redeems without an offer. One
        # redemption before any offer counts for nobody.
        redeem = [c for c in ids if c not in control] + sorted(control)[::3]
        events = [purchase(f"p-{c}", c, "2026-01-06T10:00:00+01:00", f"o-{c}", item())
                  for c in ids]  # fmt: skip
        events += [
            {"id": f"r-{c}", "type": "coupon_redeemed", "customer": c,
             "at": "2026-02-20T10:00:00+01:00", "value": "100.00", "offer": {"discount": 15}}
            for c in redeem
        ]  # fmt: skip
        events.append({"id": "early", "type": "coupon_redeemed", "customer": ids[0],
                       "at": "2026-01-10T10:00:00+01:00", "value": "999.00"})  # fmt: skip
        h.events(events)
        h.simulate(utc("2026-03-15T00:00:00"))

        doc = stats_json(h)
        if sqlite:
            result = CliRunner().invoke(cli, ["--project", str(h.directory), "stats",
                                              "--journey", "offer", "--format", "json"])  # fmt: skip
            assert result.exit_code == 0, result.output
            printed = json.loads(result.output)
            assert printed.pop("resting") == {"fatigue": 0, "unsatisfied": 0}
            assert printed == doc
        assert doc["currency"] == "CHF"
        [journey] = doc["journeys"]
        hold = journey["holdout"]
        treated, ctrl = len(ids) - len(control), len(control)
        assert hold["share"] == 0.3
        assert hold["treated"]["customers"] == treated
        assert hold["treated"]["conversions"] == treated
        assert hold["control"]["customers"] == ctrl
        assert hold["control"]["conversions"] == len(sorted(control)[::3])
        rate = hold["treated"]["conversion_rate"]
        assert rate["estimate"] == 1.0 and rate["low"] < 1.0 and set(rate) == {
            "estimate", "low", "high"}  # fmt: skip
        uplift = hold["uplift"]["conversion_rate"]
        planted = 1 - len(sorted(control)[::3]) / ctrl
        assert uplift["low"] < planted < uplift["high"] or uplift["estimate"] == planted
        assert set(hold["uplift"]) == {"conversion_rate", "revenue_per_customer"}
        # Profit per customer: treated 0.5 * 100 - 15 - message cost; control 0.5 * 100 a third.
        profit = hold["incremental_profit"]
        assert profit["low"] <= profit["estimate"] <= profit["high"]
        assert 0 < profit["estimate"] < treated * 35
        assert hold["verdict"] in ("pays", "does not pay") or hold["verdict"].startswith(
            "not enough data yet: about "
        )
        variants = {v["id"]: v for v in journey["variants"]}
        assert set(variants) == {"a", "b"} and variants["a"]["p_best"] is None
        assert variants["a"]["sent"] + variants["b"]["sent"] == treated
        assert 0 <= variants["b"]["p_best"] <= 1
        assert set(variants["b"]) == {"step", "id", "sent", "conversions", "conversion_rate",
                                      "p_best"}  # fmt: skip

        # The journey's page in the console shows the same comparison.
        from datetime import UTC, datetime

        from aftersale.accounts import create_user
        from tests.integration.admin_data import VIEWER, client_for, login

        create_user(h.project.db, *VIEWER, "viewer", datetime.now(UTC))
        with client_for(h) as client:
            login(client, VIEWER)
            page = client.get("/admin/journeys/offer").text
            api = client.get("/api/admin/journeys/offer").json()
        assert "Treated vs holdout" in page and f"Verdict:</strong> {hold['verdict']}" in page
        assert 'id="variants"' in page
        assert api["holdout"] == hold and api["currency"] == "CHF"
        if sqlite:
            table = CliRunner().invoke(cli, ["--project", str(h.directory), "stats", "--journey",
                                             "offer"], env={"COLUMNS": "200"})  # fmt: skip
            assert table.exit_code == 0, table.output
            assert "treated vs holdout" in table.output and "verdict:" in table.output
            assert "CHF" in table.output
    finally:
        h.project.close()


def stats_json(h) -> dict:
    """What ``stats --journey offer --format json`` prints, read on the harness's database."""
    from aftersale.admin import terminal
    from aftersale.stats import deferral_reasons, journey_returns, skip_reasons, step_funnels
    from campaigns.models import reading

    prices = terminal.project_prices(h.project)
    with reading(h.project.db) as conn:
        return json.loads(json.dumps(terminal.stats_document(
            prices, terminal.experiments(conn, prices, "offer"),
            journey_returns(conn, prices, "offer"), step_funnels(conn, "offer"),
            skip_reasons(conn, "offer"), deferral_reasons(conn, "offer"),
        )))  # fmt: skip


EXIT_ON_PURCHASE = """\
id: offer
trigger: {event: purchase}
reentry: once
holdout: 50%
exit: {goal: repurchase}
steps:
  - id: offer
    wait: 30d
    send: {channel: email, template: loyalty_offer}
"""


def test_customers_whose_messages_were_cancelled_before_their_time_are_in_neither_group(
    make_harness, database_url
):
    h = make_harness(database_url=database_url, toml=POLICY_TOML, builtin_journeys=False,
                     journeys={"offer.yaml": EXIT_ON_PURCHASE})  # fmt: skip
    try:
        h.customers(CUSTOMERS[:20])
        ids = [c["id"] for c in CUSTOMERS[:20]]
        # The first five buy again within a week: their offer is cancelled before it is
        # due, in either group, and their purchase is no conversion of the offer.
        h.events(
            [purchase(f"p-{c}", c, "2026-01-06T10:00:00+01:00", f"o-{c}", item()) for c in ids]
            + [purchase(f"q-{c}", c, "2026-01-12T10:00:00+01:00", f"q-{c}", item())
               for c in ids[:5]]
        )  # fmt: skip
        h.simulate(utc("2026-03-15T00:00:00"))
        assert {m.status for m in h.messages(customer_id=ids[0])} == {"cancelled"}
        hold = stats_json(h)["journeys"][0]["holdout"]
        assert hold["treated"]["customers"] + hold["control"]["customers"] == 15
        assert hold["treated"]["conversions"] == hold["control"]["conversions"] == 0
    finally:
        h.project.close()

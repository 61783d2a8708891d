"""Per-item messages that fall due together go out as one, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from aftersale.accounts import create_user
from aftersale.cli import app as cli
from aftersale.sendlog import LogFilter, write_export
from campaigns.models import COUNTING_STATUSES
from channels import TransientChannelError
from tests.conftest import POLICY_TOML, item, purchase, utc
from tests.integration.admin_data import ADMIN, client_for, login

ANNA = {"id": "c1", "email": "anna@example.com", "phone": "+4915112345678", "first_name": "Anna",
        "last_name": "Muster", "timezone": "Europe/Berlin", "sms_consent": "yes"}  # fmt: skip
BOB = {"id": "c2", "email": "bob@example.com", "first_name": "Bob", "last_name": "Smith",
       "locale": "en", "timezone": "Europe/Berlin"}  # fmt: skip
# Tuesday 13 January 2026: ninety days later is Monday 13 April, an ordinary working day.
BOUGHT = "2026-01-13T10:00:00+01:00"
INVITED = utc("2026-04-13T09:00:00")  # 11:00 in Berlin, summer time by then


def appliance(sku: str, name: str, **fields):
    return item(sku, name=name, inspection_interval_days=90, **fields)


def two_appliances(customer: str, de: bool = True):
    names = ("Spülmaschine", "Waschmaschine") if de else ("dishwasher", "washing machine")
    return purchase(
        f"e-{customer}", customer, BOUGHT, f"o-{customer}",
        appliance("GS-6", names[0]), appliance("WM-7", names[1]),
    )  # fmt: skip


def invites(h, customer="c1"):
    """The first invitation of each item."""
    return h.messages(
        journey_id="inspection_invitation", customer_id=customer, step="invite", occurrence=1
    )


def test_a_two_item_order_gets_one_invitation_naming_both(harness):
    h = harness
    h.customers([ANNA, BOB])
    h.events([two_appliances("c1"), two_appliances("c2", de=False)])
    h.simulate(utc("2026-04-14T00:00:00"))

    for customer in ("c1", "c2"):
        carrier, bundled = invites(h, customer)
        assert (carrier.status, carrier.sent_at) == ("sent", INVITED)
        assert (bundled.status, bundled.reason) == ("skipped", "bundled")
        assert bundled.bundled_into == carrier.id and carrier.bundled_into is None
    mails = [m for m in h.email.sent if m.journey == "inspection_invitation"]
    assert len(mails) == 2
    anna, bob = sorted(mails, key=lambda m: m.to)
    assert "für Ihre Spülmaschine und Ihre Waschmaschine ein" in anna.body_text
    assert "of your dishwasher and your washing machine." in bob.body_text
    assert "Ihre Spülmaschine und Ihre Waschmaschine" in anna.body_html


def test_a_bundle_is_one_contact_for_the_caps(make_harness, database_url):
    # At most two marketing e-mails a week: the bundle and a newsletter due the same hour
    # both go out, which they could not if the bundle counted as two.
    newsletter = (
        "id: newsletter\ntrigger: {event: purchase}\nsteps:\n"
        "  - id: news\n    wait: 90d\n    send: {channel: email, template: loyalty_offer}\n"
    )
    h = make_harness(
        database_url=database_url, toml=POLICY_TOML, journeys={"news.yaml": newsletter}
    )
    try:
        h.customers([ANNA])
        h.events([two_appliances("c1")])
        h.simulate(utc("2026-04-14T00:00:00"))
        [news] = h.messages(journey_id="newsletter")
        assert (news.status, news.sent_at) == ("sent", INVITED)
        counting = [m for m in invites(h) if m.status in COUNTING_STATUSES]
        assert len(counting) == 1
    finally:
        h.project.close()


def test_items_due_three_days_apart_are_not_bundled(harness):
    h = harness
    h.customers([ANNA])
    h.events(
        [
            purchase(
                "e1", "c1", BOUGHT, "o1",
                appliance("GS-6", "Spülmaschine"),
                item("WM-7", name="Waschmaschine", inspection_interval_days=93),
            )
        ]
    )  # fmt: skip
    h.simulate(utc("2026-04-20T00:00:00"))
    first, second = invites(h)
    assert (first.status, second.status) == ("sent", "sent")
    assert second.sent_at - first.sent_at >= utc("2026-01-04") - utc("2026-01-01")
    assert first.bundled_into is None and second.bundled_into is None
    mails = [m for m in h.email.sent if m.journey == "inspection_invitation"]
    assert "Ihre Spülmaschine ein" in mails[0].body_text
    assert "Ihre Waschmaschine ein" in mails[1].body_text


def test_a_deferred_carrier_keeps_its_siblings_planned(harness):
    h = harness
    h.customers([ANNA])
    # The first invitation falls due at 23:00 on 13 April, in the quiet hours; the second
    # eight hours later, at 07:00, still quiet. Both wait for 09:00, and go out as one.
    h.events(
        [
            purchase("e1", "c1", "2026-01-13T22:00:00+01:00", "o1",
                     appliance("GS-6", "Spülmaschine")),
            purchase("e2", "c1", "2026-01-14T06:00:00+01:00", "o2",
                     appliance("WM-7", "Waschmaschine")),
        ]
    )  # fmt: skip
    h.simulate(utc("2026-04-13T22:00:00"))
    first, second = sorted(invites(h), key=lambda m: m.id)
    assert (first.status, first.reason, first.due_at) == (
        "planned", "quiet_hours", utc("2026-04-14T07:00:00"))  # fmt: skip
    assert (second.status, second.bundled_into) == ("planned", None)
    assert second.due_at == utc("2026-04-14T05:00:00")

    h.simulate(utc("2026-04-15T00:00:00"))
    first, second = sorted(invites(h), key=lambda m: m.id)
    carrier, bundled = (first, second) if first.status == "sent" else (second, first)
    assert carrier.sent_at == utc("2026-04-14T07:00:00")
    assert (bundled.status, bundled.reason, bundled.bundled_into) == (
        "skipped", "bundled", carrier.id)  # fmt: skip
    [mail] = [m for m in h.email.sent if m.journey == "inspection_invitation"]
    assert "Spülmaschine" in mail.body_text and "Waschmaschine" in mail.body_text


def test_the_export_names_each_message_s_item_and_its_carrier(harness):
    h = harness
    h.customers([ANNA])
    h.events([two_appliances("c1")])
    h.simulate(utc("2026-04-14T00:00:00"))
    carrier, bundled = invites(h)
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        with h.project.db.connect() as conn:
            write_export(conn, LogFilter(), out, fmt)
        text = out.getvalue()
        if fmt == "jsonl":
            records = {r["message_id"]: r for r in map(json.loads, text.splitlines())}
        else:
            records = {int(r["message_id"]): r for r in csv.DictReader(io.StringIO(text))}
        none = None if fmt == "jsonl" else ""
        carrier_id = carrier.id if fmt == "jsonl" else str(carrier.id)
        assert {records[carrier.id]["item"], records[bundled.id]["item"]} == {"GS-6", "WM-7"}
        assert records[bundled.id]["bundled_into"] == carrier_id
        assert records[carrier.id]["bundled_into"] == none
        [thanks] = [r for r in records.values() if r["journey"] == "thank_you"]
        assert thanks["item"] == none and thanks["bundled_into"] == none


def test_log_customer_and_console_name_each_message_s_item(sqlite_harness):
    h = sqlite_harness
    h.customers([ANNA])
    h.events([two_appliances("c1")])
    h.simulate(utc("2026-04-14T00:00:00"))
    create_user(h.project.db, *ADMIN, "admin", utc("2026-04-14T00:00:00"))
    carrier, bundled = invites(h)
    runner, project = CliRunner(), ["--project", str(h.directory)]

    log = runner.invoke(cli, [*project, "log", "--journey", "inspection_invitation"],
                        env={"COLUMNS": "200"})  # fmt: skip
    assert log.exit_code == 0, log.output
    rows = [line for line in log.output.splitlines() if " invite " in line]
    assert any("Spülmaschine" in r for r in rows) and any("Waschmaschine" in r for r in rows)
    assert f"bundled into #{carrier.id}" in log.output
    timeline = runner.invoke(cli, [*project, "customer", "c1"], env={"COLUMNS": "200"})
    assert timeline.exit_code == 0, timeline.output
    lines = timeline.output.splitlines()
    assert any("inspection_invitation/invite #1 · Spülmaschine" in line for line in lines)
    assert any("inspection_invitation/invite #1 · Waschmaschine" in line for line in lines)
    assert not any("thank_you/thanks #1 ·" in line and "maschine" in line for line in lines)

    with client_for(h) as client:
        login(client, ADMIN)
        page = client.get("/admin/customers/c1").text
        assert '<span class="item">Spülmaschine</span>' in page
        assert '<span class="item">Waschmaschine</span>' in page
        assert f"into #{carrier.id}" in page
        log_page = client.get("/admin/log?journey=inspection_invitation").text
        assert "<td>Spülmaschine</td>" in log_page and "<td>Waschmaschine</td>" in log_page
        api = client.get("/api/admin/log?journey=inspection_invitation&step=invite").json()
        by_id = {m["id"]: m for m in api["messages"]}
        assert by_id[bundled.id]["bundled_into"] == carrier.id
        assert {by_id[carrier.id]["item_name"], by_id[bundled.id]["item_name"]} == {
            "Spülmaschine", "Waschmaschine"}  # fmt: skip


def test_journeys_validate_refuses_a_bad_bundle_within(sqlite_harness):
    journey = (
        "id: bad\ntrigger: {event: purchase, for_each: item}\nbundle_within: one day\n"
        "steps:\n  - id: one\n    send: {channel: email, template: warranty_offer}\n"
    )
    (sqlite_harness.directory / "journeys" / "bad.yaml").write_text(journey, encoding="utf-8")
    project = ["--project", str(sqlite_harness.directory)]
    done = CliRunner().invoke(cli, [*project, "journeys", "validate"], env={"COLUMNS": "200"})
    assert done.exit_code == 1
    assert "bad.yaml:3: error: bundle_within:" in done.output
    assert "'one day' is not a duration; write e.g. 30m, 2h, 14d" in done.output


def test_a_retried_carrier_still_names_the_items_it_carries(harness):
    h = harness
    h.customers([ANNA])
    h.events([two_appliances("c1")])
    h.simulate(utc("2026-04-13T08:00:00"))
    h.email.fail_next(TransientChannelError("busy", provider="memory", status=503))
    h.simulate(utc("2026-04-14T00:00:00"))

    bundled, carrier = invites(h)  # the retry moved the carrier's due time
    assert (carrier.status, carrier.attempts) == ("sent", 2)
    assert (bundled.status, bundled.bundled_into) == ("skipped", carrier.id)
    [mail] = [m for m in h.email.sent if m.journey == "inspection_invitation"]
    assert "für Ihre Spülmaschine und Ihre Waschmaschine ein" in mail.body_text

"""Listening to customers: complaints with their subject, customer value in conditions,
satisfaction ratings after a complaint and the holds they and fatigue put on offers."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aftersale.alerts import evaluate
from campaigns.models import Complaint, Customer, Event, Message
from campaigns.ratings import rating_token
from campaigns.warning import alert_skus
from scheduler.clock import SimulatedClock
from scheduler.simulation import SimulationDispatcher
from scheduler.workers import Chore, Heartbeat, Worker
from tests.conftest import Harness, item, purchase, utc
from tests.integration.listening_data import NOW, SPIKED, seed_listening
from tests.integration.test_webhooks import Web

complaints_t = Complaint.__table__
customers_t = Customer.__table__
events_t = Event.__table__


def complaint(event_id: str, at: str, **subject: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "complaint_opened", "customer": "c1", "at": at, **subject}


def resolved(event_id: str, at: str, **subject: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "complaint_resolved", "customer": "c1", "at": at, **subject}


def row(h: Harness, table: sa.Table, **where: Any) -> Any:
    with h.project.db.connect() as conn:
        query = sa.select(table)
        for key, value in where.items():
            query = query.where(table.c[key] == value)
        return conn.execute(query).one()


def bought(h: Harness) -> None:
    h.customers([{"id": "c1", "email": "anna@example.org"}])
    h.events([purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item("WM-1"))])


# ------------------------------------------------------------------ complaints


def test_a_complaint_keeps_its_order_sku_category_and_reason(harness: Harness) -> None:
    h = harness
    bought(h)
    h.events([complaint("k1", "2026-01-20T10:00:00+01:00", order="o1", sku="WM-1",
                        reason="leaks <b>water</b>")])  # fmt: skip
    h.simulate(utc("2026-01-21T00:00:00"))

    stored = row(h, complaints_t, id="k1")
    assert (stored.order_id, stored.sku, stored.category) == ("o1", "WM-1", "appliance")
    assert stored.reason == "leaks <b>water</b>" and stored.resolved_at is None
    customer = row(h, customers_t, id="c1")
    assert (customer.complaints, customer.open_complaints) == (1, 1)

    h.events([resolved("k2", "2026-01-25T10:00:00+01:00", order="o1")])
    h.simulate(utc("2026-01-26T00:00:00"))
    assert row(h, complaints_t, id="k1").resolved_at == utc("2026-01-25T09:00:00")
    customer = row(h, customers_t, id="c1")
    assert (customer.complaints, customer.open_complaints) == (1, 0)


def test_an_unknown_sku_is_refused_with_file_line_and_field(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    bought(h)
    report = h.events(
        [
            complaint("k1", "2026-01-20T10:00:00+01:00", sku="NOPE-1"),
            purchase("e2", "c1", "2026-01-21T10:00:00+01:00", "o2", item("TV-9")),
            complaint("k2", "2026-01-22T10:00:00+01:00", sku="TV-9"),  # bought in this file
            complaint("k3", "2026-01-22T10:00:00+01:00", sku="WM-1"),  # bought before
        ]
    )
    (error,) = report.errors
    assert (error.line, error.field) == (1, "sku")
    assert "unknown SKU 'NOPE-1'" in error.reason
    with h.project.db.connect() as conn:
        ids = set(conn.execute(sa.select(events_t.c.id)).scalars())
    assert "k1" not in ids and {"k2", "k3"} <= ids


def test_the_events_api_refuses_an_unknown_sku_and_a_bad_rating(web: Web) -> None:
    bought(web.h)
    web.h.project.settings.api_token = "t" * 40
    body = [
        complaint("k1", "2026-01-20T10:00:00+01:00", sku="NOPE-1"),
        {"id": "r1", "type": "satisfaction_rated", "customer": "c1",
         "at": "2026-01-20T10:00:00+01:00", "value": 7},
        complaint("k2", "2026-01-20T10:00:00+01:00", sku="WM-1", reason="noisy"),
    ]  # fmt: skip
    answer = web.client.post(
        "/api/events", json=body, headers={"Authorization": "Bearer " + "t" * 40}
    )
    outcomes = answer.json()["results"]
    assert [(o["status"], o.get("field")) for o in outcomes] == [
        ("error", "sku"),
        ("error", "value"),
        ("accepted", None),
    ]


# ---------------------------------------------------------------- customer value


SEGMENT_JOURNEY = """
id: champions_only
name: Champions only
trigger:
  event: purchase
audience: "customer.segment == 'champion' and customer.revenue > 1500 and customer.complaints.open == 0"
steps:
  - id: hello
    wait: 1d
    send: {channel: email, template: thank_you, category: transactional}
"""


def test_value_is_kept_current_and_conditions_read_the_segment(make_harness: Any) -> None:
    h = make_harness(journeys={"champions.yaml": SEGMENT_JOURNEY}, builtin_journeys=False)
    h.customers([{"id": "c1", "email": "anna@example.org"}])
    days = ["2026-01-05", "2026-02-05", "2026-03-05", "2026-04-05", "2026-05-05"]
    events = [
        purchase(f"e{n}", "c1", f"{day}T10:00:00+01:00", f"o{n}", item(f"S-{n}"), total="500.00")
        for n, day in enumerate(days)
    ]
    events.insert(2, {"id": "ret", "type": "return", "customer": "c1", "order": "o0",
                      "at": "2026-02-10T10:00:00+01:00"})  # fmt: skip
    h.events(events)
    h.simulate(utc("2026-05-10T00:00:00"))
    customer = row(h, customers_t, id="c1")
    assert customer.orders == 4 and customer.revenue == "2000.00"
    assert customer.first_purchase_at == utc("2026-01-05T09:00:00")
    assert customer.last_purchase_at == utc("2026-05-05T09:00:00")
    enrolled = {m.enrollment_id.split(":")[-1] for m in h.messages(journey_id="champions_only")}
    # The fourth order kept (o4) makes a champion over 1,500; o3 was the third kept.
    assert enrolled == {"o4"}
    h.project.close()


# ------------------------------------------------------------- satisfaction ratings


def followup(web: Web) -> Any:
    """c1's complaint is resolved and the follow-up e-mail with rating links goes out."""
    bought(web.h)
    web.h.events([complaint("k1", "2026-01-20T10:00:00+01:00", sku="WM-1"),
                  resolved("k2", "2026-01-22T10:00:00+01:00")])  # fmt: skip
    web.h.simulate(utc("2026-01-27T00:00:00"))
    (message,) = web.h.messages(journey_id="complaint_followup")
    assert message.status == "sent"
    return message


def token(web: Web, message: Any, customer: str = "c1") -> str:
    return rating_token(web.h.project.signing_keys().key("ratings"), message.id, customer)


def test_the_followup_email_carries_five_signed_rating_links(web: Web) -> None:
    message = followup(web)
    (sent,) = [m for m in web.h.email.sent if m.message_id == str(message.id)]
    for value in range(1, 6):
        assert f"/rate/{token(web, message)}/{value}" in (sent.body_html or "")
    assert "Ist Ihr Problem gelöst" in sent.subject


def test_a_rating_needs_the_button_and_lands_as_an_event(web: Web) -> None:
    message = followup(web)
    before = web.snapshot()
    page = web.client.get(f"/rate/{token(web, message)}/4")
    assert page.status_code == 200 and "Ihre Bewertung: 4 von 5" in page.text
    assert web.snapshot() == before  # a link scanner's GET rates nothing

    done = web.client.post(f"/rate/{token(web, message)}", data={"value": "4"})
    assert done.status_code == 200 and "Kommentar" in done.text
    stored = row(web.h, events_t, id=f"rating:{message.id}")
    assert stored.type == "satisfaction_rated" and stored.payload["value"] == 4

    commented = web.client.post(f"/rate/{token(web, message)}/comment", data={"comment": "ok"})
    assert commented.status_code == 200
    assert row(web.h, events_t, id=f"rating:{message.id}").payload["comment"] == "ok"


def test_forged_reused_and_out_of_range_ratings_store_nothing(web: Web) -> None:
    message = followup(web)
    good = token(web, message)
    forged = rating_token("not-the-key", message.id, "c1")
    other = token(web, message, customer="c2")
    before = web.snapshot()
    for url, status, words in [
        (f"/rate/{forged}/5", 404, "nicht gültig"),
        (f"/rate/{other}/5", 404, "nicht gültig"),
        (f"/rate/{good}/9", 400, "Zahl von 1 bis 5"),
        (f"/rate/{good}/0", 400, "Zahl von 1 bis 5"),
        ("/rate/zz/5", 404, "nicht gültig"),
        ("/rate/zzzzzzzzzzzzz/5", 404, "nicht gültig"),  # past any database integer
        ("/rate/2000000000000.x/5", 404, "nicht gültig"),
        ("/rate/%D9%A1%D9%A2/5", 404, "nicht gültig"),  # digits, but not ASCII ones
    ]:
        page = web.client.get(url)
        assert (page.status_code, words in page.text) == (status, True), url
    assert web.client.post(f"/rate/{forged}", data={"value": "5"}).status_code == 404
    assert web.client.post("/rate/2000000000000/comment", data={"comment": "x"}).status_code == 404
    assert web.client.post(f"/rate/{good}", data={"value": "6"}).status_code == 400
    assert web.client.post(f"/rate/{good}", data={"value": "-1"}).status_code == 400
    assert web.snapshot() == before

    assert web.client.post(f"/rate/{good}", data={"value": "5"}).status_code == 200
    after_first = web.snapshot()
    again = web.client.post(f"/rate/{good}", data={"value": "1"})
    assert again.status_code == 409 and "bereits verwendet" in again.text
    assert web.client.get(f"/rate/{good}/2").status_code == 409
    assert web.snapshot() == after_first


def test_a_low_rating_holds_offers_as_unsatisfied(web: Web) -> None:
    message = followup(web)
    web.client.post(f"/rate/{token(web, message)}", data={"value": "2"})
    web.h.simulate(utc("2026-04-20T00:00:00"))
    customer = row(web.h, customers_t, id="c1")
    assert customer.satisfaction == 2
    reasons = {
        m.reason
        for m in web.h.messages(journey_id="loyalty_offer")
        if m.due_at < utc("2026-02-25T00:00:00")
    }
    decided = _decisions(web.h, "unsatisfied")
    assert decided, f"no message held as unsatisfied; reasons {reasons}"


def _decisions(h: Harness, reason: str) -> list[Any]:
    from campaigns.models import MessageDecision

    t = MessageDecision.__table__
    with h.project.db.connect() as conn:
        return list(conn.execute(sa.select(t).where(t.c.reason == reason)))


# ---------------------------------------------------------------------------- fatigue

FATIGUE_TOML = """
secret_key = "test-secret-key"
public_url = "https://shop.example/after"
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = "off"
fatigue = {after = 2, rest = "60d"}
"""
NEWSLETTER = """
id: tips
name: Tips
trigger:
  event: purchase
steps:
""" + "".join(
    f"""  - id: tip{n}
    wait: {n * 7}d
    from: trigger
    send: {{channel: email, template: loyalty_offer, category: marketing, expires_after: 120d}}
"""
    for n in (1, 2, 3)
)


def test_unanswered_emails_rest_the_customer_until_an_open(make_harness: Any) -> None:
    h = make_harness(toml=FATIGUE_TOML, journeys={"tips.yaml": NEWSLETTER}, builtin_journeys=False)
    bought(h)
    h.simulate(utc("2026-01-27T00:00:00"))
    tips = {m.step: m for m in h.messages(journey_id="tips")}
    assert tips["tip1"].status == tips["tip2"].status == "sent"
    assert (tips["tip3"].status, tips["tip3"].reason) == ("planned", "fatigue")
    assert tips["tip3"].due_at == tips["tip2"].sent_at + timedelta(days=60)

    messages = Message.__table__
    with h.project.db.begin() as conn:  # the provider reports that tip 2 was opened
        conn.execute(messages.update().where(messages.c.id == tips["tip2"].id)
                     .values(opened_at=utc("2026-01-28T10:00:00")))  # fmt: skip
        conn.execute(messages.update().where(messages.c.id == tips["tip3"].id)
                     .values(due_at=utc("2026-01-28T12:00:00")))  # fmt: skip
    h.simulate(utc("2026-01-29T00:00:00"))
    (tip3,) = h.messages(step="tip3")
    assert tip3.status == "sent"
    h.project.close()


# ------------------------------------------------------------------------ early warning

ROOT = Path(__file__).resolve().parents[2]
GUARDED = """
id: accessories
name: Accessories
trigger:
  event: purchase
  for_each: item
  item_condition: "item.sku not in alerts"
steps:
  - id: offer
    wait: 1d
    send: {channel: email, template: loyalty_offer, category: marketing}
"""


def test_alerts_name_the_spiked_sku_and_conditions_hold_its_offers(make_harness: Any) -> None:
    h = make_harness(journeys={"accessories.yaml": GUARDED}, builtin_journeys=False)
    seed_listening(h)
    done = subprocess.run(
        [sys.executable, "-m", "aftersale.cli", "-p", str(h.directory), "alerts", "--format", "json"],
        capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # alerts found
    report = json.loads(done.stdout)
    skus = [a["name"] for a in report["alerts"] if a["dimension"] == "sku"]
    assert skus == [SPIKED]
    (alert,) = [a for a in report["alerts"] if a["name"] == SPIKED]
    assert alert["reason"] == "rising" and alert["p_value"] < 0.001 / report["subjects_tested"]

    h.project.settings.alerts = {"email": True}  # support hears of each alert once
    assert evaluate(h.project).mailed == 1 and evaluate(h.project).mailed == 0
    (mail,) = [m for m in h.email.sent if m.to == h.project.settings.shop_support_email]
    assert SPIKED in mail.body_text and "p = " in mail.body_text

    later = (NOW + timedelta(hours=1)).isoformat()
    h.events([purchase("late-1", "s1", later, "late-o1", item(SPIKED), item("WM-1"))])
    h.simulate(NOW + timedelta(hours=2))
    offered = {m.enrollment_id for m in h.messages(journey_id="accessories")
               if m.order_id == "late-o1"}  # fmt: skip
    assert offered == {"accessories:s1:order:late-o1#1"}  # position 1 (WM-1) only
    h.project.close()


def test_the_demo_plants_complaints_with_skus_and_a_spike(tmp_path: Path) -> None:
    from aftersale.demo import SPIKE_SKU, generate_shop

    shop = generate_shop(tmp_path, customers=300, months=12, seed=7)
    events = [json.loads(line) for line in shop.events.read_text().splitlines()]
    complaints = [e for e in events if e["type"] == "complaint_opened"]
    assert complaints and all(e["sku"] and e["order"] and e["reason"] for e in complaints)
    last_month = shop.until - timedelta(days=30)
    spiked = [e for e in complaints if e["sku"] == SPIKE_SKU
              and datetime.fromisoformat(e["at"]) >= last_month]  # fmt: skip
    assert len(spiked) >= 5
    ratings = [e["value"] for e in events if e["type"] == "satisfaction_rated"]
    assert ratings and set(ratings) <= {1, 2, 3, 4, 5}


def test_a_journey_is_blamed_for_complaints_only_through_its_marketing(harness: Harness) -> None:
    """The thank-you after every purchase precedes every early complaint about what was
    bought: transactional messages do not count as a journey's exposure."""
    from campaigns.models import reading
    from campaigns.warning import _sent_by_customer

    h = harness
    h.customers([{"id": "c1", "email": "anna@example.org"}])
    h.events([purchase("p1", "c1", "2026-01-05T10:00:00+01:00", "o1", item("WM-1"))])
    h.simulate(utc("2026-02-20T00:00:00"))
    went = {m.journey_id for m in h.messages() if m.status == "sent"}
    assert {"thank_you", "loyalty_offer"} <= went  # one transactional, one marketing
    with reading(h.project.db) as conn:
        sent = _sent_by_customer(conn, utc("2026-01-01T00:00:00"), utc("2026-02-20T00:00:00"))
    assert {journey for _, journey in sent["c1"]} == went - {"thank_you"}


class _Leads:
    def __init__(self, leads: bool) -> None:
        self.leads = leads

    def holds(self) -> bool:
        return self.leads

    def release(self) -> None:
        pass


def test_the_leading_dispatcher_evaluates_alerts_hourly(make_harness: Any, caplog: Any) -> None:
    """`run` keeps `item.sku in alerts` current without anyone running `aftersale alerts`:
    the leader evaluates them as a chore; a follower does not; a failing chore never stops
    the dispatch."""
    h = make_harness(journeys={"accessories.yaml": GUARDED}, builtin_journeys=False)
    seed_listening(h)
    h.project.settings.alerts = {"email": True, "every_hours": 2}
    clock = SimulatedClock(NOW)
    dispatcher = h.project.dispatcher(clock, kind=SimulationDispatcher)
    chores = h.project.chores()
    assert [c.every for c in chores] == [7200.0]
    follower = Worker(dispatcher, leadership=_Leads(False), heartbeat=Heartbeat(h.project.db),
                      chores=chores)  # fmt: skip
    follower.tick()
    with h.project.db.connect() as conn:
        assert alert_skus(conn) == frozenset()
    leader = Worker(dispatcher, leadership=_Leads(True), heartbeat=Heartbeat(h.project.db),
                    chores=chores)  # fmt: skip
    leader.tick()
    leader.tick()  # not due again for two hours: support is mailed once
    with h.project.db.connect() as conn:
        assert alert_skus(conn) == frozenset({SPIKED})
    mails = [m for m in h.email.sent if m.to == h.project.settings.shop_support_email]
    assert len(mails) == 1 and SPIKED in mails[0].body_text

    def broken() -> None:
        raise RuntimeError("statistics unavailable")

    leader.chores = [Chore("broken", 0.0, broken)]
    stats = leader.tick()  # logged, and the tick still returns its figures
    assert stats is not None and "broken failed" in caplog.text
    dispatcher.close()


def test_journeys_that_never_name_a_figure_plan_without_scoring(make_harness: Any) -> None:
    """The built-in purchase journeys name no figure: planning leaves the customer's value
    out of their context, and still counts the figures a journey naming them reads."""
    h = make_harness(journeys={"champions.yaml": SEGMENT_JOURNEY})
    engine = h.project.journeys
    bought = [a for a in engine.journeys.values() if a.journey.trigger.event == "purchase"]
    builtins = [a for a in bought if a.journey.id != "champions_only"]
    assert len(builtins) == 4 and not engine.reads_value(builtins)
    assert engine.reads_value(engine.journeys.values())
    h.customers([{"id": "c1", "email": "anna@example.org"}])
    days = ["2026-01-05", "2026-02-05", "2026-03-05", "2026-04-05"]
    h.events(
        [
            purchase(
                f"e{n}", "c1", f"{day}T10:00:00+01:00", f"o{n}", item(f"S-{n}"), total="500.00"
            )
            for n, day in enumerate(days)
        ]
    )
    h.simulate(utc("2026-04-10T00:00:00"))
    customer = row(h, customers_t, id="c1")
    assert customer.orders == 4 and customer.revenue == "2000.00"
    enrolled = {m.enrollment_id.split(":")[-1] for m in h.messages(journey_id="champions_only")}
    assert enrolled == {"o3"}  # 2,000 over four orders: a champion from the fourth
    assert h.messages(journey_id="thank_you")
    h.project.close()

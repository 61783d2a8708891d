"""The holdout report's groups and windows, read in two passes (outcomes, then deferrals),
against the rules of aftersale.holdouts applied message by message; and a sent SMS's
segments, kept in a column of their own for the figures."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command

from aftersale import holdouts
from aftersale.database import alembic_config, create_engine, migrate
from aftersale.stats import SENT_STATUSES, Prices, journey_returns
from campaigns.journeys import Journey
from campaigns.models import reading
from tests.conftest import Harness, utc
from tests.integration.test_webhooks import sold

STATUSES = ["planned", "sending", "cancelled", "sent", "delivered", "skipped", "failed",
            "unknown", "bounced"]  # fmt: skip
PRICES = Prices(email=Decimal("0.01"), sms_segment=Decimal("0.075"), attribution_days=30)
START = datetime(2026, 1, 1, tzinfo=UTC)


def text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def random_log(path: Path, seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """Messages of one journey (and some of another), deferrals and purchases."""
    rng = random.Random(seed)
    messages, decisions, purchases = [], [], []
    for mid in range(1, 401):
        customer = f"c{rng.randrange(40)}"
        status = rng.choice(STATUSES)
        due = START + timedelta(hours=rng.randrange(24 * 60), microseconds=rng.randrange(10**6))
        sent = due + timedelta(minutes=rng.randrange(90)) if rng.random() < 0.8 else None
        channel, step = rng.choice(["email", "sms"]), rng.choice(["a", "b"])
        # One variant of a step per customer, as campaigns.experiments draws them.
        variant = "xy"[(int(customer[1:]) + (step == "b")) % 2] if step == "b" or seed % 2 else None
        messages.append({
            "id": mid, "customer_id": customer, "step": step,
            "journey_id": "offer" if rng.random() < 0.9 else "other", "channel": channel,
            "category": "marketing" if rng.random() < 0.9 else "transactional",
            "status": status, "due_at": due, "sent_at": sent,
            "reason": "holdout" if rng.random() < 0.15 else rng.choice([None, "quiet_hours"]),
            "variant": variant,
            "segments": rng.choice([None, 1, 2, 3]) if channel == "sms" else None,
        })  # fmt: skip
        for _ in range(rng.choice([0, 0, 0, 1, 2])):  # deferred from before its due time now
            before = due - timedelta(hours=rng.randrange(1, 72))
            decisions.append({"message_id": mid, "action": "deferred", "due_before": before})
        if rng.random() < 0.2:
            decisions.append({"message_id": mid, "action": "sent", "due_before": None})
    for n in range(120):
        at = START + timedelta(hours=rng.randrange(24 * 100), microseconds=rng.randrange(10**6))
        purchases.append({"id": f"p{n}", "customer_id": f"c{rng.randrange(40)}", "at": at,
                          "total": f"{rng.randrange(1, 500)}.{rng.randrange(100):02d}",
                          "returned": rng.random() < 0.1})  # fmt: skip
    db = sqlite3.connect(path)  # foreign keys off: messages without their enrolments
    with db:
        for m in messages:
            details = json.dumps({"segments": m["segments"]} if m["segments"] else {})
            db.execute(
                "INSERT INTO messages (id, enrollment_id, customer_id, journey_id,"
                " journey_version, step, occurrence, channel, category, template, priority,"
                " status, reason, due_at, sent_at, attempts, details, variant, segments)"
                " VALUES (?, ?, ?, ?, 1, ?, 1, ?, ?, 't', 0, ?, ?, ?, ?, 0, ?, ?, ?)",
                (m["id"], f"e{m['id']}", m["customer_id"], m["journey_id"], m["step"],
                 m["channel"], m["category"], m["status"], m["reason"], text(m["due_at"]),
                 text(m["sent_at"]) if m["sent_at"] else None, details, m["variant"],
                 m["segments"]),
            )  # fmt: skip
        for d in decisions:
            db.execute(
                "INSERT INTO message_decisions (message_id, at, action, due_before)"
                " VALUES (?, ?, ?, ?)",
                (d["message_id"], text(START), d["action"],
                 text(d["due_before"]) if d["due_before"] else None),
            )  # fmt: skip
        for p in purchases:
            db.execute(
                "INSERT INTO purchases (id, customer_id, purchased_at, total, currency,"
                " returned_at) VALUES (?, ?, ?, ?, 'EUR', ?)",
                (p["id"], p["customer_id"], text(p["at"]), p["total"],
                 text(p["at"]) if p["returned"] else None),
            )  # fmt: skip
    db.close()
    return messages, decisions, purchases


def by_the_rules(messages, decisions, purchases) -> dict[str, tuple]:
    """Each exposed customer of "offer", message by message, as the module's rules say."""
    deferred: dict[int, list[datetime]] = {}
    for d in decisions:
        if d["action"] == "deferred":
            deferred.setdefault(d["message_id"], []).append(d["due_before"])
    found: dict[str, dict] = {}
    for m in messages:
        if m["journey_id"] != "offer" or m["category"] != "marketing":
            continue
        if m["status"] in ("planned", "sending", "cancelled") and m["id"] not in deferred:
            continue
        c = found.setdefault(m["customer_id"], {"control": False, "start": None, "end": None,
                                                "cost": Decimal(0), "variants": set()})  # fmt: skip
        first = min(deferred[m["id"]]) if m["id"] in deferred else m["due_at"]
        last = m["sent_at"] or m["due_at"]
        c["control"] = c["control"] or m["reason"] == "holdout"
        c["start"] = first if c["start"] is None else min(c["start"], first)
        c["end"] = last if c["end"] is None else max(c["end"], last)
        if m["sent_at"] is not None and m["status"] in SENT_STATUSES:
            if m["channel"] == "sms":
                c["cost"] += (m["segments"] or 1) * PRICES.sms_segment
            else:
                c["cost"] += PRICES.email
            if m["variant"] is not None:
                c["variants"].add((m["step"], m["variant"]))
    revenue: dict[str, Decimal] = {}
    for p in purchases:
        c = found.get(p["customer_id"])
        span = timedelta(days=PRICES.attribution_days)
        if c and not p["returned"] and c["start"] < p["at"] <= c["end"] + span:
            revenue[p["customer_id"]] = revenue.get(p["customer_id"], Decimal(0)) + Decimal(
                p["total"]
            )
    return {
        cid: (
            c["control"],
            c["start"],
            c["end"],
            c["cost"],
            c["variants"],
            cid in revenue,
            revenue.get(cid, Decimal(0)),
        )  # fmt: skip
        for cid, c in found.items()
    }


@pytest.mark.parametrize("seed", range(6))
def test_groups_and_windows_follow_the_rules_message_by_message(tmp_path: Path, seed: int):
    path = tmp_path / "log.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine)
    expected = by_the_rules(*random_log(path, seed))
    journey = Journey.model_validate({
        "id": "offer", "trigger": {"event": "purchase"}, "holdout": "20%",
        "steps": [{"id": "a", "wait": "30d",
                   "send": {"channel": "email", "template": "loyalty_offer"}}],
    })  # fmt: skip
    with reading(engine) as conn:
        customers = holdouts._customers(conn, "offer", PRICES)
        holdouts._conversions(conn, journey, customers, timedelta(days=PRICES.attribution_days))
    engine.dispose()
    got = {
        cid: (
            c.control,
            holdouts._moment(c.start),
            holdouts._moment(c.end),
            c.cost,
            c.variants,
            c.converted,
            c.revenue,
        )  # fmt: skip
        for cid, c in customers.items()
    }
    assert got == expected
    # Found in the order one pass over the index finds them: by first step and channel.
    firsts = [c.first for c in customers.values()]
    assert firsts == sorted(firsts)


def test_the_migration_fills_the_segments_of_sent_sms_from_their_details(tmp_path: Path):
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.connect() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0017")
        conn.commit()
    db = sqlite3.connect(path)
    with db:
        for mid, channel, details in [(1, "sms", {"segments": 3}), (2, "sms", {}),
                                      (3, "email", {"html_bytes": 900})]:  # fmt: skip
            db.execute(
                "INSERT INTO messages (id, enrollment_id, customer_id, journey_id,"
                " journey_version, step, occurrence, channel, category, template, priority,"
                " status, due_at, sent_at, attempts, details) VALUES (?, ?, 'c1', 'offer', 1,"
                " 's', 1, ?, 'marketing', 't', 0, 'sent', ?, ?, 0, ?)",
                (mid, f"e{mid}", channel, text(START), text(START), json.dumps(details)),
            )
    db.close()
    with engine.connect() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
    with reading(engine) as conn:
        segments = dict(conn.exec_driver_sql("SELECT id, segments FROM messages").all())
        [ret] = journey_returns(conn, PRICES)
    engine.dispose()
    assert segments == {1: 3, 2: None, 3: None}
    assert (ret.emails, ret.sms_segments) == (1, 4)  # 3, and one where none were recorded


def test_the_dispatcher_records_a_sent_sms_segments_in_their_column(harness: Harness):
    sold(harness)  # a three-month warranty: the SMS goes out 14 days before it ends
    harness.simulate(utc("2026-04-01T00:00:00"))
    (message,) = harness.messages(journey_id="extended_warranty", channel="sms")
    assert message.status == "sent"
    assert message.segments == message.details["segments"] >= 1

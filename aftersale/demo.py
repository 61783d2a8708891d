"""`aftersale demo`: a realistic German shop, a year of journeys, and what happened."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from aftersale.app import Project
from aftersale.sendlog import summary
from aftersale.terminal import safe
from campaigns.experiments import held_out
from campaigns.importing import import_customers, import_events
from campaigns.models import Customer, Message, MessageDecision, reading
from scheduler.simulation import SimulationDispatcher, simulate

FIRST_NAMES = [
    "Anna",
    "Lena",
    "Marie",
    "Sophie",
    "Laura",
    "Julia",
    "Lea",
    "Hannah",
    "Sarah",
    "Katharina",
    "Petra",
    "Sabine",
    "Monika",
    "Ursula",
    "Claudia",
    "Andrea",
    "Birgit",
    "Jutta",
    "Heike",
    "Gabriele",
    "Lukas",
    "Jonas",
    "Leon",
    "Finn",
    "Paul",
    "Felix",
    "Maximilian",
    "Thomas",
    "Michael",
    "Andreas",
    "Stefan",
    "Frank",
    "Jürgen",
    "Klaus",
    "Peter",
    "Wolfgang",
    "Uwe",
    "Dieter",
    "Markus",
    "Jörg",
]
LAST_NAMES = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Meier",
    "Lehmann",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Mayer",
    "Huber",
    "Kaiser",
]
CITIES = (
    ("Berlin", "10115", "+4930"), ("Hamburg", "20095", "+4940"), ("München", "80331", "+4989"),
    ("Köln", "50667", "+49221"), ("Frankfurt am Main", "60311", "+4969"), ("Leipzig", "04109", "+49341"),
    ("Stuttgart", "70173", "+49711"), ("Dresden", "01067", "+49351"),
)  # fmt: skip
ZONES = ["Europe/Berlin"] * 17 + [
    "Europe/Vienna",
    "Europe/London",
    "America/New_York",
    "Asia/Tokyo",
]
PRODUCTS = (
    # sku, name, category, price, warranty months, inspection interval days
    ("WM-7", "Waschmaschine WM 7", "appliance", "549.00", 24, 90),
    ("TR-8", "Wärmepumpentrockner TR 8", "appliance", "699.00", 24, 120),
    ("GS-6", "Geschirrspüler GS 6", "appliance", "479.00", 12, 90),
    ("KS-3", "Kühl-Gefrierkombination KS 3", "appliance", "899.00", 24, 180),
    ("KM-2", "Kaffeevollautomat KM 2", "appliance", "399.00", 12, 60),
    ("TV-55", "OLED-Fernseher 55\"", "electronics", "1299.00", 24, None),
    ("NB-14", "Notebook 14\"", "electronics", "899.00", 12, None),
    ("SB-2", "Soundbar SB 2", "electronics", "249.00", 12, None),
    ("SR-1", "Saugroboter SR 1", "appliance", "349.00", 12, 90),
)  # fmt: skip


@dataclass
class DemoShop:
    customers: Path
    events: Path
    start: datetime
    until: datetime


def generate_shop(
    directory: Path,
    *,
    customers: int,
    months: int,
    seed: int,
    held_out: Callable[[str, str], bool] | None = None,
) -> DemoShop:
    """Write customers.csv and events.jsonl for a plausible German electronics shop.

    ``held_out(journey, customer)``: who the demo's holdouts keep out; the offers then work
    (:func:`_plant_effects`), so the report has an effect to find.
    """
    rng = random.Random(seed)
    start = datetime(2025, 11, 3, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    until = start + timedelta(days=round(months * 30.44))
    people = []
    for n in range(1, customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, postal, prefix = rng.choice(CITIES)
        zone = rng.choice(ZONES)
        locale = (
            "en" if zone in ("Europe/London", "America/New_York") or rng.random() < 0.08 else "de"
        )
        has_phone = rng.random() < 0.7
        people.append(
            {
                "id": f"c{n:04d}",
                "email": f"{_ascii(first)}.{_ascii(last)}{n}@example.com".lower(),
                "phone": f"+49151{rng.randrange(10_000_000, 99_999_999)}" if has_phone else "",
                "first_name": first,
                "last_name": last,
                "locale": locale,
                "timezone": zone,
                "email_consent": "yes" if rng.random() < 0.85 else "no",
                "sms_consent": "yes" if has_phone and rng.random() < 0.55 else "no",
                "city": city,
                "postal_code": postal,
                "birth_year": rng.randrange(1945, 2004),
            }
        )
    customers_path = directory / "customers.csv"
    with customers_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(people[0]))
        writer.writeheader()
        writer.writerows(people)
    events = _events(rng, people, start, until)
    if held_out is not None:
        events = _plant_effects(random.Random(seed + 1), events, held_out)
    events_path = directory / "events.jsonl"
    with events_path.open("w", encoding="utf-8") as handle:
        for event in sorted(events, key=lambda e: e["at"]):
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
    return DemoShop(customers_path, events_path, start.astimezone(UTC), until.astimezone(UTC))


def _ascii(name: str) -> str:
    return name.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")


def _events(rng: random.Random, people: list[dict], start: datetime, until: datetime) -> list[dict]:
    events: list[dict[str, Any]] = []
    span = (until - start).total_seconds()
    counter = 0
    bought: list[tuple[str, datetime, str, list[dict[str, Any]]]] = []

    def add(kind: str, customer: str, at: datetime, **extra: Any) -> None:
        nonlocal counter
        counter += 1
        events.append({"id": f"ev{counter:06d}", "type": kind, "customer": customer,
                       "at": at.isoformat(timespec="seconds"), **extra})  # fmt: skip

    for person in people:
        cid = person["id"]
        purchases = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
        for p in range(purchases):
            # First purchases early in the year, repeat purchases spread over it.
            frac = rng.random() * (0.35 if p == 0 else 0.9)
            hour = rng.choice([8, 10, 11, 13, 15, 17, 18, 19, 21, 22])
            at = (start + timedelta(seconds=frac * span)).replace(
                hour=hour, minute=rng.randrange(60)
            )
            order_id = f"o{cid[1:]}-{p + 1}"
            chosen = rng.sample(PRODUCTS, k=rng.choice([1, 1, 1, 2]))
            items = [
                {"sku": sku, "name": name, "category": cat, "price": price, "quantity": 1,
                 "warranty_months": w, **({"inspection_interval_days": i} if i else {})}
                for sku, name, cat, price, w, i in chosen
            ]  # fmt: skip
            bought.append((cid, at, order_id, items))
            total = sum(float(i["price"]) for i in items)
            add("purchase", cid, at, order={"id": order_id, "total": f"{total:.2f}",
                                            "currency": "EUR", "items": items})  # fmt: skip
            if rng.random() < 0.04:
                add("return", cid, at + timedelta(days=rng.randrange(3, 14)), order=order_id)
            elif any(i["warranty_months"] == 12 for i in items) and rng.random() < 0.25:
                add(
                    "warranty_extended",
                    cid,
                    at + timedelta(days=rng.randrange(300, 340)),
                    order=order_id,
                )
        first = start + timedelta(seconds=rng.random() * span * 0.6)
        if rng.random() < 0.05:
            add(
                "unsubscribed", cid, first + timedelta(days=rng.randrange(30, 200)), channel="email"
            )
        if person["sms_consent"] == "yes" and rng.random() < 0.05:
            add("unsubscribed", cid, first + timedelta(days=rng.randrange(30, 200)), channel="sms")
    planted = random.Random(rng.random())
    _promotion(planted, people, until, add, bought)
    _complaints(planted, bought, until, add)
    return events


# Complaints name the order and item they concern. A steady few per order line, and one
# planted spike: a batch of coffee machines whose pump fails, sold in the last four weeks
# and complained about within days, for `aftersale alerts` to find.
SPIKE_SKU = "KM-2"
REASONS = ("undicht", "zu laut", "startet nicht", "Transportschaden", "Teil fehlt")
RATINGS = (1, 2, 3, 4, 5)
RATING_WEIGHTS = (1, 1, 2, 4, 5)


def _promotion(
    rng: random.Random, people: list[dict], until: datetime, add: Callable, bought: list
) -> None:
    """A price promotion sells the spiked coffee machine through the last four months."""
    sku, name, category, price, warranty, interval = next(p for p in PRODUCTS if p[0] == SPIKE_SKU)
    for n in range(120):
        cid = rng.choice(people)["id"]
        at = until - timedelta(days=rng.randrange(1, 120), hours=rng.randrange(0, 10))
        order_id = f"promo-{n + 1}"
        items = [{"sku": sku, "name": name, "category": category, "price": price, "quantity": 1,
                  "warranty_months": warranty, "inspection_interval_days": interval}]  # fmt: skip
        bought.append((cid, at, order_id, items))
        add("purchase", cid, at, order={"id": order_id, "total": price, "currency": "EUR",
                                        "items": items})  # fmt: skip


def _complaints(rng: random.Random, bought: list, until: datetime, add: Callable) -> None:
    for cid, at, order_id, items in bought:
        for line in items:
            opened = None
            recent = until - at < timedelta(days=28)
            if line["sku"] == SPIKE_SKU and recent and rng.random() < 0.7:
                opened = at + timedelta(days=rng.randrange(1, 3))
                reason = "Pumpe defekt"
            elif rng.random() < 0.06:
                opened = at + timedelta(days=rng.randrange(3, 45))
                reason = rng.choice(REASONS)
            if opened is None or opened >= until:
                continue
            subject = {"order": order_id, "sku": line["sku"], "reason": reason}
            add("complaint_opened", cid, opened, **subject)
            if rng.random() < 0.85:
                resolved_at = opened + timedelta(days=rng.randrange(2, 15))
                add("complaint_resolved", cid, resolved_at, order=order_id, sku=line["sku"])
                if rng.random() < 0.5:  # answered the follow-up's rating link
                    value = rng.choices(RATINGS, weights=RATING_WEIGHTS)[0]
                    add("satisfaction_rated", cid, resolved_at + timedelta(days=4), value=value)


# The demo's experiments: 10 % of customers held out of the loyalty and the warranty offer,
# and two subject lines for the loyalty offer (aftersale.holdouts reads the results).
LOYALTY_EXPERIMENT = """\
holdout: 10%
offer_cost: value * 0.10          # the coupon: 10 % off the order it is redeemed on
"""
LOYALTY_VARIANTS = """\
    variants:
      - id: thanks
        subject: {de: "Ein Dankeschön für Sie, {{ customer.first_name }}",
                  en: "A thank-you for you, {{ customer.first_name }}"}
      - id: coupon
        subject: {de: "{{ customer.first_name }}, 10 % auf Ihren nächsten Einkauf",
                  en: "{{ customer.first_name }}, 10% off your next purchase"}
"""
WARRANTY_EXPERIMENT = """\
holdout: 10%
goal: warranty_extended           # its value: the extension's price in the event
"""
WARRANTY_PRICE = "79.00"


def add_experiments(directory: Path) -> None:
    """Give the demo project's loyalty and warranty offers a holdout, and a subject test."""
    journeys = directory / "journeys"
    loyalty = (journeys / "loyalty_offer.yaml").read_text(encoding="utf-8")
    loyalty = loyalty.replace("steps:\n", LOYALTY_EXPERIMENT + "steps:\n", 1)
    (journeys / "loyalty_offer.yaml").write_text(loyalty.rstrip() + "\n" + LOYALTY_VARIANTS)
    warranty = (journeys / "extended_warranty.yaml").read_text(encoding="utf-8")
    warranty = warranty.replace("steps:\n", WARRANTY_EXPERIMENT + "steps:\n", 1)
    (journeys / "extended_warranty.yaml").write_text(warranty, encoding="utf-8")
    settings = directory / "aftersale.toml"
    text = settings.read_text(encoding="utf-8")
    if "[stats]" not in text:  # a quarter of revenue is profit: the report's margin
        settings.write_text(text.rstrip() + "\n\n[stats]\nmargin = 0.25\n", encoding="utf-8")


def _seeded_key(settings: Path, seed: int) -> str:
    """A ``secret_key`` that follows from the seed, so that one seed gives one demo: who is
    held out, and so every figure and example the summary prints. Only the demo does this;
    ``init`` writes a random key."""
    key = hashlib.sha256(f"aftersale demo {seed}".encode()).hexdigest()
    text = settings.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^secret_key = ".*"$', f'secret_key = "{key}"', text, count=1)
    settings.write_text(text, encoding="utf-8")
    return key


def _plant_effects(
    rng: random.Random, events: list[dict], held_out: Callable[[str, str], bool]
) -> list[dict]:
    """The offers work: 9 in 100 offered customers buy again within six weeks of a purchase,
    4 in 100 of those held out; held-out customers extend a warranty half as often."""
    planted: list[dict[str, Any]] = []
    for event in events:
        cid = event["customer"]
        if event["type"] == "warranty_extended":
            if held_out("extended_warranty", cid) and rng.random() < 0.5:
                continue
            event = {**event, "value": WARRANTY_PRICE}
        planted.append(event)
        if event["type"] != "purchase":
            continue
        if rng.random() < (0.04 if held_out("loyalty_offer", cid) else 0.09):
            at = datetime.fromisoformat(event["at"]) + timedelta(days=rng.randrange(31, 44))
            sku, name, cat, price, w, i = rng.choice(PRODUCTS)
            item = {"sku": sku, "name": name, "category": cat, "price": price, "quantity": 1,
                    "warranty_months": w, **({"inspection_interval_days": i} if i else {})}  # fmt: skip
            order = {"id": f"{event['order']['id']}-again", "total": price, "currency": "EUR",
                     "items": [item]}  # fmt: skip
            planted.append({"id": f"{event['id']}-again", "type": "purchase", "customer": cid,
                            "at": at.isoformat(timespec="seconds"), "order": order})  # fmt: skip
    return planted


def run_demo(
    console: Console,
    directory: Path | None,
    *,
    customers: int,
    months: int,
    seed: int,
    settings: dict[str, Any] | None = None,
):
    """Create the project, import the shop, simulate, print the summary.

    ``settings`` override the project's (``--providers fake`` points them at fake servers).
    """
    from aftersale.cli import write_project
    from aftersale.legal import SAMPLE_SHOP

    began = time.perf_counter()
    directory = directory or Path(tempfile.mkdtemp(prefix="aftersale-demo-"))
    if (directory / "aftersale.db").exists():
        console.print(f"[yellow]{directory} already holds a demo; starting it afresh[/]")
        for name in ("aftersale.db", "aftersale.db-wal", "aftersale.db-shm"):
            (directory / name).unlink(missing_ok=True)
    write_project(directory, shop=SAMPLE_SHOP)
    add_experiments(directory)
    secret = _seeded_key(directory / "aftersale.toml", seed)
    shop = generate_shop(
        directory, customers=customers, months=months, seed=seed,
        held_out=lambda journey, customer: held_out(secret, journey, customer, 0.1),
    )  # fmt: skip
    console.print(f"[bold]aftersale demo[/] in {directory}")
    console.print(
        f"  generated {customers} customers and their purchases: {shop.customers.name}, {shop.events.name}"
    )
    project = Project.open(directory, **(settings or {}))
    imported_c = import_customers(project.db, shop.customers, region="DE")
    imported_e = import_events(project.db, shop.events)
    console.print(f"  imported {imported_c.imported} customers and {imported_e.imported} events")
    clock = project.simulated_clock()
    dispatcher = project.dispatcher(clock, kind=SimulationDispatcher)
    with console.status("simulating…") as status:
        stats = simulate(
            dispatcher, clock, shop.until,
            on_step=lambda now, _s: status.update(f"simulating… {now:%Y-%m-%d}"),
        )  # fmt: skip
    dispatcher.close()
    project.save_simulated_now(clock.now())
    console.print(
        f"  simulated {shop.start:%Y-%m-%d} → {shop.until:%Y-%m-%d} "
        f"in {time.perf_counter() - began:.1f}s:\n"
        f"    {stats.sent} sent, {stats.deferred} deferrals, {stats.skipped} skipped\n"
    )
    print_summary(console, project)
    print_listening(console, project)
    print_experiments(console, project, directory)
    _next_steps(console, project, directory)
    project.close()


def print_summary(console: Console, project: Project) -> None:
    with reading(project.db) as conn:
        facts = summary(conn)
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for journey, channel, status, count in facts["by_journey"]:
        rows.setdefault((journey, channel), {})[status] = count
    order = ["sent", "delivered", "skipped", "cancelled", "failed", "bounced", "unknown", "planned"]
    present = {status for counts in rows.values() for status in counts}
    statuses = [s for s in order if s in present]
    table = Table(title="Messages by journey, channel and status")
    table.add_column("journey", no_wrap=True)
    table.add_column("channel")
    for status in statuses:
        table.add_column("planned (later)" if status == "planned" else status, justify="right")
    for (journey, channel), counts in rows.items():
        table.add_row(safe(journey), safe(channel), *(str(counts.get(s, 0)) for s in statuses))
    console.print(table)
    reasons = Table("reason", "messages", title="Why messages were not sent")
    for reason, count in facts["skip_reasons"]:
        reasons.add_row(safe(reason or "-"), str(count))
    deferrals = Table("reason", "deferrals", title="Why messages were deferred")
    for reason, count in facts["deferrals"]:
        deferrals.add_row(safe(reason or "-"), str(count))
    console.print(reasons)
    console.print(deferrals)
    console.print(
        f"bundled: {facts['bundled']} per-item messages went out inside {facts['bundles']} "
        "others that name every item, instead of as twins"
    )
    console.print(f"customers reached: {facts['reached']} of {facts['customers']}\n")


def print_listening(console: Console, project: Project) -> None:
    """Complaint alerts and satisfaction after complaints, as the console shows them."""
    from aftersale.alerts import describe, evaluate, needs_attention

    report = evaluate(project, mail=False)
    console.print("[bold]Listening to customers[/]")
    if report.alerts:
        for alert in report.alerts:
            console.print(f"  alert: {describe(alert)}", markup=False)
    else:
        console.print("  no complaint alerts")
    c = Customer.__table__.c
    with reading(project.db) as conn:
        ratings = dict(
            conn.execute(
                sa.select(c.satisfaction, sa.func.count())
                .where(c.satisfaction.is_not(None))
                .group_by(c.satisfaction)
            ).all()
        )
    total = sum(ratings.values())
    if total:
        mean = sum(v * n for v, n in ratings.items()) / total
        spread = ", ".join(f"{v}: {ratings.get(v, 0)}" for v in RATINGS)
        console.print(
            f"  satisfaction after a complaint: {total} ratings, mean {mean:.1f} ({spread})"
        )
    console.print(f"  needs attention (rated 1–2): {len(needs_attention(project))} customers\n")


def print_experiments(console: Console, project: Project, directory: Path) -> None:
    """One line per experiment, and where the whole report is."""
    from aftersale.admin.terminal import experiments, project_prices

    with reading(project.db) as conn:
        reports = [r for r in experiments(conn, project_prices(project)) if r.holdout]
        variants = [r for r in experiments(conn, project_prices(project)) if r.variants]
    console.print("[bold]Experiments[/] (holdouts: 10 % of customers get none of the offer)")
    for r in reports:
        h, u = r.holdout, r.holdout.uplift_rate
        console.print(
            f"  {r.journey_id}: {h.treated.customers} offered, {h.control.customers} held out; "
            f"uplift {u.estimate * 100:+.1f} points [{u.low * 100:+.1f}, {u.high * 100:+.1f}] "
            f"in {r.goal} — {h.verdict}"
        )
    for r in variants:
        best = max(r.variants, key=lambda sv: sv[1].p_best or 0)[1]
        console.print(f"  {r.journey_id} subject lines: {', '.join(v.id for _, v in r.variants)}"
                      f"; P({best.id} beats the first) = {(best.p_best or 0) * 100:.0f} %")  # fmt: skip
    console.print(
        f"  the report, with intervals and costs: aftersale -p {directory} stats "
        "--journey loyalty_offer\n"
    )


def _next_steps(console: Console, project: Project, directory: Path) -> None:
    m, d = Message.__table__.c, MessageDecision.__table__.c
    with reading(project.db) as conn:
        # A customer whose story shows the policy at work: a message held back by a cap.
        row = conn.execute(
            sa.select(m.customer_id, m.journey_id)
            .join_from(Message.__table__, MessageDecision.__table__, m.id == d.message_id)
            .where(d.reason.like("frequency_cap%"))
            .order_by(m.customer_id)
            .limit(1)
        ).first()
    example, journey = row if row is not None else ("c0001", "thank_you")
    console.print(f"outbox (.eml and sms.jsonl): {project.settings.outbox_dir}")
    console.print(f"database: {project.settings.effective_database_url}\n")
    console.print("See more:")
    console.print(
        f"  aftersale -p {directory} customer {example}      # one customer's whole story"
    )
    console.print(f"  aftersale -p {directory} why {example} {journey}   # enrolled or not, why")
    console.print(f"  aftersale -p {directory} log --reason frequency_cap")
    console.print(f"  aftersale -p {directory} log --reason bundled")
    console.print(f"  aftersale -p {directory} log --status skipped --journey loyalty_offer")
    console.print(f"  aftersale -p {directory} log export --format csv --out log.csv")

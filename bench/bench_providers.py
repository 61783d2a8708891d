"""Dispatching through the official SendGrid client to the loopback fake, against the bare client.

Run: ``python -m bench bench_providers``. The dispatcher's rate includes everything a real
send costs here (claim, policy, render, HTTP, record in SQLite); the bare rate is the same
client sending the same number of requests with the same concurrency and nothing else.
``ratio`` is dispatcher / bare (target ≥ 0.7): how much of the provider path's throughput
the scheduling machinery keeps. ``fake_capacity_per_s`` is what the fake serves to one
plain keep-alive connection: it must stay well above both rates, or the fake is what is
measured.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aftersale.app import Project
from aftersale.cli import write_project
from aftersale.providers import FakeProviders
from campaigns.importing import import_customers, insert_events
from campaigns.models import Message
from channels import OutgoingMessage
from channels.registry import build_channel
from channels.sendgrid import SendGridChannel
from scheduler.clock import SimulatedClock

TARGETS = {"ratio": 0.7}
WORKERS = 8
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TOML = """
secret_key = "bench-secret"
[dispatch]
workers = {workers}
batch_size = 500
[policy]
quiet_hours = ""
quiet_days = []
public_holidays = ""
caps = []
"""
JOURNEY = """
id: bench_thanks
name: Benchmark thank-you
trigger:
  event: purchase
steps:
  - id: thanks
    wait: 1h
    send: {channel: email, template: thank_you, category: transactional}
"""


def _project(directory: Path, fakes: FakeProviders, n: int) -> Project:
    write_project(directory)
    (directory / "aftersale.toml").write_text(TOML.format(workers=WORKERS), encoding="utf-8")
    for path in (directory / "journeys").glob("*.yaml"):
        path.unlink()
    (directory / "journeys" / "bench.yaml").write_text(JOURNEY, encoding="utf-8")
    project = Project.open(directory, **fakes.settings())
    csv = directory / "customers.csv"
    lines = ["id,email,first_name,email_consent"]
    lines += [f"c{i},kunde{i}@example.org,Kim,yes" for i in range(n)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_customers(project.db, csv)
    insert_events(project.db, [_purchase(i) for i in range(n)])
    return project


def _purchase(i: int) -> dict[str, Any]:
    item = {"sku": "WM-7", "name": "Waschmaschine WM 7", "price": "549.00", "quantity": 1}
    order = {"id": f"o{i}", "total": "549.00", "currency": "EUR", "items": [item]}
    return {"id": f"e{i}", "type": "purchase", "customer_id": f"c{i}", "at": START,
            "payload": {"order": order}, "applied": False, "source": "bench"}  # fmt: skip


def _dispatch(project: Project) -> tuple[float, int]:
    """Seconds for one tick that sends every planned message, and how many it sent."""
    clock = SimulatedClock(START)
    dispatcher = project.dispatcher(clock)
    try:
        dispatcher.tick()  # applies the purchases and plans the messages (due in an hour)
        clock.advance_to(START + timedelta(hours=1, minutes=1))
        began = time.perf_counter()
        stats = dispatcher.tick()
        return time.perf_counter() - began, stats.sent
    finally:
        dispatcher.close()


def _bare(project: Project, fakes: FakeProviders, n: int) -> float:
    """Seconds for the same client to send ``n`` requests with the same concurrency."""
    config = {**project.channel_config(), "sendgrid_api_host": fakes.sendgrid.url}
    channel = build_channel("email", "sendgrid", config, outbox_dir=project.settings.outbox_dir)
    m = Message.__table__
    with project.db.connect() as conn:
        mid = conn.execute(sa.select(sa.func.min(m.c.id))).scalar_one()
    sample = fakes.sendgrid.requests[0]
    html = next(c["value"] for c in sample["content"] if c["type"] == "text/html")
    text = sample["content"][0]["value"]
    messages = [
        OutgoingMessage(
            message_id=str(mid + i),
            kind="email",
            to=f"kunde{i}@example.org",
            subject=sample["subject"],
            body_html=html,
            body_text=text,
            journey="bench_thanks",
            step="thanks",
        )  # fmt: skip
        for i in range(n)
    ]
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(channel.send, messages))
    elapsed = time.perf_counter() - began
    channel.close()
    return elapsed


def _fake_capacity(fakes: FakeProviders, n: int) -> float:
    """Requests per second the fake SendGrid serves on one kept-alive connection."""
    host, port = fakes.sendgrid.url.removeprefix("http://").split(":")
    message = OutgoingMessage("cap", "email", "a@example.org", "Hallo", "Danke", "<p>Danke</p>")
    body = json.dumps(SendGridChannel(api_key="x", sender="s@example.org").payload(message))
    headers = {
        "Authorization": f"Bearer {fakes.sendgrid.api_key}",
        "Content-Type": "application/json",
    }
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    began = time.perf_counter()
    for _ in range(n):
        conn.request("POST", "/v3/mail/send", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"the fake answered {response.status}")
    elapsed = time.perf_counter() - began
    conn.close()
    return n / elapsed


def run(quick: bool = False) -> dict[str, Any]:
    """Send N e-mails (2,000; quick: 300) both ways and return both rates and their ratio."""
    n = 300 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="bench-providers-") as tmp, FakeProviders() as fakes:
        project = _project(Path(tmp), fakes, n)
        try:
            dispatch_s, sent = _dispatch(project)
            if sent != n:
                raise RuntimeError(f"the dispatcher sent {sent} of {n} messages")
            bare_s = _bare(project, fakes, n)
            capacity = _fake_capacity(fakes, n)
        finally:
            project.close()
    figures = {
        "messages": n,
        "workers": WORKERS,
        "dispatcher_per_s": round(n / dispatch_s, 1),
        "bare_client_per_s": round(n / bare_s, 1),
        "ratio": round(bare_s / dispatch_s, 3),
        "fake_capacity_per_s": round(capacity, 1),
    }
    print(figures)
    return figures


if __name__ == "__main__":
    run()

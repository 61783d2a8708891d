"""Shared fixtures: projects on SQLite and PostgreSQL, customers and events as in the contract."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aftersale.app import Project
from aftersale.cli import write_project
from campaigns.importing import import_customers, import_events
from channels.memory import InMemoryChannel
from scheduler.clock import SimulatedClock
from scheduler.simulation import SimulationDispatcher, simulate

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "AFTERSALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

CUSTOMER_HEADER = "id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent"


def postgres_available() -> str | None:
    """None when the local PostgreSQL answers, else the reason it does not."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {type(exc).__name__}"


def require_postgres() -> None:
    reason = postgres_available()
    if reason:
        if CI:
            pytest.fail(f"CI=true makes PostgreSQL tests mandatory, but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Creates one database for the session on the local server and drops it afterwards."""
    require_postgres()
    name = f"aftersale_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One parametrised fixture: every test that takes it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aftersale.db'}"
    url = request.getfixturevalue("postgres_server")
    _reset_postgres(url)
    return url


POLICY_TOML = """
secret_key = "test-secret-key"
public_url = "https://shop.example/after"
[policy]
default_timezone = "Europe/Berlin"
quiet_hours = "20:00-09:00"
quiet_days = ["sun"]
public_holidays = "DE"
[[policy.caps]]
channel = "email"
max = 2
per = "7d"
[[policy.caps]]
channel = "any"
max = 3
per = "14d"
"""


@dataclass
class Harness:
    """A project on a simulated clock with in-memory channels: what most tests drive."""

    project: Project
    email: InMemoryChannel
    sms: InMemoryChannel
    directory: Path

    def customers(self, rows: list[dict[str, Any]]) -> Any:
        path = self.directory / f"customers-{uuid.uuid4().hex[:6]}.csv"
        columns = CUSTOMER_HEADER.split(",")
        extra = sorted({k for r in rows for k in r} - set(columns))
        lines = [",".join(columns + extra)]
        for row in rows:
            base = {"locale": "de", "email_consent": "yes", "sms_consent": "no", **row}
            lines.append(",".join(str(base.get(c, "")) for c in columns + extra))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return import_customers(self.project.db, path)

    def events(self, events: list[dict[str, Any]]) -> Any:
        path = self.directory / f"events-{uuid.uuid4().hex[:6]}.jsonl"
        path.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
        return import_events(self.project.db, path)

    def simulate(
        self, until: datetime, start: datetime | None = None, kind: type = SimulationDispatcher
    ) -> Any:
        stored = self.project.simulated_now()
        clock = SimulatedClock(start or stored)
        dispatcher = self.project.dispatcher(clock, kind=kind)
        try:
            stats = simulate(dispatcher, clock, until)
        finally:
            dispatcher.close()
        self.project.save_simulated_now(clock.now())
        return stats

    def messages(self, **where: Any) -> list[Any]:
        from campaigns.models import Message

        t = Message.__table__
        query = sa.select(t).order_by(t.c.due_at, t.c.id)
        for key, value in where.items():
            query = query.where(t.c[key] == value)
        with self.project.db.connect() as conn:
            return list(conn.execute(query))


@pytest.fixture
def make_harness(tmp_path: Path) -> Callable[..., Harness]:
    counter = itertools.count()

    def make(
        *,
        database_url: str | None = None,
        toml: str = POLICY_TOML,
        journeys: dict[str, str] | None = None,
        builtin_journeys: bool = True,
    ) -> Harness:
        directory = tmp_path / f"project{next(counter)}"
        write_project(directory)
        (directory / "aftersale.toml").write_text(toml, encoding="utf-8")
        if not builtin_journeys:
            shutil.rmtree(directory / "journeys")
            (directory / "journeys").mkdir()
        for name, text in (journeys or {}).items():
            (directory / "journeys" / name).write_text(text, encoding="utf-8")
        email, sms = InMemoryChannel("email"), InMemoryChannel("sms")
        overrides = {"database_url": database_url} if database_url else {}
        project = Project.open(directory, **overrides)
        project.channel_overrides = {"email": email, "sms": sms}
        return Harness(project, email, sms, directory)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness], database_url: str) -> Iterator[Harness]:
    h = make_harness(database_url=database_url)
    yield h
    h.project.close()


@pytest.fixture
def sqlite_harness(make_harness: Callable[..., Harness]) -> Iterator[Harness]:
    h = make_harness()
    yield h
    h.project.close()


def purchase(
    event_id: str,
    customer: str,
    at: str,
    order: str,
    *items: dict[str, Any],
    total: str = "499.00",
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "purchase",
        "customer": customer,
        "at": at,
        "order": {"id": order, "total": total, "currency": "EUR", "items": list(items)},
    }


def item(sku: str = "WM-1", **fields: Any) -> dict[str, Any]:
    return {"sku": sku, "name": "Waschmaschine", "category": "appliance", "price": "499.00",
            "quantity": 1, **fields}  # fmt: skip


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

"""Data the admin console tests share: a small shop after two months of journeys."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from aftersale.accounts import create_user
from aftersale.web import create_app
from tests.conftest import Harness, item, purchase, utc

ADMIN = ("alice", "admin-password-1")
VIEWER = ("victor", "viewer-password-1")


def seed(h: Harness) -> None:
    """Three customers, four orders (one a follow-up), two months simulated, two users."""
    h.customers(
        [
            {"id": "c1", "email": "anna@example.com", "phone": "+4915112345678",
             "first_name": "Anna", "last_name": "Schmidt", "sms_consent": "yes"},
            {"id": "c2", "email": "bernd@example.com", "phone": "+4917099887766",
             "first_name": "Bernd", "last_name": "Meyer"},
            {"id": "c3", "email": "clara@example.com", "first_name": "Clara",
             "last_name": "Wolf", "email_consent": "no"},
        ]
    )  # fmt: skip
    h.events(
        [
            purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1",
                     item(warranty_months=24, inspection_interval_days=30)),
            purchase("e2", "c2", "2026-01-06T11:00:00+01:00", "o2", item()),
            purchase("e3", "c3", "2026-01-07T12:00:00+01:00", "o3", item()),
            purchase("e4", "c1", "2026-01-20T12:00:00+01:00", "o4", item("DR-1"),
                     total="120.00"),
        ]
    )  # fmt: skip
    h.simulate(utc("2026-03-01T00:00:00"))
    now = utc("2026-03-01T00:00:00")
    create_user(h.project.db, *ADMIN, "admin", now)
    create_user(h.project.db, *VIEWER, "viewer", now)


def client_for(h: Harness) -> TestClient:
    return TestClient(create_app(h.project), base_url="https://testserver", follow_redirects=False)


def csrf_of(client: TestClient) -> str:
    """The CSRF token of the client's session (the login page puts it in the form)."""
    page = client.get("/admin/login").text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def login(client: TestClient, user: tuple[str, str]) -> str:
    """Log ``client`` in as ``user``; returns the session's CSRF token."""
    token = csrf_of(client)
    response = client.post(
        "/admin/login",
        data={"username": user[0], "password": user[1], "csrf_token": token},
    )
    assert response.status_code == 303, response.text
    return client.get("/api/admin/me").json()["csrf_token"]


def post(client: TestClient, url: str, token: str | None, **data: Any) -> Any:
    if token is not None:
        data["csrf_token"] = token
    return client.post(url, data=data)

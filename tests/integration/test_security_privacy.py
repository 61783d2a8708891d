"""Viewers never see an address; Shopify guests get pseudonymous ids."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from campaigns.models import Customer, Event, Message, MessageDecision
from tests.conftest import Harness, utc
from tests.integration.admin_data import ADMIN, VIEWER, client_for, login, seed
from tests.integration.test_shop_ingestion import ORDER, post_order
from tests.integration.test_webhooks import WEB_TOML, Web

LEGACY = "shopify:guest:gina@example.com"
BOUNCE = "bounced: 550 5.1.1 <bernd@example.com>: no such user"
ADDRESSES = ("gina@example.com", "bernd@example.com", "anna@example.com", "+4915112345678")


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    h = sqlite_harness
    seed(h)
    now = utc("2026-02-01T00:00:00")
    with h.project.db.begin() as conn:
        conn.execute(Customer.__table__.insert().values(
            id=LEGACY, email="gina@example.com", first_name="Gina", attributes={},
            created_at=now, updated_at=now))  # fmt: skip
        conn.execute(Event.__table__.insert().values(
            id="g1", type="unsubscribed", customer_id=LEGACY, at=now, applied=True,
            payload={"channel": "sms", "note": "from +4915112345678"}, source="shopify"))  # fmt: skip
        messages = Message.__table__
        first = conn.execute(sa.select(sa.func.min(messages.c.id))).scalar()
        conn.execute(messages.update().where(messages.c.id == first)
                     .values(status="bounced", reason=BOUNCE))  # fmt: skip
        conn.execute(MessageDecision.__table__.insert().values(
            message_id=first, at=now, action="bounced", reason=BOUNCE,
            detail="to anna@example.com via +4915112345678"))  # fmt: skip
        conn.execute(messages.update().where(messages.c.id == first + 1)
                     .values(customer_id=LEGACY))  # fmt: skip
    return h


PAGES = ["/admin/", "/admin/log", "/admin/log.csv", "/admin/customers/c1",
         f"/admin/customers/{LEGACY}", "/api/admin/log", "/api/admin/customers/c1",
         f"/api/admin/customers/{LEGACY}", "/api/admin/dashboard", "/api/admin/journeys",
         "/api/admin/journeys/thank_you"]  # fmt: skip


@pytest.fixture
def viewer(shop: Harness) -> Iterator:
    with client_for(shop) as client:
        login(client, VIEWER)
        yield client


@pytest.mark.parametrize("url", PAGES)
def test_viewers_see_no_address_anywhere(viewer, url: str) -> None:
    response = viewer.get(url)
    assert response.status_code == 200, response.text
    text = re.sub(r"%40", "@", response.text)  # links to the customer page aside
    shown = re.sub(r'(href|placeholder)="[^"]*"', "", text)
    assert not [a for a in ADDRESSES if a in shown], url


def test_admins_see_the_addresses(shop: Harness) -> None:
    with client_for(shop) as client:
        login(client, ADMIN)
        assert "bernd@example.com" in client.get("/admin/log").text
        assert "+4915112345678" in client.get("/admin/customers/c1").text
        assert "gina@example.com" in client.get(f"/api/admin/customers/{LEGACY}").text


@pytest.fixture
def web(make_harness) -> Iterator[Web]:
    h = make_harness(toml=WEB_TOML)
    yield Web(h)
    h.project.close()


def test_a_guest_gets_a_pseudonym_and_keeps_the_address_in_the_contact_field(web: Web) -> None:
    guest = {**copy.deepcopy(ORDER), "customer": None, "email": "guest@example.com"}
    first = post_order(web, guest, "wh-2").json()["customer_id"]
    assert first.startswith("shopify:guest:") and "example" not in first
    assert "@" not in first
    assert web.customer(first).email == "guest@example.com"
    again = post_order(web, {**guest, "id": 820982911946154599}, "wh-3").json()["customer_id"]
    assert again == first
    other = {**guest, "id": 820982911946154600, "email": "other@example.com"}
    assert post_order(web, other, "wh-4").json()["customer_id"] != first

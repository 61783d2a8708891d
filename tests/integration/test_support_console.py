"""What support sees in the console: why a customer was not enrolled, search, times."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Harness
from tests.integration.admin_data import ADMIN, VIEWER, client_for, login, seed


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    seed(sqlite_harness)
    return sqlite_harness


@pytest.fixture
def client(shop: Harness) -> Iterator[TestClient]:
    with client_for(shop) as c:
        yield c


@pytest.mark.parametrize("who", [ADMIN, VIEWER])
def test_the_customer_page_says_why_a_journey_did_not_start(client: TestClient, who) -> None:
    login(client, who)
    page = client.get("/admin/customers/c3").text
    assert "Not enrolled" in page
    assert "no item of the order meets the item condition: item.warranty_months" in page
    data = client.get("/api/admin/customers/c3").json()
    assert {(n["journey"], n["reason"], n["expression"]) for n in data["not_enrolled"]} >= {
        ("extended_warranty", "item_condition", "item.warranty_months"),
        ("inspection_invitation", "item_condition", "item.inspection_interval_days"),
    }


def test_the_customer_page_shows_times_in_the_customers_zone_with_utc_on_hover(
    client: TestClient, shop: Harness
) -> None:
    login(client, VIEWER)
    page = client.get("/admin/customers/c1").text
    assert "times in Europe/Berlin (the project's zone), UTC on hover" in page
    sent = [m for m in shop.messages(customer_id="c1") if m.sent_at][0].sent_at
    local = sent.astimezone(ZoneInfo("Europe/Berlin"))
    assert f'title="{sent:%Y-%m-%d %H:%M} UTC">{local:%Y-%m-%d %H:%M}</time>' in page
    assert local.utcoffset() and f"{local:%H:%M}" != f"{sent:%H:%M}"

"""Bad requests get a 4xx that names what is wrong: never a 500, never other rows' data."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from aftersale.webhooks import shopify_hmac
from tests.conftest import Harness, item, purchase
from tests.integration.admin_data import ADMIN, client_for, login, post, seed
from tests.integration.test_shop_ingestion import AUTH, ORDER, post_order
from tests.integration.test_webhooks import SHOPIFY_SECRET, SIGNER, Web, sold

DEEP = ("[" * 100_000 + "]" * 100_000).encode()
AT = "2026-01-05T10:00:00+01:00"


@pytest.fixture
def web(web: Web) -> Web:
    """The web app with one customer, c1."""
    web.h.customers([{"id": "c1", "email": "anna@example.org"}])
    return web


def test_a_long_short_link_leads_to_the_shop(web: Web) -> None:
    for token in ("a" * 5000, "a" * 5000 + ".mac", "1" * 4000 + ".mac." + "9" * 5000):
        response = web.client.get(f"/l/{token}", follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == web.h.project.settings.shop_url


def test_deeply_nested_json_is_400_on_every_json_endpoint(web: Web) -> None:
    shopify = {"X-Shopify-Hmac-Sha256": shopify_hmac(SHOPIFY_SECRET, DEEP)}
    answers = [
        web.client.post("/api/events", content=DEEP, headers=AUTH),
        web.client.post("/webhooks/sendgrid", content=DEEP, headers=SIGNER.headers(DEEP)),
        web.client.post("/webhooks/shopify/orders-create", content=DEEP, headers=shopify),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert all("nested" in a.json()["error"] or "recursion" in a.json()["error"] for a in answers)


def test_nesting_within_an_event_fails_that_event(web: Web) -> None:
    deep = {"id": "e2", "type": "note", "customer": "c1", "at": AT, "x": [[[[[[[[[[]]]]]]]]]] * 1}
    deep["x"] = json.loads("[" * 40 + "]" * 40)
    lines = [json.dumps({"id": "e1", "type": "note", "customer": "c1", "at": AT}), json.dumps(deep)]
    response = web.client.post(
        "/api/events",
        content="\n".join(lines).encode(),
        headers={**AUTH, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 422
    assert [(r["status"], r.get("field")) for r in response.json()["results"]] == [
        ("accepted", None), ("error", "json")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"at": "0001-01-01T00:00:00+01:00"}, "at"),
        ({"at": "9999-12-31T23:00:00-01:00"}, "at"),
        ({"order": {"id": "o1", "items": [item(warranty_months=999999999)]}},
         "order.items[0].warranty_months"),
        ({"order": {"id": "o1", "items": [item(inspection_interval_days=99999999)]}},
         "order.items[0].inspection_interval_days"),
        ({"order": {"id": "o1", "items": [item(quantity=10**30)]}}, "order.items[0].quantity"),
        ({"order": {"id": "o1", "items": [item(name="a\x00b")]}}, "order.items[0].name"),
        ({"order": {"id": "o1", "items": [item(name="a\ud800b")]}}, "order.items[0].name"),
        ({"note": {"k\udc00": 1}}, "note.k\\udc00"),
        ({"customer": "c" * 129}, "customer"),
    ],
)  # fmt: skip
def test_an_event_out_of_bounds_is_422_with_its_field(web: Web, change: dict, field: str) -> None:
    other = {"id": "secret-other", "type": "note", "customer": "c1", "at": AT, "pin": "4711"}
    bad = {**purchase("e1", "c1", AT, "o1", item()), **change}
    body = json.dumps([other, bad])  # escaped as ASCII: a lone surrogate goes as \\ud800
    response = web.client.post(
        "/api/events", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    results = response.json()["results"]
    assert results[0]["status"] == "accepted"
    assert (results[1]["status"], results[1]["field"]) == ("error", field)
    assert "4711" not in json.dumps(results[1])  # nothing of the other event is echoed


def test_shopify_orders_out_of_bounds_are_422(web: Web) -> None:
    line = {**ORDER["line_items"][0], "quantity": 10**30}
    response = post_order(web, {**ORDER, "line_items": [line]}, "wh-q")
    assert (response.status_code, response.json()["field"]) == (422, "order.items[0].quantity")
    response = post_order(web, {**ORDER, "created_at": "0001-01-01T00:00:00+01:00"}, "wh-y")
    assert (response.status_code, response.json()["field"]) == (422, "at")
    person = {**ORDER["customer"], "first_name": "a\x00b"}
    response = post_order(web, {**ORDER, "customer": person}, "wh-n")
    assert (response.status_code, response.json()["field"]) == (422, "customer.first_name")
    person = {**ORDER["customer"], "last_name": "\udfff"}
    response = post_order(web, {**ORDER, "customer": person}, "wh-s")
    assert (response.status_code, response.json()["field"]) == (422, "customer.last_name")


@pytest.mark.parametrize(
    "odd",
    [{"sg_event_id": ["a", "b"]}, {"sg_message_id": 12345}, {"sg_event_id": {"x": 1}},
     {"aftersale_message_id": "9" * 40}, {"email": ["a@example.org"]}],
)  # fmt: skip
def test_sendgrid_events_with_odd_field_types_are_taken(web: Web, odd: dict) -> None:
    sold(web.h)
    event = {"email": "anna@example.org", "timestamp": 1767700000, "event": "delivered",
             "sg_event_id": "sg-1", "sg_message_id": "x.filter", **odd}  # fmt: skip
    response = web.sendgrid([event])
    assert response.status_code == 200, response.text


@pytest.fixture
def admin(sqlite_harness: Harness) -> Iterator[tuple[TestClient, str]]:
    seed(sqlite_harness)
    with client_for(sqlite_harness) as client:
        yield client, login(client, ADMIN)


def test_an_action_on_an_unknown_customer_is_404(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    for action, data in (("suppress", {"channel": "email"}), ("lift", {"channel": "email"}),
                         ("withdraw-consent", {"channel": "sms"}), ("erase", {"confirm": "NOPE"})):  # fmt: skip
        assert post(client, f"/admin/customers/NOPE/{action}", token, **data).status_code == 404


def test_paging_past_any_id_is_refused_not_a_crash(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    assert client.get(f"/api/admin/log?before_id={2**63}").status_code == 422
    # The page continues from "<time>|<id>": a position past any id starts again at the top.
    for position in (
        f"|{2**63}",
        f"2026-01-01T00:00:00+00:00|{2**63}",
        "9999-99-99|1",
        "|-1",
        "9999-12-31T23:59:59-23:59|5",
        "0001-01-01T00:00:00+23:59|5",
    ):
        page = client.get("/admin/log", params={"after": position})
        assert page.status_code == 200 and "table class" in page.text
    assert client.get("/admin/log", params={"after": "x" * 81}).status_code == 422


def test_a_message_past_any_id_is_not_found_not_a_crash(admin: tuple[TestClient, str]) -> None:
    """A number past the databases' integers made the driver raise: a 500."""
    client, _ = admin
    for number in (2**63, 10**30, 0, -1):
        for page in (f"/admin/messages/{number}", f"/admin/messages/{number}/sent.html"):
            response = client.get(page)
            assert response.status_code == 404, (page, response.status_code)
            assert f"no sent message #{number}" in response.text
    with client.app.state.project.db.connect() as conn:
        sent = conn.execute(sa.text("SELECT min(id) FROM messages WHERE status = 'sent'")).scalar()
    assert client.get(f"/admin/messages/{sent}").status_code == 200


def test_a_gdpr_export_of_an_id_with_line_breaks(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    h_db = client.app.state.project.db
    from sqlalchemy import insert

    from campaigns.models import Customer

    with h_db.begin() as conn:
        conn.execute(insert(Customer.__table__).values(
            id="c\r\nX-Evil: 1", email="x@example.org", attributes={}))  # fmt: skip
    response = client.get("/admin/customers/c%0D%0AX-Evil%3A%201/export.json")
    assert response.status_code == 200
    assert "X-Evil" not in response.headers
    disposition = response.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert "filename*=UTF-8''customer-c%0D%0AX-Evil%3A%201.json" in disposition

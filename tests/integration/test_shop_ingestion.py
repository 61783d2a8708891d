"""Events over HTTP: the events API and Shopify's orders/create webhook."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aftersale.webhooks import shopify_hmac
from campaigns.consent import unsubscribe_token
from tests.conftest import Harness, item, purchase, utc
from tests.integration.test_webhooks import API_TOKEN, SHOPIFY_SECRET, WEB_TOML, Web

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def web(make_harness: Callable[..., Harness]) -> Iterator[Web]:
    h = make_harness(toml=WEB_TOML)
    h.customers([{"id": "c1", "email": "anna@example.org"}])
    yield Web(h)
    h.project.close()


# ------------------------------------------------------------------------ events API


def test_one_object_is_accepted_then_a_duplicate(web: Web) -> None:
    event = purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item())
    first = web.client.post("/api/events", json=event, headers=AUTH)
    again = web.client.post("/api/events", json=event, headers=AUTH)

    assert first.status_code == 200
    assert first.json()["results"] == [{"index": 0, "status": "accepted", "id": "e1"}]
    assert again.json()["results"] == [{"index": 0, "status": "duplicate", "id": "e1"}]
    (row,) = web.snapshot()["events"]
    assert row[0] == "e1"


def test_an_array_reports_each_event(web: Web) -> None:
    events = [
        {"id": "e1", "type": "complaint_opened", "customer": "c1", "at": "2026-01-05T10:00:00Z"},
        {"id": "e2", "type": "complaint_opened", "customer": "c1", "at": "2026-01-05T10:00:00"},
        {"id": "e3", "type": "complaint_opened", "customer": "zz", "at": "2026-01-05T10:00:00Z"},
        {"id": "e1", "type": "complaint_opened", "customer": "c1", "at": "2026-01-05T10:00:00Z"},
        {"id": "e4", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00Z",
         "order": {"id": "o1", "items": [{"price": "-3"}]}},
    ]  # fmt: skip
    response = web.client.post("/api/events", json=events, headers=AUTH)

    assert response.status_code == 422
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["errors"]) == (1, 1, 3)
    results = body["results"]
    assert results[0]["status"] == "accepted"
    assert (results[1]["field"], results[1]["status"]) == ("at", "error")
    assert "UTC offset" in results[1]["reason"]
    assert results[2] == {"index": 2, "status": "error", "id": "e3", "field": "customer",
                          "reason": "unknown customer 'zz'"}  # fmt: skip
    assert results[3]["status"] == "duplicate"
    assert results[4]["field"] == "order.items[0].price"
    assert [r[0] for r in web.snapshot()["events"]] == ["e1"]


def test_json_lines(web: Web) -> None:
    lines = [
        json.dumps({"id": "e1", "type": "complaint_opened", "customer": "c1",
                    "at": "2026-01-05T10:00:00Z"}),
        "{not json",
        json.dumps({"id": "e2", "type": "unsubscribed", "customer": "c1", "channel": "sms",
                    "at": "2026-01-05T10:00:00Z"}),
    ]  # fmt: skip
    response = web.client.post(
        "/api/events",
        content="\n".join(lines).encode(),
        headers={**AUTH, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 422
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "error", "accepted"]
    assert response.json()["results"][1]["field"] == "json"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_TOKEN}"}]
)
def test_the_api_needs_the_token(web: Web, headers: dict[str, str]) -> None:
    event = {"id": "e1", "type": "complaint_opened", "customer": "c1", "at": "2026-01-05T10:00Z"}
    response = web.client.post("/api/events", json=event, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert web.snapshot()["events"] == []


def test_malformed_body_is_400(web: Web) -> None:
    response = web.client.post("/api/events", content=b"{oops", headers=AUTH)
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


def test_without_a_token_setting_the_api_is_off(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    response = Web(h).client.post("/api/events", json={}, headers=AUTH)
    assert response.status_code == 503
    assert "AFTERSALE_API_TOKEN" in response.json()["error"]
    h.project.close()


# --------------------------------------------------------------------------- Shopify

ORDER: dict[str, Any] = {
    "id": 820982911946154508,
    "email": "jon@example.com",
    "created_at": "2026-01-05T10:00:00+01:00",
    "currency": "EUR",
    "total_price": "598.00",
    "customer_locale": "en",
    "customer": {
        "id": 115310627314723954,
        "email": "jon@example.com",
        "phone": "+4915112345679",
        "first_name": "Jon",
        "last_name": "Snow",
        "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in"},
        "sms_marketing_consent": {"state": "not_subscribed"},
    },
    "line_items": [
        {"product_id": 632910392, "title": "Waschmaschine WM 7", "quantity": 1,
         "price": "549.00", "sku": "WM-7"},
        {"product_id": 632910393, "title": "Zulaufschlauch", "quantity": 1, "price": "49.00",
         "sku": None},
    ],
}  # fmt: skip
CUSTOMER_ID = "shopify:115310627314723954"


def post_order(web: Web, order: dict[str, Any], webhook_id: str = "wh-1", **kw: Any) -> Any:
    body = json.dumps(order).encode()
    headers = {
        "X-Shopify-Hmac-Sha256": shopify_hmac(kw.get("secret", SHOPIFY_SECRET), body),
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Topic": "orders/create",
    }
    return web.client.post("/webhooks/shopify/orders-create", content=body, headers=headers)


def test_an_order_becomes_a_customer_and_a_purchase(web: Web) -> None:
    response = post_order(web, ORDER)

    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "event_id": "shopify:wh-1",
                               "customer_id": CUSTOMER_ID}  # fmt: skip
    customer = web.customer(CUSTOMER_ID)
    assert (customer.email, customer.phone, customer.first_name) == (
        "jon@example.com", "+4915112345679", "Jon")  # fmt: skip
    assert (customer.email_consent, customer.sms_consent, customer.locale) == (True, False, "en")

    web.h.simulate(utc("2026-01-06T00:00:00"))
    (thanks,) = web.h.messages(customer_id=CUSTOMER_ID, journey_id="thank_you")
    assert thanks.status == "sent"
    assert thanks.order_id == "shopify:820982911946154508"
    (sent,) = web.h.email.sent
    assert sent.to == "jon@example.com"
    assert "Waschmaschine WM 7" in sent.body_text


def test_a_replayed_webhook_is_a_no_op(web: Web) -> None:
    post_order(web, ORDER)
    before = web.snapshot()
    again = post_order(web, ORDER)
    assert again.json()["status"] == "duplicate"
    after = web.snapshot()
    assert after["events"] == before["events"]


def test_guest_orders_and_orders_without_any_contact(web: Web) -> None:
    guest = {**copy.deepcopy(ORDER), "customer": None, "email": "guest@example.com"}
    response = post_order(web, guest, "wh-2")
    guest_id = response.json()["customer_id"]
    assert guest_id.startswith("shopify:guest:") and "@" not in guest_id
    assert web.customer(guest_id).email_consent is False

    nobody = {**copy.deepcopy(ORDER), "customer": None, "email": None, "phone": None}
    before = web.snapshot()
    response = post_order(web, nobody, "wh-3")
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "no customer" in response.json()["reason"]
    assert web.snapshot() == before


def test_the_shop_does_not_undo_an_unsubscribe_made_here(web: Web) -> None:
    post_order(web, ORDER)
    token = unsubscribe_token(web.h.project.signing_keys().key("unsubscribe"), CUSTOMER_ID)
    web.client.post(f"/unsubscribe/{token}")

    post_order(web, {**ORDER, "id": 820982911946154509}, "wh-4")

    assert web.customer(CUSTOMER_ID).email_consent is False


@pytest.mark.parametrize("attack", ["unsigned", "other_secret", "tampered"])
def test_bad_shopify_signatures_change_nothing(web: Web, attack: str) -> None:
    body = json.dumps(ORDER).encode()
    signature = shopify_hmac("other" if attack == "other_secret" else SHOPIFY_SECRET, body)
    headers = {} if attack == "unsigned" else {"X-Shopify-Hmac-Sha256": signature}
    if attack == "tampered":
        body = body.replace(b"598.00", b"5.00")
    before = web.snapshot()
    response = web.client.post("/webhooks/shopify/orders-create", content=body, headers=headers)
    assert response.status_code == 403
    assert web.snapshot() == before


def test_malformed_orders_are_400(web: Web) -> None:
    before = web.snapshot()
    for body in (b"{nope", b"[1, 2]"):
        headers = {"X-Shopify-Hmac-Sha256": shopify_hmac(SHOPIFY_SECRET, body)}
        response = web.client.post("/webhooks/shopify/orders-create", content=body, headers=headers)
        assert response.status_code == 400
    response = post_order(web, {**ORDER, "created_at": "yesterday"}, "wh-5")
    assert (response.status_code, response.json()["field"]) == (422, "at")
    assert web.snapshot() == before

"""Signed webhooks and the events API fuzzed past their doors: any body gets a 2xx or 4xx.

The schema-driven fuzz (test_fuzz_routes) cannot sign a body, so it stops at 401/403 on
these endpoints. Here hypothesis builds bodies shaped like what each endpoint expects,
with values of any type and size in every field, and signs them as the provider would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersale.app import Project
from aftersale.cli import write_project
from aftersale.webhooks import shopify_hmac
from channels.memory import InMemoryChannel
from tests.conftest import Harness, utc
from tests.integration.test_shop_ingestion import AUTH
from tests.integration.test_webhooks import SHOPIFY_SECRET, SIGNER, WEB_TOML, Web, sold

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**30, -1, 0, 2**63, 999_999_999]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00",
                     "2026-01-05T10:00:00Z", "a\x00b", "1.999", "EUR", "x" * 300]),
)  # fmt: skip
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with some of ``keys``, each holding anything."""
    return st.dictionaries(st.sampled_from(keys), anything, max_size=len(keys))


item = shaped(["sku", "name", "price", "quantity", "warranty_months", "inspection_interval_days"])
order = shaped(["id", "total", "currency"]).flatmap(
    lambda o: st.lists(item | anything, max_size=3).map(lambda items: {**o, "items": items})
)
event = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=10) | anything,
     "type": st.sampled_from(["purchase", "return", "unsubscribed", "note"]) | anything,
     "customer": st.just("c1") | anything,
     "at": st.sampled_from(["2026-01-05T10:00:00Z", "0001-01-01T00:00:00+01:00"]) | anything},
    optional={"order": order | anything, "channel": anything},
)  # fmt: skip


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a value of the expected shape, else anything: enough bodies get
    past parsing for the odd field to reach the code that stores it."""
    return st.one_of(valid, valid, valid, anything)


sendgrid_event = st.fixed_dictionaries(
    {"event": mostly(st.sampled_from(["delivered", "bounce", "open", "click", "dropped",
                                      "spamreport", "unsubscribe"])),
     "email": mostly(st.just("anna@example.org"))},
    optional={"sg_event_id": st.text(max_size=5) | anything,
              "sg_message_id": st.just("x.filter") | anything,
              "timestamp": mostly(st.integers(0, 2**40)),
              "aftersale_message_id": st.sampled_from(["1", "2", "3"]) | anything,
              "reason": anything, "url": anything, "unique_args": anything},
)  # fmt: skip
line_item = st.fixed_dictionaries(
    {"quantity": mostly(st.integers(1, 5)), "price": mostly(st.just("549.00"))},
    optional={"sku": anything, "title": anything, "product_id": anything},
)  # fmt: skip
person = st.fixed_dictionaries(
    {"id": mostly(st.integers(1, 10**18)), "email": mostly(st.just("jon@example.com"))},
    optional={"first_name": anything, "last_name": anything, "phone": anything,
              "email_marketing_consent": anything, "accepts_marketing": anything},
)  # fmt: skip
shop_order = st.fixed_dictionaries(
    {"id": mostly(st.integers(1, 10**18)),
     "created_at": mostly(st.just("2026-01-05T10:00:00+01:00")),
     "customer": mostly(person),
     "line_items": mostly(st.lists(mostly(line_item), max_size=3))},
    optional={"currency": mostly(st.just("EUR")), "total_price": mostly(st.just("598.00")),
              "email": anything, "phone": anything, "customer_locale": anything},
)  # fmt: skip


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    directory: Path = tmp_path_factory.mktemp("signed") / "shop"
    write_project(directory)
    (directory / "aftersale.toml").write_text(WEB_TOML, encoding="utf-8")
    project = Project.open(directory)
    project.channel_overrides = {"email": InMemoryChannel("email"), "sms": InMemoryChannel("sms")}
    h = Harness(project, project.channel_overrides["email"], project.channel_overrides["sms"],
                directory)  # fmt: skip
    sold(h)
    h.simulate(utc("2026-04-01T00:00:00"))  # messages for the events to find
    yield Web(h)
    project.close()


def body_of(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()


def test_events_api(web: Web) -> None:
    @FUZZ
    @given(st.lists(mostly(event), min_size=1, max_size=4))
    def run(events: list[dict[str, Any]]) -> None:
        response = web.client.post("/api/events", content=body_of(events), headers=AUTH)
        assert response.status_code in (200, 422), response.text

    run()


def test_sendgrid_webhook(web: Web) -> None:
    @FUZZ
    @given(st.lists(mostly(sendgrid_event), min_size=1, max_size=3))
    def run(events: list[Any]) -> None:
        body = body_of(events)
        response = web.client.post("/webhooks/sendgrid", content=body, headers=SIGNER.headers(body))
        assert response.status_code in (200, 400), response.text

    run()


def test_shopify_webhook(web: Web) -> None:
    @FUZZ
    @given(shop_order, st.text(max_size=200))
    def run(order: dict[str, Any], webhook_id: str) -> None:
        body = body_of(order)
        headers = {"X-Shopify-Hmac-Sha256": shopify_hmac(SHOPIFY_SECRET, body),
                   "X-Shopify-Webhook-Id": webhook_id.encode("ascii", "ignore").decode()}  # fmt: skip
        response = web.client.post("/webhooks/shopify/orders-create", content=body, headers=headers)
        assert response.status_code in (200, 400, 422), response.text

    run()

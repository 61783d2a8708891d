"""Bodies over the limit are refused with 413 before they are read whole."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from aftersale.web import create_app
from tests.conftest import Harness
from tests.integration.live_server import live_server
from tests.integration.test_webhooks import API_TOKEN, WEB_TOML

MIB = 1024 * 1024
WEBHOOKS = ["/webhooks/sendgrid", "/webhooks/twilio/status", "/webhooks/twilio/inbound",
            "/webhooks/shopify/orders-create"]  # fmt: skip


@pytest.fixture
def shop(make_harness) -> Iterator[Harness]:
    h = make_harness(toml=WEB_TOML)
    yield h
    h.project.close()


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", WEBHOOKS)
def test_a_declared_length_over_a_mebibyte_is_refused_unread(shop: Harness, path: str) -> None:
    with TestClient(create_app(shop.project)) as client:
        response = client.post(path, content=b"x" * (MIB + 1))
        assert response.status_code == 413, response.text
        assert "1048576" in response.json()["error"]


def test_the_events_api_takes_ten_mebibytes(shop: Harness) -> None:
    with TestClient(create_app(shop.project)) as client:
        auth = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-ndjson"}
        over = client.post("/api/events", content=b" " * (10 * MIB + 1), headers=auth)
        assert over.status_code == 413
        under = client.post("/api/events", content=b"\n" * (2 * MIB), headers=auth)
        assert under.status_code != 413


def test_a_streamed_body_is_cut_off_when_it_passes_the_limit(shop: Harness) -> None:
    """No Content-Length: the chunks are counted as they arrive, over a real server."""
    with live_server(shop.project) as url, httpx.Client(base_url=url) as client:
        streamed = client.post("/webhooks/sendgrid", content=_chunks(300 * MIB))
        assert streamed.status_code == 413
        assert client.get("/healthz").status_code == 200
        small = client.post("/webhooks/sendgrid", content=_chunks(1000))
        assert small.status_code == 403  # read, then refused for its missing signature


def test_the_limits_are_settings(make_harness) -> None:
    h = make_harness(toml=WEB_TOML + "\n[web]\nmax_webhook_bytes = 2048\n")
    with TestClient(create_app(h.project)) as client:
        assert client.post("/webhooks/sendgrid", content=b"x" * 2049).status_code == 413
        assert client.post("/webhooks/sendgrid", content=b"x" * 2048).status_code == 403
    h.project.close()

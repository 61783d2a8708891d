"""Security headers on every answer, API docs behind the login, no tokens in access logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient
from uvicorn.logging import AccessFormatter

from aftersale.web import create_app
from campaigns.consent import unsubscribe_token
from tests.conftest import Harness
from tests.integration.admin_data import ADMIN, client_for, login, seed
from tests.integration.live_server import live_server

URLS = ["/healthz", "/admin/login", "/admin/", "/unsubscribe/not-a-token", "/l/abc.def",
        "/api/admin/me", "/admin/static/css/admin.css", "/no-such-page"]  # fmt: skip


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    seed(sqlite_harness)
    return sqlite_harness


@pytest.mark.parametrize("url", URLS)
def test_every_answer_carries_the_security_headers(shop: Harness, url: str) -> None:
    with client_for(shop) as client:
        headers = client.get(url).headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_no_hsts_over_plain_http(shop: Harness) -> None:
    shop.project.settings.public_url = "http://127.0.0.1:8000"
    with TestClient(create_app(shop.project)) as client:
        headers = client.get("/healthz").headers
    assert "Strict-Transport-Security" not in headers
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("url", ["/docs", "/redoc", "/openapi.json"])
def test_the_api_documents_need_a_login(shop: Harness, url: str) -> None:
    with client_for(shop) as client:
        refused = client.get(url)
        assert refused.status_code in (303, 401), refused.status_code
        assert "/api/admin" not in refused.text
        login(client, ADMIN)
        shown = client.get(url)
        assert shown.status_code == 200
        if url == "/openapi.json":
            assert "/api/admin/log" in shown.json()["paths"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def _access_log() -> Iterator[_Lines]:
    """uvicorn's access log as its own formatter writes it (after the server configured it)."""
    logger = logging.getLogger("uvicorn.access")
    handler, level = _Lines(), logger.level
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_unsubscribe_and_link_tokens_stay_out_of_the_access_log(shop: Harness) -> None:
    token = unsubscribe_token(shop.project.signing_keys().key("unsubscribe"), "c1")
    with (
        live_server(shop.project) as url,
        httpx.Client(base_url=url) as client,
        _access_log() as access_log,
    ):
        assert client.get(f"/unsubscribe/{token}").status_code == 200
        client.get("/l/1a.SECRETMAC")
        client.get("/healthz")
    logged = "\n".join(access_log.lines)
    assert "/healthz" in logged and "/unsubscribe/" in logged
    assert token not in logged and token.split(".")[0] not in logged
    assert "SECRETMAC" not in logged

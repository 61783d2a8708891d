"""No route is open without a login, however it is called.

Schemathesis calls every operation of the OpenAPI document with generated values, with and
without a session; the console's pages and the API documents, which the document leaves
out, are walked route by route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from starlette.routing import Mount, Route

from aftersale.admin import api, pages
from aftersale.web import create_app
from aftersale.webhooks import router as webhooks_router
from tests.conftest import Harness
from tests.integration.admin_data import ADMIN, login, seed
from tests.integration.test_webhooks import WEB_TOML

# Open by design: they carry their own proof (a signature, a token) or none is needed.
PUBLIC = re.compile(
    r"^/(|favicon\.ico|healthz|webhooks/.*|unsubscribe/\{token\}|preferences/\{token\}|l/\{token\}|api/events|admin|admin/login"
    r"|admin/static)$"
)
SAMPLES = {"customer_id": "c1", "journey_id": "thank_you", "action": "pause", "token": "x",
           "path": "css/admin.css", "message_id": "1"}  # fmt: skip


@pytest.fixture
def shop(make_harness: Callable[..., Harness]) -> Iterator[tuple[Any, dict[str, str]]]:
    h = make_harness(toml=WEB_TOML + "\n[session]\nsecure_cookie = false\n")
    seed(h)
    app = create_app(h.project)
    with TestClient(app, follow_redirects=False) as client:
        token = login(client, ADMIN)
        cookie = client.cookies["aftersale_session"]
    yield app, {"Cookie": f"aftersale_session={cookie}", "X-CSRF-Token": token}
    h.project.close()


def _fuzz(app: Any, headers: dict[str, str], check: Callable[[Any, Any], None]) -> set[str]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    called = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call(headers=headers, app=app)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            check(case, response)

        call()
        called.add(operation.path)
    return called


def test_no_operation_is_open_without_a_session(shop: tuple[Any, dict[str, str]]) -> None:
    app, _ = shop

    def closed(case: Any, response: Any) -> None:
        if not PUBLIC.match(case.operation.path):
            assert response.status_code in (401, 403, 404, 405, 422) or (
                response.status_code == 303 and "/admin/login" in response.headers["location"]
            ), (case.method, case.formatted_path, response.status_code)

    called = _fuzz(app, {}, closed)
    assert {"/api/admin/log", "/api/admin/customers/{customer_id}", "/webhooks/sendgrid",
            "/api/events"} <= called  # fmt: skip


def test_no_operation_fails_with_a_session(shop: tuple[Any, dict[str, str]]) -> None:
    app, headers = shop
    assert _fuzz(app, headers, lambda case, response: None)


def _routes(app: Any) -> Iterator[tuple[str, str, str]]:
    """Every route of the app: its own, and those of the routers it includes."""
    included = [*pages.router.routes, *api.router.routes, *webhooks_router.routes]
    for route in [*app.routes, *included]:
        if isinstance(route, Mount):
            yield "GET", route.path + "/{path}", route.path + "/css/admin.css"
        elif isinstance(route, Route):
            concrete = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLES[m.group(1)], route.path)
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield method, route.path, concrete


def test_every_page_and_document_needs_a_login(shop: tuple[Any, dict[str, str]]) -> None:
    app, _ = shop
    seen = set()
    with TestClient(app, follow_redirects=False) as client:
        for method, path, url in _routes(app):
            seen.add(path)
            if PUBLIC.match(path) or path == "/admin/static/{path}":
                continue
            response = client.request(method, url)
            assert response.status_code in (401, 403) or (
                response.status_code == 303 and "/admin/login" in response.headers["location"]
            ), (method, url, response.status_code)
    assert {"/docs", "/redoc", "/openapi.json", "/admin/log.csv", "/admin/logout"} <= seen

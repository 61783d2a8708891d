"""Property-based requests against the OpenAPI document: the admin API never answers 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from aftersale.web import create_app
from tests.conftest import POLICY_TOML, Harness
from tests.integration.admin_data import ADMIN, login, seed


@pytest.fixture
def session(make_harness: Callable[..., Harness]) -> Iterator[tuple[Any, dict[str, str]]]:
    h = make_harness(toml=POLICY_TOML + "\n[session]\nsecure_cookie = false\n")
    seed(h)
    app = create_app(h.project)
    with TestClient(app, follow_redirects=False) as client:
        token = login(client, ADMIN)
        cookie = client.cookies["aftersale_session"]
    yield app, {"Cookie": f"aftersale_session={cookie}", "X-CSRF-Token": token}
    h.project.close()


def test_admin_api_has_no_server_errors(session: tuple[Any, dict[str, str]]) -> None:
    app, headers = session
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers).include(
        path_regex="^/api/admin"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call(headers=headers)
            statuses.append(response.status_code)
            where = (case.method, case.formatted_path, response.text[:300])
            assert response.status_code < 500, where
            assert response.status_code != 401, ("the session must be accepted", where)

        call()
    assert len(statuses) > 50 and 200 in statuses


def test_openapi_lists_the_admin_api(session: tuple[Any, dict[str, str]]) -> None:
    app, _ = session
    paths = app.openapi()["paths"]
    for path in ("/api/admin/log", "/api/admin/customers/{customer_id}", "/api/admin/journeys",
                 "/api/admin/dashboard", "/api/admin/journeys/{journey_id}/{action}"):  # fmt: skip
        assert path in paths
    assert not [p for p in paths if p.startswith("/admin")], "pages stay out of the API document"

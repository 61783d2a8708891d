"""Every HTTP route, fuzzed from the OpenAPI document: no request gets a 5xx.

The console's HTML pages stay out of the published document; here every route is put into
it, so they are fuzzed as well. Each generated request is sent without a session (with the
events API's token, so it gets past the door) and with an admin's session and CSRF token.
Examples are bounded and derandomised, so a run is the same every time.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from aftersale.admin import pages
from aftersale.app import Project
from aftersale.cli import write_project
from aftersale.web import create_app
from channels.memory import InMemoryChannel
from tests.conftest import Harness
from tests.integration.admin_data import ADMIN, login, seed
from tests.integration.test_shop_ingestion import AUTH
from tests.integration.test_webhooks import WEB_TOML

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 15))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    directory: Path = tmp_path_factory.mktemp("fuzz") / "shop"
    write_project(directory)
    (directory / "aftersale.toml").write_text(WEB_TOML, encoding="utf-8")
    project = Project.open(directory)
    email, sms = InMemoryChannel("email"), InMemoryChannel("sms")
    project.channel_overrides = {"email": email, "sms": sms}
    h = Harness(project, email, sms, directory)
    seed(h)
    yield h
    project.close()


def full_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the console's pages (unpublished) added."""
    hidden = []
    for route in pages.router.routes:
        if isinstance(route, APIRoute):
            hidden.append(copy.copy(route))
            hidden[-1].include_in_schema = True
    pages_doc = get_openapi(title=app.title, version=app.version, routes=hidden)
    document = copy.deepcopy(app.openapi())
    document["paths"].update(pages_doc["paths"])
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(pages_doc.get("components", {}).get("schemas", {}))
    return document


@pytest.fixture(scope="module")
def app(shop: Harness) -> FastAPI:
    return create_app(shop.project)


def admin_session(app: FastAPI) -> dict[str, Any]:
    """A new admin session: a fuzzed logout (or password change) ends the one before."""
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        token = login(client, ADMIN)
        cookies = dict(client.cookies)
    return {"headers": {**AUTH, "X-CSRF-Token": token}, "cookies": cookies}


def operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_dict(full_document(app))
    schema.app, schema.location = app, "/openapi.json"
    return [result.ok() for result in schema.get_all_operations()]


def test_every_route_is_in_the_fuzzed_document(app: FastAPI) -> None:
    paths = {op.path for op in operations(app)}
    assert {"/admin/customers/{customer_id}/suppress", "/l/{token}", "/api/events",
            "/webhooks/sendgrid", "/api/admin/log", "/admin/log"} <= paths  # fmt: skip


def test_no_route_answers_5xx(app: FastAPI) -> None:
    failures: list[str] = []
    answered: Counter[tuple[str, str, int]] = Counter()
    for operation in operations(app):
        for mode in GenerationMode:
            fuzz(operation, mode, admin_session(app), failures, answered)
    assert not failures, "\n".join(failures[:20])
    # The fuzz got past the doors: the admin's session opened the console's pages.
    assert answered["admin", "GET /admin/log", 200] and answered["admin", "GET /api/admin/log", 200]
    assert not answered["anonymous", "GET /api/admin/log", 200]


def fuzz(
    operation: Any, mode: GenerationMode, admin: dict, failures: list[str], answered: Counter
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        for who, extra in (("anonymous", {"headers": AUTH}), ("admin", admin)):
            response = case.call(**extra, allow_redirects=False)
            answered[who, f"{case.method} {operation.path}", response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{who}: {case.method} {case.formatted_path} {case.query or ''} "
                    f"{str(case.body)[:200]} -> {response.status_code}"
                )

    try:
        run()
    except Unsatisfiable:  # an operation without inputs has no invalid ones to send
        assert mode is GenerationMode.NEGATIVE

"""Console sessions live on the server: logout, new passwords, new roles and removal end them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aftersale.accounts import create_user, sessions_t
from aftersale.cli import app as cli
from tests.conftest import Harness, utc
from tests.integration.admin_data import ADMIN, VIEWER, client_for, login, post, seed


@pytest.fixture
def shop(harness: Harness) -> Harness:
    """On SQLite and on PostgreSQL: sessions are rows like any other."""
    seed(harness)
    return harness


@pytest.fixture
def admin(shop: Harness) -> Iterator[tuple[TestClient, str]]:
    with client_for(shop) as client:
        yield client, login(client, ADMIN)


def _copy(client: TestClient, shop: Harness) -> TestClient:
    """A second client holding a copy of ``client``'s cookie, as a thief would."""
    thief = client_for(shop)
    thief.cookies.set("aftersale_session", client.cookies["aftersale_session"])
    return thief


def _invoke(shop: Harness, *args: str) -> Any:
    url = shop.project.settings.database_url
    env = {"AFTERSALE_DATABASE_URL": url} if url else {}
    return CliRunner().invoke(cli, ["-p", str(shop.directory), *args], env=env)


def _cli(shop: Harness, *args: str) -> str:
    done = _invoke(shop, *args)
    assert done.exit_code == 0, done.output
    return done.output


def _pause_status(client: TestClient, token: str) -> int:
    return post(client, "/admin/journeys/thank_you/pause", token).status_code


def test_a_cookie_saved_before_logout_is_worthless(shop: Harness, admin) -> None:
    client, token = admin
    with _copy(client, shop) as thief:
        assert thief.get("/api/admin/me").status_code == 200
        assert post(client, "/admin/logout", token).status_code == 303
        assert thief.get("/api/admin/me").status_code == 401
        assert _pause_status(thief, token) == 303  # to the login page, nothing paused


def test_a_new_password_ends_every_session(shop: Harness, admin) -> None:
    client, _ = admin
    _cli(shop, "users", "passwd", ADMIN[0], "--password", "a-new-password-2")
    assert client.get("/api/admin/me").status_code == 401
    assert login(client, (ADMIN[0], "a-new-password-2"))


def test_a_demotion_ends_the_admins_sessions(shop: Harness, admin) -> None:
    client, _ = admin
    create_user(shop.project.db, ADMIN[0], ADMIN[1], "viewer", utc("2026-03-02T00:00:00"))
    assert client.get("/api/admin/me").status_code == 401
    token = login(client, ADMIN)
    assert client.get("/api/admin/me").json()["role"] == "viewer"
    assert _pause_status(client, token) == 403


def test_users_remove_ends_the_session_and_list_shows_who_is_left(shop: Harness) -> None:
    with client_for(shop) as client:
        login(client, VIEWER)
        listing = _cli(shop, "users", "list")
        assert VIEWER[0] in listing and ADMIN[0] in listing
        _cli(shop, "users", "remove", VIEWER[0])
        assert client.get("/api/admin/me").status_code == 401
    listing = _cli(shop, "users", "list")
    assert VIEWER[0] not in listing and ADMIN[0] in listing
    done = _invoke(shop, "users", "remove", "nobody")
    assert done.exit_code == 2 and "no user 'nobody'" in done.output


def test_an_idle_session_ends(shop: Harness, admin) -> None:
    client, _ = admin
    idle = timedelta(seconds=shop.project.settings.session_idle_timeout + 1)
    with shop.project.db.begin() as conn:
        seen = conn.execute(sa.select(sessions_t.c.last_seen_at)).scalar_one()
        conn.execute(sessions_t.update().values(last_seen_at=seen - idle))
    assert client.get("/api/admin/me").status_code == 401
    with shop.project.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sessions_t)).scalar() == 0


def test_the_cookie_holds_no_user_id_and_the_database_no_token(shop: Harness, admin) -> None:
    client, _ = admin
    with shop.project.db.connect() as conn:
        stored = conn.execute(sa.select(sessions_t.c.id)).scalars().all()
    assert len(stored) == 1
    assert stored[0] not in client.cookies["aftersale_session"]

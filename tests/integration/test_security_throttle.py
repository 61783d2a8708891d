"""Login throttling slows a guesser down without locking the owner out or naming users."""

from __future__ import annotations

import re

import httpx
import pytest

from aftersale.accounts import LoginThrottle, authenticate, lockout_seconds
from aftersale.web import server_options
from tests.conftest import Harness, utc
from tests.integration.admin_data import ADMIN, client_for, csrf_of, seed
from tests.integration.live_server import live_server

NOW = utc("2026-03-01T10:00:00")


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    seed(sqlite_harness)
    return sqlite_harness


def test_a_guesser_elsewhere_cannot_lock_the_owner_out(shop: Harness) -> None:
    db, throttle = shop.project.db, LoginThrottle()
    for _ in range(50):
        authenticate(db, ADMIN[0], "guess", client="203.0.113.9", throttle=throttle, now=NOW)
    assert authenticate(db, ADMIN[0], "guess", client="203.0.113.9", throttle=throttle,
                        now=NOW).retry_after > 0  # fmt: skip
    owner = authenticate(db, ADMIN[0], ADMIN[1], client="198.51.100.1", throttle=throttle, now=NOW)
    assert owner.ok


def test_waits_grow_but_stay_short() -> None:
    assert [lockout_seconds(n) for n in range(8)] == [0, 0, 0, 0, 0, 1, 2, 4]
    assert lockout_seconds(1000) == 60
    moments = [NOW]
    throttle = LoginThrottle(clock=lambda: moments[0])
    for _ in range(6):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.wait("alice", "10.0.0.1") == 2
    assert throttle.wait("Alice", "10.0.0.1") == 2  # names compared as typed at login
    assert throttle.wait("alice", "10.0.0.2") == 0 and throttle.wait("bob", "10.0.0.1") == 0
    moments[0] = utc("2026-03-01T10:00:03")
    assert throttle.wait("alice", "10.0.0.1") == 0


def test_one_address_spraying_names_is_slowed_too() -> None:
    throttle = LoginThrottle()
    for n in range(25):
        throttle.failed(f"user{n}", "10.0.0.1")
    assert throttle.wait("someone-else", "10.0.0.1") > 0
    assert throttle.wait("someone-else", "10.0.0.2") == 0


def _answers(client: httpx.Client | object, name: str, times: int) -> list[tuple[int, str]]:
    token = csrf_of(client)  # type: ignore[arg-type]
    seen = []
    for _ in range(times):
        r = client.post(  # type: ignore[attr-defined]
            "/admin/login", data={"username": name, "password": "wrong", "csrf_token": token}
        )
        error = re.search(r'role="alert">([^<]*)<', r.text)
        seen.append((r.status_code, re.sub(r"\d+", "N", error.group(1) if error else "")))
    return seen


def test_unknown_users_get_the_same_answers_as_wrong_passwords(shop: Harness) -> None:
    with client_for(shop) as client:
        known = _answers(client, ADMIN[0], 8)
        unknown = _answers(client, "nobody-by-this-name", 8)
    assert known == unknown
    assert {status for status, _ in known} == {401, 429}


def _guesses_from_many_forwarded_addresses(shop: Harness, name: str) -> list[int]:
    with live_server(shop.project) as url, httpx.Client(base_url=url) as client:
        token = csrf_of(client)  # type: ignore[arg-type]
        return [
            client.post(
                "/admin/login",
                data={"username": name, "password": "wrong", "csrf_token": token},
                headers={"X-Forwarded-For": f"192.0.2.{n}"},
            ).status_code
            for n in range(8)
        ]


def test_forwarded_for_does_not_reset_the_count_unless_the_proxy_is_trusted(shop: Harness):
    assert shop.project.settings.web_forwarded_allow_ips is None
    shop.project.settings.session_secure_cookie = False  # plain HTTP on loopback
    assert _guesses_from_many_forwarded_addresses(shop, "nobody")[-1] == 429
    shop.project.settings.web_forwarded_allow_ips = "127.0.0.1"
    assert set(_guesses_from_many_forwarded_addresses(shop, "someone")) == {401}


def test_a_configured_proxy_is_believed() -> None:
    from aftersale.settings import Settings

    options = server_options(Settings(web_forwarded_allow_ips="10.0.0.5"))
    assert options["proxy_headers"] and options["forwarded_allow_ips"] == "10.0.0.5"
    assert server_options(Settings())["proxy_headers"] is False

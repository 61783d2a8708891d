"""The admin console over HTTP: access rules, CSRF, throttling, pages and actions."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aftersale.admin.masking import mask_email, mask_phone
from aftersale.cli import app as cli
from campaigns.models import Customer, Event, JourneyState, Suppression
from tests.conftest import Harness, utc
from tests.integration.admin_data import ADMIN, VIEWER, client_for, csrf_of, login, post, seed

PAGES = [
    "/admin/",
    "/admin/log",
    "/admin/log.csv",
    "/admin/customers/c1",
    "/admin/customers/c1/export.json",
    "/admin/journeys",
    "/admin/journeys/thank_you",
]
PAGE_POSTS = [
    ("/admin/customers/c1/suppress", {"channel": "email"}),
    ("/admin/customers/c1/lift", {"channel": "email"}),
    ("/admin/customers/c1/withdraw-consent", {"channel": "email"}),
    ("/admin/customers/c1/erase", {"confirm": "c1"}),
    ("/admin/journeys/thank_you/pause", {}),
    ("/admin/journeys/thank_you/resume", {}),
]


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    seed(sqlite_harness)
    return sqlite_harness


@pytest.fixture
def client(shop: Harness) -> Iterator[TestClient]:
    with client_for(shop) as c:
        yield c


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every /api/admin operation in the OpenAPI document, with sample path values."""
    found = []
    for path, ops in client.app.openapi()["paths"].items():
        if path.startswith("/api/admin"):
            concrete = (
                path.replace("{customer_id}", "c1")
                .replace("{journey_id}", "thank_you")
                .replace("{action}", "pause")
            )
            found += [(method.upper(), concrete) for method in ops]
    return found


def test_public_routes_stay_public(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_pages_redirect_to_login_without_a_session(client: TestClient) -> None:
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/admin/login?next="), url
    for url, data in PAGE_POSTS:
        assert post(client, url, csrf_of(client), **data).status_code == 303, url


def test_api_answers_401_without_a_session(client: TestClient) -> None:
    routes = api_routes(client)
    assert len(routes) >= 9
    for method, url in routes:
        response = client.request(method, url, json={"action": "lift", "channel": "email"})
        assert response.status_code == 401, (method, url)


def test_viewer_reads_with_masked_contacts_and_cannot_change_anything(
    client: TestClient, shop: Harness
) -> None:
    token = login(client, VIEWER)
    for url in PAGES:
        expected = 403 if url.endswith("export.json") else 200
        assert client.get(url).status_code == expected, url
    page = client.get("/admin/customers/c1").text
    assert "a***@example.com" in page and "+49151*****678" in page
    assert "anna@example.com" not in page and "+4915112345678" not in page
    data = client.get("/api/admin/customers/c1").json()["customer"]
    assert (data["email"], data["phone"]) == ("a***@example.com", "+49151*****678")
    for url, form in PAGE_POSTS:
        assert post(client, url, token, **form).status_code == 403, url
    for method, url in api_routes(client):
        if method == "POST":
            response = client.post(url, json={"action": "lift", "channel": "email"},
                                   headers={"X-CSRF-Token": token})  # fmt: skip
            assert response.status_code == 403, url
    with shop.project.db.connect() as conn:
        assert not any(conn.execute(sa.select(JourneyState.__table__.c.paused)).scalars())


def test_admin_sees_full_contacts(client: TestClient) -> None:
    login(client, ADMIN)
    page = client.get("/admin/customers/c1").text
    assert "anna@example.com" in page and "+4915112345678" in page


def test_every_form_on_the_pages_carries_the_session_token(client: TestClient) -> None:
    token = login(client, ADMIN)
    for url in ("/admin/customers/c1", "/admin/journeys/thank_you", "/admin/log"):
        page = client.get(url).text
        assert page.count("<form") >= 2 and page.count('method="post"') == page.count(
            f'name="csrf_token" value="{token}"'
        ), url


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(
    client: TestClient, shop: Harness
) -> None:
    login(client, ADMIN)
    assert post(client, "/admin/journeys/thank_you/pause", None).status_code == 403
    assert post(client, "/admin/journeys/thank_you/pause", "forged").status_code == 403
    api = client.post("/api/admin/journeys/thank_you/pause")
    assert api.status_code == 403
    with shop.project.db.connect() as conn:
        assert not any(conn.execute(sa.select(JourneyState.__table__.c.paused)).scalars())


def test_login_form_itself_needs_the_csrf_token(client: TestClient) -> None:
    response = client.post("/admin/login", data={"username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 403


def test_wrong_password_is_refused_and_repeated_failures_are_throttled(
    client: TestClient,
) -> None:
    token = csrf_of(client)
    form = {"username": ADMIN[0], "password": "wrong-password", "csrf_token": token}
    statuses = [client.post("/admin/login", data=form).status_code for _ in range(5)]
    assert statuses == [401] * 5
    refused = client.post("/admin/login", data={**form, "password": ADMIN[1]})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/api/admin/me").status_code == 401


def test_logout_ends_the_session(client: TestClient) -> None:
    token = login(client, ADMIN)
    assert post(client, "/admin/logout", token).status_code == 303
    assert client.get("/admin/").status_code == 303


def test_admin_pauses_and_resumes_a_journey(client: TestClient, shop: Harness) -> None:
    token = login(client, ADMIN)
    assert post(client, "/admin/journeys/thank_you/pause", token).status_code == 303
    assert "paused" in client.get("/admin/journeys/thank_you").text
    states = JourneyState.__table__

    def paused() -> bool:
        with shop.project.db.connect() as conn:
            query = sa.select(states.c.paused).where(states.c.journey_id == "thank_you")
            return conn.execute(query).scalar_one()

    assert paused()
    resumed = client.post("/api/admin/journeys/thank_you/resume", headers={"X-CSRF-Token": token})
    assert resumed.json() == {"id": "thank_you", "paused": False} and not paused()
    assert post(client, "/admin/journeys/nope/pause", token).status_code == 404


def test_send_log_filters_and_pages_with_before_id(client: TestClient, shop: Harness) -> None:
    login(client, VIEWER)
    everything = client.get("/api/admin/log", params={"limit": 500}).json()["messages"]
    assert len(everything) > 5
    first = client.get("/api/admin/log", params={"limit": 3}).json()
    second = client.get(
        "/api/admin/log", params={"limit": 3, "before_id": first["next_before_id"]}
    ).json()
    ids = [m["id"] for m in first["messages"] + second["messages"]]
    assert ids == [m["id"] for m in everything[:6]] and ids == sorted(ids, reverse=True)
    by_contact = client.get("/api/admin/log", params={"contact": "anna@example.com"}).json()
    assert {m["customer"] for m in by_contact["messages"]} == {"c1"}
    sms = client.get("/api/admin/log", params={"channel": "sms", "status": "sent"}).json()
    assert sms["messages"] and all(m["channel"] == "sms" for m in sms["messages"])
    dated = client.get("/api/admin/log", params={"since": "2026-01-06", "until": "2026-01-06"})
    assert {m["due_at"][:10] for m in dated.json()["messages"]} == {"2026-01-06"}
    page = client.get("/admin/log", params={"journey": "inspection_invitation"}).text
    assert "older →" not in page and "inspection_invitation" in page
    assert client.get("/api/admin/log", params={"since": "yesterday"}).status_code == 422


def test_older_link_appears_on_a_full_page(client: TestClient) -> None:
    login(client, VIEWER)
    newest = client.get("/api/admin/log", params={"limit": 500}).json()["messages"]
    decided = [m for m in newest if m["status"] != "planned"]
    page = client.get("/admin/log").text
    if len(decided) > 50:  # the page continues after its last row's decision time and id
        assert "view=decided&amp;after=" in page and "older →" in page
    else:
        assert "older →" not in page


def test_csv_export_streams_the_current_filter(client: TestClient) -> None:
    login(client, VIEWER)
    response = client.get("/admin/log.csv", params={"customer": "c1"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    api = client.get("/api/admin/log", params={"customer": "c1", "limit": 500}).json()
    assert len(rows) == len(api["messages"]) > 0
    assert {r["customer"] for r in rows} == {"c1"}


def test_customer_page_shows_decisions_and_consent_sources(client: TestClient) -> None:
    login(client, ADMIN)
    data = client.get("/api/admin/customers/c3").json()
    assert data["customer"]["email_consent"] is False
    skipped = [m for m in data["messages"] if m["status"] == "skipped"]
    assert skipped and skipped[0]["reason"] == "no_consent:email"
    assert any(d["action"] == "skipped" for d in skipped[0]["decisions"])
    page = client.get("/admin/customers/c3").text
    assert "no_consent:email" in page and "import" in page
    assert client.get("/admin/customers/nobody").status_code == 404


def test_suppress_lift_and_withdraw_consent_are_recorded(client: TestClient, shop: Harness) -> None:
    token = login(client, ADMIN)
    assert post(client, "/admin/customers/c2/suppress", token, channel="sms",
                reason="asked by phone").status_code == 303  # fmt: skip
    with shop.project.db.connect() as conn:
        row = conn.execute(sa.select(Suppression.__table__)).one()
    assert (row.customer_id, row.channel, row.reason, row.source) == (
        "c2",
        "sms",
        "asked by phone",
        "admin:alice",
    )
    assert "asked by phone" in client.get("/admin/customers/c2").text
    assert post(client, "/admin/customers/c2/lift", token, channel="sms").status_code == 303
    assert post(client, "/admin/customers/c2/lift", token, channel="sms").status_code == 400
    assert post(client, "/admin/customers/c2/suppress", token, channel="fax").status_code == 400
    assert post(client, "/admin/customers/c2/withdraw-consent", token,
                channel="email").status_code == 303  # fmt: skip
    data = client.get("/api/admin/customers/c2").json()
    assert data["suppressions"] == []
    assert data["customer"]["email_consent"] is False
    assert data["customer"]["email_consent_source"] == "admin:alice"
    kinds = [e["type"] for e in data["events"]]
    for kind in ("admin_suppressed", "admin_suppression_lifted", "admin_consent_withdrawn"):
        assert kind in kinds


def test_gdpr_export_holds_everything_about_the_customer(client: TestClient) -> None:
    login(client, ADMIN)
    response = client.get("/admin/customers/c1/export.json")
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["customer"]["email"] == "anna@example.com"
    assert {p["id"] for p in data["purchases"]} == {"o1", "o4"}
    assert data["messages"] and "decisions" in data["messages"][0]
    assert client.get("/api/admin/customers/c1/export").json()["customer"]["id"] == "c1"


def test_erasure_anonymises_but_keeps_messages(client: TestClient, shop: Harness) -> None:
    token = login(client, ADMIN)
    before = client.get("/api/admin/log", params={"customer": "c1", "limit": 500}).json()
    assert post(client, "/admin/customers/c1/erase", token, confirm="wrong").status_code == 400
    assert post(client, "/admin/customers/c1/erase", token, confirm="c1").status_code == 303
    with shop.project.db.connect() as conn:
        c = conn.execute(sa.select(Customer.__table__).where(Customer.id == "c1")).one()
        notes = conn.execute(
            sa.select(Event.__table__.c.type).where(Event.customer_id == "c1")
        ).scalars()
        assert "admin_erased" in list(notes)
    assert (c.email, c.phone, c.first_name, c.last_name, c.attributes) == (None, None, "", "", {})
    assert not c.email_consent and not c.sms_consent
    after = client.get("/api/admin/log", params={"customer": "c1", "limit": 500}).json()
    assert len(after["messages"]) == len(before["messages"])
    assert not [m for m in after["messages"] if m["status"] == "planned"]
    assert "anna" not in client.get("/admin/customers/c1").text.lower()


def test_journey_pages_show_flow_funnel_and_return(client: TestClient) -> None:
    login(client, VIEWER)
    page = client.get("/admin/journeys/extended_warranty").text
    for text in ("When: purchase", "Wait -60d", "Send email: offer_email", "on warranty_extended"):
        assert text in page
    data = client.get("/api/admin/journeys/thank_you").json()
    assert data["funnel"][0]["planned"] == data["funnel"][0]["sent"] == 4
    # o4 follows a thank-you mail to c1 within 30 days, but a receipt is transactional:
    # never credited with an order. What it cost still counts.
    assert data["returns"]["orders"] == 0 and data["returns"]["revenue"] == "0"
    assert data["returns"]["cost"] == "0.004"
    assert data["holdout"] is None and data["variants"] == [] and data["currency"] == "EUR"
    assert [n["kind"] for n in data["flow"]][0] == "trigger"
    assert "Free inspection invitation" in client.get("/admin/journeys").text
    assert client.get("/admin/journeys/nope").status_code == 404


def test_dashboard_counts_backlog_and_live_dispatchers(client: TestClient, shop: Harness) -> None:
    from datetime import UTC, datetime

    from campaigns.models import DispatcherHeartbeat

    with shop.project.db.begin() as conn:
        conn.execute(
            DispatcherHeartbeat.__table__.insert(),
            [
                {"id": "alive", "hostname": "h1", "pid": 1, "seen_at": datetime.now(UTC)},
                {"id": "dead", "hostname": "h2", "pid": 2, "seen_at": utc("2020-01-01T00:00")},
            ],
        )
    login(client, VIEWER)
    data = client.get("/api/admin/dashboard").json()
    assert [d["id"] for d in data["dispatchers"]] == ["alive"]
    assert data["now"].startswith("2026-03-01")
    assert sum(sum(v) for v in data["messages_per_day"]["email"].values()) > 0
    assert data["backlog"] == 0
    assert "Dispatchers alive" in client.get("/admin/").text


def test_masking_rules() -> None:
    assert mask_email("anna@example.com") == "a***@example.com"
    assert mask_phone("+4915112345678") == "+49151*****678"
    assert mask_phone("+4930") == "+4***"
    assert mask_email(None) is None


def test_cli_adds_users_and_prints_stats(shop: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    project = ["--project", str(shop.directory)]
    monkeypatch.setenv("AFTERSALE_USER_PASSWORD", "from-the-env-1")
    added = runner.invoke(cli, [*project, "users", "add", "carla", "--role", "admin"])
    assert added.exit_code == 0, added.output
    with client_for(shop) as c:
        login(c, ("carla", "from-the-env-1"))
    bad = runner.invoke(cli, [*project, "users", "add", "dora", "--role", "boss"])
    assert bad.exit_code == 2 and "role" in bad.output
    stats = runner.invoke(cli, [*project, "stats"], env={"COLUMNS": "120"})
    assert stats.exit_code == 0, stats.output
    assert "thank_you" in stats.output and "Attributed return" in stats.output
    one = runner.invoke(cli, [*project, "stats", "--journey", "loyalty_offer"])
    assert "no_consent:email" in one.output and "thank_you" not in one.output

"""What support sees in the console: why a customer was not enrolled, search, times."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from aftersale.accounts import create_user
from tests.conftest import Harness, utc
from tests.integration.admin_data import ADMIN, VIEWER, client_for, login, post, seed


def seed_users(h: Harness) -> None:
    now = utc("2026-03-01T00:00:00")
    create_user(h.project.db, *ADMIN, "admin", now)
    create_user(h.project.db, *VIEWER, "viewer", now)


@pytest.fixture
def shop(sqlite_harness: Harness) -> Harness:
    seed(sqlite_harness)
    return sqlite_harness


@pytest.fixture
def client(shop: Harness) -> Iterator[TestClient]:
    with client_for(shop) as c:
        yield c


@pytest.mark.parametrize("who", [ADMIN, VIEWER])
def test_the_customer_page_says_why_a_journey_did_not_start(client: TestClient, who) -> None:
    login(client, who)
    page = client.get("/admin/customers/c3").text
    assert "Not enrolled" in page
    assert "no item of the order meets the item condition: item.warranty_months" in page
    data = client.get("/api/admin/customers/c3").json()
    assert {(n["journey"], n["reason"], n["expression"]) for n in data["not_enrolled"]} >= {
        ("extended_warranty", "item_condition", "item.warranty_months"),
        ("inspection_invitation", "item_condition", "item.inspection_interval_days"),
    }


def test_the_customer_page_shows_times_in_the_customers_zone_with_utc_on_hover(
    client: TestClient, shop: Harness
) -> None:
    login(client, VIEWER)
    page = client.get("/admin/customers/c1").text
    assert "times in Europe/Berlin (the project's zone), UTC on hover" in page
    sent = [m for m in shop.messages(customer_id="c1") if m.sent_at][0].sent_at
    local = sent.astimezone(ZoneInfo("Europe/Berlin"))
    assert f'title="{sent:%Y-%m-%d %H:%M} UTC">{local:%Y-%m-%d %H:%M}</time>' in page
    assert local.utcoffset() and f"{local:%H:%M}" != f"{sent:%H:%M}"


def test_a_link_switches_the_customer_page_to_utc_and_back(
    client: TestClient, shop: Harness
) -> None:
    login(client, VIEWER)
    local_page = client.get("/admin/customers/c1").text
    assert 'id="zone-toggle" href="?times=utc">show in UTC</a>' in local_page
    page = client.get("/admin/customers/c1", params={"times": "utc"}).text
    assert "times in UTC, Europe/Berlin (the project's zone) on hover" in page
    sent = [m for m in shop.messages(customer_id="c1") if m.sent_at][0].sent_at
    local = sent.astimezone(ZoneInfo("Europe/Berlin"))
    assert f'title="{local:%Y-%m-%d %H:%M} Europe/Berlin">{sent:%Y-%m-%d %H:%M}</time>' in page
    assert 'href="?times=local">show in Europe/Berlin</a>' in page
    odd = client.get("/admin/customers/c1", params={"times": "mars"}).text
    assert "no times &#39;mars&#39;; choose one of: local, utc" in odd
    assert f'title="{sent:%Y-%m-%d %H:%M} UTC">{local:%Y-%m-%d %H:%M}</time>' in odd


@pytest.mark.parametrize(
    ("query", "lands_on"),
    [
        ("c2", "/admin/customers/c2"),  # an id
        ("Schmi", "/admin/customers/c1"),  # the start of a last name, any case
        ("anna schmidt", "/admin/customers/c1"),  # first and last name
        ("bernd@", "/admin/customers/c2"),  # the start of an address
        ("0049 170 998", "/admin/customers/c2"),  # a number as people write it
        ("+4915112", "/admin/customers/c1"),
    ],
)
def test_search_lands_on_the_customer(client: TestClient, query: str, lands_on: str) -> None:
    login(client, VIEWER)  # viewers may search by contacts they were told
    answer = client.get("/admin/search", params={"q": query})
    assert answer.status_code == 303 and answer.headers["location"] == lands_on


def test_search_lists_several_and_says_when_nothing_matches(client: TestClient) -> None:
    login(client, VIEWER)
    page = client.get("/admin/search", params={"q": "c"})
    assert page.status_code == 200
    for customer in ("c1", "c2", "c3"):
        assert f'href="/admin/customers/{customer}"' in page.text
    assert "Anna Schmidt" in page.text  # names shown to viewers, contacts masked
    assert "anna@example.com" not in page.text and "a***@example.com" in page.text
    nothing = client.get("/admin/search", params={"q": "zz-nobody"})
    assert nothing.status_code == 200 and "No customer matches" in nothing.text


def test_browsers_get_a_page_for_what_is_not_there(client: TestClient) -> None:
    login(client, ADMIN)
    for path in ("/admin/customers/k99", "/admin/nope"):
        page = client.get(path, headers={"accept": "text/html"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert 'action="/admin/search"' in page.text
    assert "no customer &#39;k99&#39;" in client.get("/admin/customers/k99").text
    api = client.get("/api/admin/customers/k99", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.json() == {"detail": "no customer 'k99'"}
    assert client.get("/").headers["location"] == "/admin/"
    assert client.get("/favicon.ico", follow_redirects=True).status_code == 200


def sent(shop: Harness, customer: str, channel: str) -> Any:
    return next(
        m for m in shop.messages(customer_id=customer, channel=channel) if m.status == "sent"
    )


def test_each_message_keeps_its_subject_and_an_admin_opens_what_went_out(
    client: TestClient, shop: Harness
) -> None:
    email = sent(shop, "c1", "email")
    assert email.subject  # stored when it was rendered
    out = next(m for m in shop.email.sent if m.message_id == str(email.id))
    assert out.subject == email.subject
    login(client, ADMIN)
    page = client.get("/admin/customers/c1").text
    assert f"“{email.subject}”" in page.replace("&#34;", '"')
    assert f'href="/admin/messages/{email.id}"' in page
    opened = client.get(f"/admin/messages/{email.id}")
    assert opened.status_code == 200 and email.subject in opened.text
    framed = client.get(f"/admin/messages/{email.id}/sent.html")
    assert framed.status_code == 200
    assert "sandbox" in framed.headers["content-security-policy"]
    assert framed.text == out.body_html  # rendered again, exactly as it went out
    sms = sent(shop, "c1", "sms")
    assert sms.subject is None
    sms_out = next(m for m in shop.sms.sent if m.message_id == str(sms.id))
    assert sms_out.body_text in client.get(f"/admin/messages/{sms.id}").text.replace("&#39;", "'")
    planned = next(m for m in shop.messages(customer_id="c1") if m.status == "planned")
    assert client.get(f"/admin/messages/{planned.id}").status_code == 404


def test_viewers_see_the_subject_only(client: TestClient, shop: Harness) -> None:
    email = sent(shop, "c1", "email")
    login(client, VIEWER)
    page = client.get("/admin/customers/c1").text
    assert email.subject in page.replace("&#34;", '"')
    assert "/admin/messages/" not in page
    assert client.get(f"/admin/messages/{email.id}").status_code == 403
    assert client.get(f"/admin/messages/{email.id}/sent.html").status_code == 403


def chart_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', page)
    assert found is not None
    return json.loads(found.group(1))


def test_the_dashboard_shows_a_custom_range_of_days(client: TestClient, shop: Harness) -> None:
    login(client, VIEWER)
    page = client.get("/admin/", params={"from": "2026-01-05", "to": "2026-01-11"}).text
    assert "2026-01-05 to 2026-01-11 (7 days)" in page and 'id="period-range"' in page
    data = chart_data(page)
    assert data["days"][0] == "2026-01-05" and data["days"][-1] == "2026-01-11"
    drawn = sum(sum(counts) for per in data["per_day"].values() for counts in per.values())
    decided = [m for m in shop.messages() if m.status != "planned"
               and "2026-01-05" <= f"{m.sent_at or m.due_at:%Y-%m-%d}" <= "2026-01-11"]  # fmt: skip
    assert decided and drawn == len(decided)
    later = chart_data(client.get("/admin/?from=2026-02-01&to=2026-02-28").text)
    assert len(later["days"]) == 28 and later["days"][0] == "2026-02-01"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (
            {"from": "2026-13-01", "to": "2026-02-01"},
            "&#39;from&#39; is not a day: &#39;2026-13-01&#39;; write it as YYYY-MM-DD.",
        ),
        ({"from": "2026-02-01", "to": "yesterday"}, "&#39;to&#39; is not a day"),
        (
            {"from": "2026-02-10", "to": "2026-02-01"},
            "The range starts (2026-02-10) after it ends (2026-02-01).",
        ),
        ({"from": "2026-02-01", "to": "2026-04-01"}, "The range ends after today (2026-03-01)"),
        ({"from": "2026-02-01"}, "A range needs both days: &#39;to&#39; is missing"),
        ({"from": "2020-01-01", "to": "2026-02-01"}, "A range covers at most 366 days."),
    ],
)
def test_a_bad_range_says_what_is_wrong_and_shows_the_last_30_days(
    client: TestClient, query: dict[str, str], says: str
) -> None:
    login(client, VIEWER)
    response = client.get("/admin/", params=query)
    assert response.status_code == 200 and says in response.text
    assert "last 30 days" in response.text and len(chart_data(response.text)["days"]) == 30


def test_the_dashboard_period_upcoming_sends_and_no_dispatcher_card_when_simulated(
    client: TestClient, shop: Harness
) -> None:
    login(client, VIEWER)
    page = client.get("/admin/", params={"days": 7}).text
    assert "last 7 days" in page and 'aria-current="page">7 days' in page
    assert len(chart_data(page)["days"]) == 7
    assert len(chart_data(client.get("/admin/?days=90").text)["days"]) == 90
    wrong = client.get("/admin/?days=5")
    assert wrong.status_code == 200 and "No period of 5 days: choose 7, 30, 90." in wrong.text
    assert "Dispatchers alive" not in page and "simulated clock" in page  # a simulated shop
    upcoming = chart_data(page)["upcoming"]
    planned = [
        m
        for m in shop.messages(status="planned")
        if m.due_at < utc("2026-03-31T00:00:00") and m.due_at >= utc("2026-03-01T00:00:00")
    ]
    assert planned
    assert sum(sum(counts) for counts in upcoming["series"].values()) == len(planned)
    first = planned[0]
    assert f"{first.journey_id} · {first.channel}" in upcoming["series"]
    assert 'id="upcoming"' in page


def test_the_dashboard_says_when_there_is_nothing_to_draw(make_harness) -> None:
    h = make_harness()
    try:
        seed_users(h)
        with client_for(h) as client:
            login(client, ADMIN)
            page = client.get("/admin/").text
        assert "No messages decided in these 30 days." in page
        assert "No cap hits or deferrals in these 30 days." in page
        assert "Nothing is planned for the next 30 days." in page
        assert "<canvas" not in page
        assert "Dispatchers alive" in page  # a project on the real clock
    finally:
        h.project.close()


def test_pause_and_resume_ask_first(client: TestClient) -> None:
    login(client, ADMIN)
    page = client.get("/admin/journeys/thank_you").text
    assert 'data-confirm="Pause Thank you? Nobody new is enrolled' in page


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"status": "sennt"}, "no status &#39;sennt&#39;; choose one of: planned, sending, sent"),
        (
            {"journey": "nope"},
            "choose one of: complaint_followup, extended_warranty, inspection_invitation",
        ),
        ({"journey": "thank_you", "step": "nope"}, "no step &#39;nope&#39;; choose one of: thanks"),
        ({"customer": "k99"}, "no customer &#39;k99&#39;"),
        ({"channel": "fax"}, "choose one of: email, sms"),
    ],
)
def test_the_log_names_the_valid_choices_for_unknown_values(
    client: TestClient, query: dict[str, str], named: str
) -> None:
    login(client, VIEWER)
    page = client.get("/admin/log", params=query).text
    assert named in page and "No messages match this filter." not in page


def test_the_log_says_no_messages_when_known_values_match_none(client: TestClient) -> None:
    login(client, VIEWER)
    page = client.get("/admin/log", params={"journey": "thank_you", "status": "bounced"}).text
    assert "No decided messages match this filter." in page and "filter-problem" not in page


def test_erasure_blanks_the_subjects_that_greet_the_customer(
    client: TestClient, shop: Harness
) -> None:
    assert "Anna" in sent(shop, "c1", "email").subject
    token = login(client, ADMIN)
    assert post(client, "/admin/customers/c1/erase", token, confirm="c1").status_code == 303
    assert all(m.subject is None for m in shop.messages(customer_id="c1"))
    assert any(m.subject for m in shop.messages(customer_id="c2"))

"""SMS links go out short: the web app redirects to the full link and records the click."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import Harness, utc
from tests.integration.test_webhooks import WEB_TOML, Web, sold

SHORT = re.compile(r"http://testserver(/l/\S+)")


@pytest.fixture
def reminder(web: Web):
    """The warranty reminder SMS, sent, and the path of its short link."""
    sold(web.h)  # a three-month warranty: the SMS goes out 14 days before it ends
    web.h.simulate(utc("2026-04-01T00:00:00"))
    (message,) = web.h.messages(journey_id="extended_warranty", channel="sms")
    assert message.status == "sent"
    (sms,) = web.h.sms.sent
    match = SHORT.search(sms.body_text)
    assert match, sms.body_text
    return message, match.group(1)


def test_the_sms_carries_a_short_link_and_the_log_the_full_one(web: Web, reminder) -> None:
    message, path = reminder
    (sms,) = web.h.sms.sent
    assert "utm_" not in sms.body_text
    assert message.details["segments"] == 1
    [full] = message.details["links"]
    query = parse_qs(urlsplit(full).query)
    assert (query["utm_medium"], query["utm_campaign"]) == (["sms"], ["extended_warranty"])


def test_following_it_redirects_and_records_the_first_click(web: Web, reminder) -> None:
    message, path = reminder
    assert message.clicked_at is None

    first = web.client.get(path, follow_redirects=False)
    (clicked,) = web.h.messages(id=message.id)
    again = web.client.get(path, follow_redirects=False)
    (still,) = web.h.messages(id=message.id)

    assert first.status_code == again.status_code == 302
    assert first.headers["location"] == message.details["links"][0]
    assert clicked.clicked_at is not None
    assert still.clicked_at == clicked.clicked_at  # the first click counts


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p[:-1] + ("A" if p[-1] != "A" else "B"),  # a forged or mistyped MAC
        lambda p: p + ".1",  # a link the message does not have
        lambda p: "/l/zzzz." + p.split(".", 1)[1],  # another message's id
        lambda p: "/l/nonsense",
    ],
)
def test_a_bad_link_leads_to_the_shop_and_records_nothing(web: Web, reminder, change) -> None:
    message, path = reminder
    response = web.client.get(change(path), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == web.h.project.settings.shop_url
    (unchanged,) = web.h.messages(id=message.id)
    assert unchanged.clicked_at is None


@pytest.mark.parametrize(
    "agent",
    [
        "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # iMessage's link preview
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ],
)
def test_a_link_preview_is_redirected_but_not_counted_as_a_click(
    web: Web, reminder, agent: str
) -> None:
    message, path = reminder
    preview = web.client.get(path, headers={"User-Agent": agent}, follow_redirects=False)
    (unclicked,) = web.h.messages(id=message.id)
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    web.client.get(path, headers={"User-Agent": phone}, follow_redirects=False)
    (clicked,) = web.h.messages(id=message.id)

    assert preview.headers["location"] == message.details["links"][0]
    assert unclicked.clicked_at is None
    assert clicked.clicked_at is not None


def test_the_customer_timeline_shows_the_click(web: Web, reminder) -> None:
    from rich.console import Console

    from aftersale.sendlog import customer_timeline
    from aftersale.views import print_timeline

    def timeline() -> str:
        console = Console(record=True, width=200)
        with web.h.project.db.connect() as conn:
            print_timeline(console, customer_timeline(conn, "c1"), "Europe/Berlin")
        return next(line for line in console.export_text().splitlines() if "reminder_sms" in line)

    before = timeline()
    web.client.get(reminder[1], follow_redirects=False)
    assert "sent" in before and "clicked" not in before
    assert timeline().endswith("sent · clicked")


def test_short_links_can_be_switched_off(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(toml=WEB_TOML + "\n[sms]\nshort_links = false\n")
    try:
        sold(h)
        h.simulate(utc("2026-04-01T00:00:00"))
        (sms,) = h.sms.sent
        (message,) = h.messages(journey_id="extended_warranty", channel="sms")
    finally:
        h.project.close()
    assert "/l/" not in sms.body_text and "utm_medium=sms" in sms.body_text
    assert "links" not in message.details


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ({"sms_provider": "twilio", "public_url": "http://127.0.0.1:8000"}, True),
        ({"sms_provider": "twilio", "public_url": "http://localhost:8000/"}, True),
        ({"sms_provider": "twilio", "public_url": "https://after.shop.example"}, False),
        ({"sms_provider": "twilio", "public_url": "http://[::1]:8000", "sms_short_links": False},
         False),
        ({"sms_provider": "outbox", "public_url": "http://127.0.0.1:8000"}, False),
    ],
)  # fmt: skip
def test_run_warns_when_customers_could_not_reach_sms_links(
    make_harness: Callable[..., Harness], settings: dict, warned: bool
) -> None:
    h = make_harness()
    try:
        h.project.settings = h.project.settings.model_copy(update=settings)
        warnings = h.project.warnings()
    finally:
        h.project.close()
    assert bool(warnings) is warned
    if warned:
        assert "AFTERSALE_PUBLIC_URL" in warnings[0] and settings["public_url"] in warnings[0]

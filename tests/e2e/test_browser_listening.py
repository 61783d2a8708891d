"""Listening in Chromium: the alerts page names the spiked SKU with its trend chart, the
dashboard counts alerts and the customers who need attention, and a customer's page shows
what they are worth. Screenshots at 1366 and 390 px are kept under ``docs/screenshots``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from aftersale.accounts import create_user
from aftersale.web import create_app
from campaigns.models import Event
from campaigns.ratings import rating_token
from tests.conftest import POLICY_TOML, Harness, item, purchase, utc
from tests.e2e.test_browser_admin import log_in, require_chromium
from tests.e2e.test_browser_support import no_sideways_scroll, page, shot
from tests.integration.admin_data import ADMIN
from tests.integration.listening_data import NOW, SPIKED, seed_listening
from tests.integration.live_server import ConsoleServer

__all__ = ["page"]
pytestmark = pytest.mark.browser


@pytest.fixture
def listening_console(make_harness: Callable[..., Harness]) -> Iterator[str]:
    require_chromium()
    h = make_harness(toml=POLICY_TOML + "\n[session]\nsecure_cookie = false\n",
                     builtin_journeys=False)  # fmt: skip
    seed_listening(h)
    create_user(h.project.db, *ADMIN, "admin", NOW)
    with ConsoleServer(create_app(h.project)) as server:
        yield server.url
    h.project.close()


def test_the_alerts_page_names_the_spike_and_who_needs_attention(listening_console, page):
    url = listening_console
    blocked: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    log_in(page, url, ADMIN)
    page.click("nav >> text=Alerts")
    page.wait_for_url("**/admin/alerts", wait_until="load")
    rows = page.locator("tr.alert-row")
    names = {rows.nth(n).locator("code").inner_text() for n in range(rows.count())}
    assert SPIKED in names and not names & {"WM-1", "TR-2", "GS-3"}
    page.wait_for_function("document.querySelectorAll('#trends canvas').length >= 1")
    assert f"sku {SPIKED} — alert" in page.inner_text("#trends")
    assert "s0" in page.inner_text("#attention")
    page.wait_for_timeout(300)
    shot(page, "alerts")
    no_sideways_scroll(page)
    assert blocked == []

    page.goto(f"{url}/admin/")
    assert page.inner_text("#alerts-card strong") != "0"
    assert page.inner_text("#attention-card strong") == "1"

    page.goto(f"{url}/admin/customers/s0")
    value = page.inner_text("article.value")
    assert "1 of 5" in value and "unsatisfied" in value
    page.locator("article.value").scroll_into_view_if_needed()
    shot(page, "customer-value")
    no_sideways_scroll(page)


@pytest.fixture
def rating_link(make_harness: Callable[..., Harness]) -> Iterator[tuple[Harness, str, str]]:
    """The follow-up e-mail after c1's resolved complaint went out; its link that rates 2."""
    require_chromium()
    h = make_harness()
    h.customers([{"id": "c1", "email": "anna@example.org", "first_name": "Anna"}])
    h.events([
        purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item("WM-1")),
        {"id": "k1", "type": "complaint_opened", "customer": "c1",
         "at": "2026-01-20T10:00:00+01:00", "sku": "WM-1", "reason": "undicht"},
        {"id": "k2", "type": "complaint_resolved", "customer": "c1",
         "at": "2026-01-22T10:00:00+01:00"},
    ])  # fmt: skip
    h.simulate(utc("2026-01-27T00:00:00"))
    (message,) = h.messages(journey_id="complaint_followup")
    token = rating_token(h.project.signing_keys().key("ratings"), message.id, "c1")
    with ConsoleServer(create_app(h.project)) as server:
        yield h, server.url, f"/rate/{token}/2"
    h.project.close()


def test_a_rating_link_asks_before_it_rates_and_then_takes_a_comment(rating_link, page):
    h, url, link = rating_link
    page.goto(url + link)
    assert "Ihre Bewertung: 2 von 5" in page.inner_text("h1")
    shot(page, "rating-confirm")
    no_sideways_scroll(page)
    page.click("button[type=submit]")
    page.wait_for_selector("textarea[name=comment]")
    page.fill("textarea[name=comment]", "Der Techniker kam zu spät.")
    shot(page, "rating-thanks")
    page.click("button[type=submit]")
    assert "Vielen Dank" in page.inner_text("h1")
    with h.project.db.connect() as conn:
        (payload,) = conn.execute(
            sa.select(Event.__table__.c.payload).where(
                Event.__table__.c.type == "satisfaction_rated"
            )
        ).scalars()
    assert payload["value"] == 2 and payload["comment"] == "Der Techniker kam zu spät."
    page.goto(url + link)
    assert "bereits verwendet" in page.inner_text("h1")

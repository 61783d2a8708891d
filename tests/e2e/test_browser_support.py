"""Support in Chromium: find a customer from the header box, read why a journey did not
start and when each message went out in the customer's zone, land on a page for what is
not there. Screenshots at 1366 and 390 px are kept under ``docs/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import item, purchase, utc
from tests.e2e.test_browser_admin import ARGS, CHROMIUM, console, log_in, require_chromium
from tests.integration.admin_data import ADMIN, VIEWER

__all__ = ["console"]  # the fixture, shared with the console's other browser tests
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDTHS = {"desktop": 1366, "mobile": 390}
pytestmark = pytest.mark.browser


@pytest.fixture(params=list(WIDTHS))
def page(request: pytest.FixtureRequest) -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    DOCS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": WIDTHS[request.param], "height": 900})
        page = context.new_page()
        page.width_name = request.param  # type: ignore[attr-defined]
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(DOCS / f"{name}-{page.width_name}.png"), full_page=True)


def no_sideways_scroll(page) -> None:
    """Nothing wider than the window: the page never scrolls sideways."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_search_opens_the_customer_who_shows_why_not_and_local_times(console, page) -> None:
    _, url = console
    log_in(page, url, VIEWER)
    page.fill("form.find input[name=q]", "schmi")
    page.press("form.find input[name=q]", "Enter")
    page.wait_for_url("**/admin/customers/c1", wait_until="load")
    assert "Anna Schmidt" in page.inner_text("h1")  # a viewer sees the name
    assert "a***@example.com" in page.content()  # and the address masked
    zone = page.inner_text(".pagehead .zone")
    assert "times in Europe/Berlin" in zone
    first = page.locator("ol.timeline time").first
    assert first.get_attribute("title").endswith(" UTC")
    assert first.get_attribute("title") != first.inner_text() + " UTC"  # local, not UTC
    shot(page, "customer")
    no_sideways_scroll(page)

    page.goto(f"{url}/admin/customers/c3")
    assert page.locator("table.not-enrolled tbody tr").count() >= 2
    assert "no item of the order meets the item condition" in page.inner_text("table.not-enrolled")
    page.locator("table.not-enrolled").scroll_into_view_if_needed()
    shot(page, "customer-not-enrolled")


def test_search_lists_several_and_a_missing_page_offers_the_search(console, page) -> None:
    _, url = console
    log_in(page, url, ADMIN)
    page.fill("form.find input[name=q]", "c")
    page.press("form.find input[name=q]", "Enter")
    page.wait_for_url("**/admin/search?q=c", wait_until="load")
    assert page.locator("table.search-results tbody tr").count() == 3
    shot(page, "search")
    no_sideways_scroll(page)
    page.click("text=c2")
    page.wait_for_url("**/admin/customers/c2", wait_until="load")

    answer = page.goto(f"{url}/admin/customers/k99")
    assert answer.status == 404
    assert "no customer 'k99'" in page.inner_text("article.notfound")
    shot(page, "not-found")
    no_sideways_scroll(page)
    page.fill("article.notfound input[name=q]", "bernd")
    page.press("article.notfound input[name=q]", "Enter")
    page.wait_for_url("**/admin/customers/c2", wait_until="load")


def test_an_admin_opens_the_email_that_went_out(console, page) -> None:
    _, url = console
    blocked: list[str] = []  # the Content-Security-Policy must not stop anything of ours
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    log_in(page, url, ADMIN)
    page.goto(f"{url}/admin/customers/c1")
    subject = page.locator("ol.timeline .subject").first.inner_text()
    page.locator("ol.timeline a.open-sent").first.click()
    page.wait_for_url("**/admin/messages/*", wait_until="load")
    assert page.inner_text("dd.subject") in subject
    frame = page.frame_locator("iframe.sent-html")
    assert "Anna" in frame.locator("body").inner_text()
    shot(page, "sent-email")
    no_sideways_scroll(page)
    assert blocked == []


def test_dashboard_periods_charts_and_a_pause_that_asks_first(console, page) -> None:
    h, url = console
    blocked: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    log_in(page, url, ADMIN)
    page.click(".periods >> text=90 days")
    page.wait_for_url("**/admin/?days=90", wait_until="load")
    page.wait_for_selector("canvas#upcoming")
    assert page.locator("canvas").count() == 2  # messages and upcoming sends
    assert "No cap hits or deferrals in these 90 days." in page.inner_text("main")
    assert page.locator("#dispatchers-card").count() == 0  # a simulated shop has none
    assert "last 90 days" in page.inner_text(".pagehead")
    page.wait_for_timeout(300)
    shot(page, "dashboard")
    no_sideways_scroll(page)
    assert blocked == []

    page.goto(f"{url}/admin/journeys/loyalty_offer")
    questions: list[str] = []

    def answer(dialog, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("button:has-text('Pause journey')")
    page.wait_for_timeout(300)
    assert page.inner_text("#journey-state") == "active"  # "no" changed nothing
    page.once("dialog", lambda d: answer(d, True))
    page.click("button:has-text('Pause journey')")
    page.wait_for_selector("button:has-text('Resume journey')")
    assert page.inner_text("#journey-state") == "paused"
    assert questions[0].startswith("Pause Loyalty offer?")
    no_sideways_scroll(page)
    for path in ("/admin/log", "/admin/journeys", "/admin/journeys/thank_you"):
        page.goto(f"{url}{path}")
        no_sideways_scroll(page)


def test_long_names_and_ids_never_widen_the_page(console, page) -> None:
    """A product name without a break and an order id of a hundred digits wrap in the
    timeline or scroll inside their card; the page stays the window's width."""
    h, url = console
    name = "Geschirrspülmaschinenersatzteilpaket" * 5
    h.customers([{"id": "long1", "email": "long@example.com", "first_name": "Maximilian-"
                  "Alexander-Friedrich-Wilhelm", "last_name": "Müller-Lüdenscheidt"}])  # fmt: skip
    h.events([purchase("long-e1", "long1", "2026-03-01T10:00:00+01:00", "ORDER-" + "9" * 100,
                       item(name=name, warranty_months=24, inspection_interval_days=30))])  # fmt: skip
    h.simulate(utc("2026-03-03T00:00:00"))
    log_in(page, url, ADMIN)
    page.goto(f"{url}/admin/customers/long1")
    assert name in page.content() and "9" * 100 in page.content()
    no_sideways_scroll(page)
    shot(page, "customer-long-names")
    page.goto(f"{url}/admin/log?customer=long1")
    assert "long1" in page.inner_text("main")
    no_sideways_scroll(page)

"""Listening in Chromium: the alerts page names the spiked SKU with its trend chart, the
dashboard counts alerts and the customers who need attention, and a customer's page shows
what they are worth. Screenshots at 1366 and 390 px are kept under ``docs/screenshots``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from aftersale.accounts import create_user
from aftersale.web import create_app
from tests.conftest import POLICY_TOML, Harness
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

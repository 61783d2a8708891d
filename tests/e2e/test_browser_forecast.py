"""The forecast page in Chromium: run a forecast from the form and see its three charts,
drawn by the page's own script under the console's Content-Security-Policy, with the project
left as it was. Screenshots at 1366 and 390 px are kept under ``docs/``."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser_admin import log_in
from tests.e2e.test_browser_support import console, no_sideways_scroll, page, shot
from tests.integration.admin_data import VIEWER

__all__ = ["console", "page"]
pytestmark = pytest.mark.browser


def test_a_forecast_runs_from_the_form_and_shows_charts(console, page) -> None:
    h, url = console
    blocked: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    clock = h.project.simulated_now()
    log_in(page, url, VIEWER)
    page.click("nav a[href='/admin/forecast']")
    page.wait_for_url("**/admin/forecast")
    page.fill("input[name=until]", "2026-12-31")
    page.click("form.forecast-form button[type=submit]")
    page.wait_for_url("**/admin/forecast?until=2026-12-31")
    page.wait_for_function("document.querySelectorAll('canvas').length == 3")
    drawn = page.evaluate(
        "[...document.querySelectorAll('canvas')].map((c) => Chart.getChart(c).data.datasets.length)"
    )
    assert all(n > 0 for n in drawn)
    assert int(page.inner_text(".cards .card strong")) > 0  # messages sent
    assert "0 unsatisfied" in page.inner_text(".cards")  # customers resting, by reason
    page.wait_for_timeout(300)
    shot(page, "forecast")
    no_sideways_scroll(page)
    assert blocked == []
    assert h.project.simulated_now() == clock  # the project's clock did not move


def test_a_date_before_the_clock_is_refused_on_the_page(console, page) -> None:
    _, url = console
    log_in(page, url, VIEWER)
    page.goto(f"{url}/admin/forecast?until=2026-01-01")
    assert "not after the project's clock" in page.inner_text("p.alert")
    assert page.locator("canvas").count() == 0

"""The send log's views, the customer page in UTC and the dashboard's range, in Chromium.

Screenshots at 1366 and 390 px are kept under ``docs/screenshots``.
"""

from __future__ import annotations

import sqlalchemy as sa

from campaigns.models import Message
from tests.e2e.test_browser_admin import log_in
from tests.e2e.test_browser_support import console, no_sideways_scroll, page, shot
from tests.integration.admin_data import VIEWER

__all__ = ["console", "page"]  # fixtures
messages_t = Message.__table__


def _ids(page) -> list[int]:
    return [int(t) for t in page.locator("table.log tbody tr td:first-child").all_inner_texts()]


def _csp_watch(page) -> list[str]:
    blocked: list[str] = []  # the Content-Security-Policy must not stop anything of ours
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    return blocked


def test_the_log_shows_the_latest_decision_first_and_upcoming_apart(console, page) -> None:
    h, url = console
    blocked = _csp_watch(page)
    m = messages_t.c
    with h.project.db.connect() as conn:
        decided = list(conn.execute(
            sa.select(m.id).where(m.status != "planned")
            .order_by(m.updated_at.desc(), m.id.desc()).limit(50)
        ).scalars())  # fmt: skip
        planned = list(conn.execute(
            sa.select(m.id).where(m.status == "planned").order_by(m.due_at, m.id).limit(50)
        ).scalars())  # fmt: skip
    log_in(page, url, VIEWER)
    page.goto(f"{url}/admin/log")
    assert _ids(page) == decided
    assert "latest decision first" in page.inner_text(".pagehead")
    shot(page, "log")
    no_sideways_scroll(page)

    page.click("#log-views >> text=Upcoming")
    page.wait_for_url("**/admin/log?view=upcoming", wait_until="load")
    assert _ids(page) == planned
    assert set(page.locator("table.log tbody .badge").all_inner_texts()) == {"planned"}
    # A filter keeps the view it was set in.
    page.fill("#log-filter input[name=journey]", "extended_warranty")
    page.click("#log-filter button[type=submit]")
    page.wait_for_url("**/admin/log?*view=upcoming*", wait_until="load")
    journeys = page.locator("table.log tbody tr td:nth-child(3)").all_inner_texts()
    assert journeys and set(journeys) == {"extended_warranty"}
    shot(page, "log-upcoming")
    no_sideways_scroll(page)

    page.goto(f"{url}/admin/log?view=later")
    assert "choose one of: decided, upcoming" in page.inner_text("table.log")
    assert blocked == []


def test_the_customer_page_switches_to_utc_and_back(console, page) -> None:
    _, url = console
    blocked = _csp_watch(page)
    log_in(page, url, VIEWER)
    page.goto(f"{url}/admin/customers/c1")
    first = page.locator("ol.timeline time").first
    local_text, utc_title = first.inner_text(), first.get_attribute("title")
    assert utc_title.endswith(" UTC")
    page.click("#zone-toggle")
    page.wait_for_url("**/admin/customers/c1?times=utc", wait_until="load")
    assert "times in UTC" in page.inner_text(".pagehead .zone")
    first = page.locator("ol.timeline time").first
    assert first.inner_text() + " UTC" == utc_title  # the time itself now reads in UTC
    assert first.get_attribute("title") == f"{local_text} Europe/Berlin"
    shot(page, "customer-utc")
    no_sideways_scroll(page)
    page.click("#zone-toggle")
    page.wait_for_url("**/admin/customers/c1?times=local", wait_until="load")
    assert page.locator("ol.timeline time").first.inner_text() == local_text
    assert blocked == []


def test_the_dashboard_draws_a_custom_range_and_refuses_a_bad_one(console, page) -> None:
    _, url = console
    blocked = _csp_watch(page)
    log_in(page, url, VIEWER)
    page.fill("#period-range input[name=from]", "2026-01-05")
    page.fill("#period-range input[name=to]", "2026-01-25")
    page.click("#period-range button[type=submit]")
    page.wait_for_url("**/admin/?from=2026-01-05&to=2026-01-25", wait_until="load")
    assert page.inner_text("#period-label") == "2026-01-05 to 2026-01-25 (21 days)"
    page.wait_for_selector("canvas#perDay")
    page.wait_for_timeout(300)
    shot(page, "dashboard-range")
    no_sideways_scroll(page)

    page.fill("#period-range input[name=from]", "2026-02-20")
    page.fill("#period-range input[name=to]", "2026-02-01")
    page.click("#period-range button[type=submit]")
    page.wait_for_url("**/admin/?from=2026-02-20&to=2026-02-01", wait_until="load")
    assert "The range starts (2026-02-20) after it ends (2026-02-01)." in page.inner_text("main")
    assert page.inner_text("#period-label") == "last 30 days"
    assert blocked == []

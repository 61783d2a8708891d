"""The admin console in Chromium: log in, filter the send log, open a customer, pause a journey.

Screenshots land in ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aftersale.admin.testing import ConsoleServer
from aftersale.web import create_app
from campaigns.models import JourneyState
from tests.conftest import CI, POLICY_TOML, Harness
from tests.integration.admin_data import ADMIN, VIEWER, seed

CHROMIUM = Path(os.environ.get("AFTERSALE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.browser


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if CI:
        pytest.fail(f"CI=true makes browser tests mandatory, but {CHROMIUM} is missing "
                    "(apt-get install -y chromium)")  # fmt: skip
    pytest.skip(f"Chromium not found at {CHROMIUM}; install it to run browser tests")


@pytest.fixture
def console(make_harness: Callable[..., Harness]) -> Iterator[tuple[Harness, str]]:
    require_chromium()
    # The server speaks plain HTTP on loopback, so the session cookie may not be Secure-only.
    h = make_harness(toml=POLICY_TOML + "\n[session]\nsecure_cookie = false\n")
    seed(h)
    with ConsoleServer(create_app(h.project)) as server:
        yield h, server.url
    h.project.close()


@pytest.fixture
def page() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        yield context.new_page()
        browser.close()


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def log_in(page, url: str, user: tuple[str, str]) -> None:
    page.goto(f"{url}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=username]", user[0])
    page.fill("input[name=password]", user[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/admin/")


def test_admin_logs_in_filters_opens_a_customer_and_pauses_a_journey(console, page) -> None:
    h, url = console
    blocked: list[str] = []  # the Content-Security-Policy must not stop anything of ours
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    page.goto(f"{url}/admin/login")
    shot(page, "login")
    log_in(page, url, ADMIN)
    page.wait_for_function("document.querySelectorAll('canvas').length == 2")
    page.wait_for_timeout(300)
    shot(page, "dashboard")
    assert blocked == []

    page.click("text=Send log")
    page.fill("#log-filter input[name=journey]", "thank_you")
    page.select_option("#log-filter select[name=status]", "sent")
    page.click("#log-filter button[type=submit]")
    page.wait_for_url("**/admin/log?*journey=thank_you*", wait_until="load")
    page.wait_for_selector("table.log tbody tr")
    rows = page.locator("table.log tbody tr")
    assert rows.count() == 4
    assert set(page.locator("table.log tbody tr td:nth-child(3)").all_inner_texts()) == {
        "thank_you"
    }
    shot(page, "log")

    page.click("table.log tbody tr >> nth=0 >> td:nth-child(2) a")
    page.wait_for_url("**/admin/customers/*", wait_until="load")
    assert page.locator("ol.timeline > li").count() > 0
    assert "Consent and suppression" in page.content()
    shot(page, "customer")

    page.goto(f"{url}/admin/journeys")
    shot(page, "journeys")
    page.click("text=Free inspection invitation")
    page.wait_for_url("**/admin/journeys/inspection_invitation", wait_until="load")
    page.once("dialog", lambda dialog: dialog.accept())  # "Pause …?": yes
    page.click("button:has-text('Pause journey')")
    page.wait_for_selector("button:has-text('Resume journey')")
    assert page.inner_text("#journey-state") == "paused"
    shot(page, "journey")
    with h.project.db.connect() as conn:
        states = JourneyState.__table__
        paused = conn.execute(
            sa.select(states.c.paused).where(states.c.journey_id == "inspection_invitation")
        ).scalar_one()
    assert paused


def test_viewer_sees_masked_contacts_and_no_buttons(console, page) -> None:
    _, url = console
    log_in(page, url, VIEWER)
    page.goto(f"{url}/admin/customers/c1")
    text = page.inner_text("main")
    assert "a***@example.com" in text and "+49151*****678" in text
    assert page.locator("button:has-text('Suppress')").count() == 0
    shot(page, "customer-viewer")
    page.goto(f"{url}/admin/journeys/thank_you")
    assert page.locator("button:has-text('Pause journey')").count() == 0

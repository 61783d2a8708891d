"""The preference page in Chromium: keep service e-mail and drop offers, then leave all.

The page works without scripts (the CSP allows none inline) and fits a phone; screenshots
at 1366 and 390 px are kept under ``docs/screenshots``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from aftersale.admin.testing import ConsoleServer
from aftersale.web import create_app
from campaigns.consent import preferences_url
from campaigns.models import Customer
from tests.conftest import POLICY_TOML, Harness
from tests.e2e.test_browser_admin import require_chromium
from tests.e2e.test_browser_support import no_sideways_scroll, page, shot

__all__ = ["page"]  # the fixture, one per window width


@pytest.fixture
def shop(make_harness: Callable[..., Harness]) -> Iterator[tuple[Harness, str]]:
    require_chromium()
    h = make_harness(toml=POLICY_TOML)
    h.customers([
        {"id": "c1", "email": "anna@example.org", "locale": "de", "email_consent": "yes"},
        {"id": "c2", "email": "tom@example.org", "locale": "en-US", "email_consent": "yes"},
    ])  # fmt: skip
    with ConsoleServer(create_app(h.project)) as server:
        yield h, server.url
    h.project.close()


def link(h: Harness, base: str, customer_id: str) -> str:
    return preferences_url(base, h.project.signing_keys().key("unsubscribe"), customer_id)


def customer(h: Harness, customer_id: str) -> tuple[bool, dict | None]:
    t = Customer.__table__
    with h.project.db.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == customer_id)).one()
    return row.email_consent, row.topic_consent


def test_a_customer_keeps_service_drops_offers_then_leaves_all(shop, page) -> None:
    h, base = shop
    scripts: list[str] = []
    page.on("console", lambda message: scripts.append(message.text))
    page.goto(link(h, base, "c1"))
    assert page.inner_text("h1") == "Ihre E-Mail-Einstellungen"
    assert page.locator("input[name=topic]:checked").count() == 2
    shot(page, "preferences")
    no_sideways_scroll(page)

    page.uncheck("input[value=offers]")
    page.click("text=Einstellungen speichern")
    page.wait_for_selector(".notice")
    assert page.locator("input[value=service]").is_checked()
    assert not page.locator("input[value=offers]").is_checked()
    assert customer(h, "c1") == (True, {"email:service": True, "email:offers": False})
    shot(page, "preferences-saved")

    page.click("text=Von allen abmelden")
    page.wait_for_selector("text=Sie sind abgemeldet.")
    assert customer(h, "c1")[0] is False
    shot(page, "preferences-unsubscribed")
    no_sideways_scroll(page)
    assert not [text for text in scripts if "Content Security Policy" in text]


def test_the_english_page_and_a_forged_link(shop, page) -> None:
    h, base = shop
    page.goto(link(h, base, "c2"))
    assert page.inner_text("h1") == "Your e-mail preferences"
    page.uncheck("input[value=service]")
    page.click("text=Save preferences")
    page.wait_for_selector(".notice")
    assert customer(h, "c2") == (True, {"email:service": False, "email:offers": True})
    response = page.goto(link(h, base, "c2")[:-3] + "AAA")
    assert response.status == 404
    assert customer(h, "c2")[1] == {"email:service": False, "email:offers": True}

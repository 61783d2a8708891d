"""The built-in e-mails in Chromium at a phone's width, with the longest names a shop
sends: nothing pushes the mail wider than the screen, so no one scrolls it sideways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from templates import TemplateRenderer, sample_context
from tests.e2e.test_browser_admin import ARGS, CHROMIUM, require_chromium

pytestmark = pytest.mark.browser
EMAILS = {"thank_you": False, "inspection_invite": True, "loyalty_offer": True,
          "warranty_offer": True, "complaint_followup": False}  # fmt: skip
WIDTHS = (320, 375, 600)  # the narrowest phones, a common one, a desktop client's column
# A name without a break, as a SKU-like product title or a long compound word runs.
LONG = "Geschirrspülmaschinenersatzteilpaket" * 5


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def long_names(locale: str) -> dict:
    ctx = sample_context(locale)
    ctx["customer"]["first_name"] = "Maximilian-Alexander-Friedrich-Wilhelm-Sebastian"
    ctx["item"] = item = {**ctx["item"], "name": LONG, "sku": "SKU-" + "9" * 60}
    ctx["items"] = [item]
    ctx["order"] = {**ctx["order"], "items": [item]}
    return ctx


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("name", sorted(EMAILS))
def test_an_email_with_long_names_fits_a_phone(browser, name: str, locale: str) -> None:
    email = TemplateRenderer().render_email(name, locale, long_names(locale),
                                            marketing=EMAILS[name])  # fmt: skip
    # Those about the item name it; all greet the customer by name.
    assert (LONG in email.html) is (name not in ("loyalty_offer", "complaint_followup"))
    assert "Maximilian-Alexander-Friedrich" in email.html
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.set_content(email.html)
        wide = page.evaluate("document.documentElement.scrollWidth")
        page.close()
        assert wide <= width, f"{name}.{locale} is {wide} px wide in a {width} px window"

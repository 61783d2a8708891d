"""Screenshots of the built-in German e-mails in headless Chromium (desktop and phone width).

Run: ``python docs/make_screenshots.py``; writes ``docs/<template>.de.<width>.png``.
Every request leaving the page is aborted, so nothing is fetched from the network.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Route, sync_playwright

from templates import TemplateRenderer, sample_context

OUT = Path(__file__).parent
EMAILS = {
    "thank_you": False,
    "inspection_invite": True,
    "loyalty_offer": True,
    "warranty_offer": True,
}
WIDTHS = (800, 375)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> None:
    """Render each built-in e-mail and screenshot it at desktop and phone width."""
    renderer = TemplateRenderer()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.route("**/*", lambda route: _abort(route))
            for name, marketing in EMAILS.items():
                email = renderer.render_email(name, "de", sample_context("de"), marketing=marketing)
                page.set_content(email.html)
                path = OUT / f"{name}.de.{width}.png"
                page.screenshot(path=str(path), full_page=True)
                print(path)
        browser.close()


def _abort(route: Route) -> None:
    route.abort()


if __name__ == "__main__":
    main()

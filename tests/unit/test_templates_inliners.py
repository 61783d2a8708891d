"""css-inline and premailer give the same inline styles on the built-in e-mails."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from templates import TemplateRenderer, sample_context

EMAILS = {
    "thank_you": False,
    "inspection_invite": True,
    "loyalty_offer": True,
    "warranty_offer": True,
}
_SHORT_HEX = re.compile(r"#([0-9a-f])([0-9a-f])([0-9a-f])\b")


def _normalise_value(value: str) -> str:
    value = " ".join(value.lower().split())
    value = value.replace(", ", ",").replace('"', "'")
    return _SHORT_HEX.sub(lambda m: "#" + "".join(c * 2 for c in m.groups()), value)


def _declarations(style: str) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {name.strip().lower(): _normalise_value(value) for name, value in pairs}


class _Styles(HTMLParser):
    """Every element's (tag, class, computed inline declarations) in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":  # css-inline's HTML5 parser adds it, lxml does not
            return
        found = dict(attrs)
        self.elements.append(
            (tag, found.get("class") or "", _declarations(found.get("style") or ""))
        )


def _styles(html: str) -> list[tuple[str, str, dict[str, str]]]:
    parser = _Styles()
    parser.feed(html)
    return parser.elements


@pytest.fixture(scope="module")
def renderers() -> tuple[TemplateRenderer, TemplateRenderer]:
    return TemplateRenderer(inliner="css_inline"), TemplateRenderer(inliner="premailer")


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("name", sorted(EMAILS))
def test_both_inliners_compute_the_same_styles(
    renderers: tuple[TemplateRenderer, TemplateRenderer], name: str, locale: str
) -> None:
    fast, slow = (
        r.render_email(name, locale, sample_context(locale), marketing=EMAILS[name])
        for r in renderers
    )
    fast_styles = [e for e in _styles(fast.html) if e[0] not in ("head", "style", "meta", "title")]
    slow_styles = [e for e in _styles(slow.html) if e[0] not in ("head", "style", "meta", "title")]
    assert [e[:2] for e in fast_styles] == [e[:2] for e in slow_styles]
    for fast_el, slow_el in zip(fast_styles, slow_styles, strict=True):
        assert fast_el[2] == slow_el[2], fast_el[:2]
    assert any(e[2] for e in fast_styles)  # the comparison is not vacuous
    assert (fast.subject, fast.text) == (slow.subject, slow.text)


@pytest.mark.parametrize("inliner", ["css_inline", "premailer"])
def test_responsive_rules_survive_with_important(inliner: str) -> None:
    html = (
        TemplateRenderer(inliner=inliner)
        .render_email("loyalty_offer", "de", sample_context(), marketing=True)
        .html
    )
    assert html.lstrip().lower().startswith("<!doctype html>")
    media = re.search(r"@media[^{]*\{(.*?\}\s*)\}", html, re.S)
    assert media, "the @media block was dropped"
    assert "width: 100% !important" in media.group(1).replace("100%!important", "100% !important")
    # Inlined: the container's base width is on the element itself.
    assert re.search(r'class="container"[^>]*style="[^"]*width: ?600px', html)

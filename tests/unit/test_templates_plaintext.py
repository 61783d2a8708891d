"""The generated text part reads like a person wrote it: built-in templates and edge cases."""

from __future__ import annotations

import pytest

from templates import TemplateRenderer, sample_context
from templates.plaintext import html_to_text, link_text

BUILTIN_EMAILS = ["thank_you", "inspection_invite", "loyalty_offer", "warranty_offer"]


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("template", BUILTIN_EMAILS)
def test_builtin_html_becomes_plain_prose(template: str, locale: str) -> None:
    context = sample_context(locale)
    email = TemplateRenderer().compose_email(template, locale, context, marketing=True)
    text = html_to_text(email.html)
    for noise in ("|", "---", "(<", "<mailto:", "mailto:", "](", "**", "<", ">"):
        assert noise not in text, (noise, text)
    paragraphs = text.strip().split("\n\n")
    assert len(paragraphs) >= 6 and all(p.strip() == p and p for p in paragraphs)
    assert context["customer"]["first_name"] in paragraphs[2]  # the greeting, on its own
    unsubscribe = context["links"]["unsubscribe"]
    assert any(line.endswith(f": {unsubscribe}") for line in text.replace(" · ", "\n").splitlines())
    assert "service@shop.example" in text and "tel:" not in text


def test_blocks_links_lists_and_hidden_parts() -> None:
    html = """<html><head><title>T</title><style>p{}</style></head><body>
      <div style="display:none">preheader</div>
      <h1>Hallo   Anna</h1><p>erste Zeile<br>zweite <b>Zeile</b></p><hr>
      <table><tr><td>1 × Herd</td><td>499,00 €</td></tr></table>
      <ul><li>eins</li><li>zwei</li></ul><ol><li>a</li><li>b</li></ol>
      <p><a href="https://shop.example/x">Zum Shop</a> oder
         <a href="mailto:info@shop.example?subject=Hi">info@shop.example</a> oder
         <a href="tel:+49301234567">+49 30 1234567</a></p>
      <script>alert(1)</script><!-- a comment --></body></html>"""
    assert html_to_text(html) == (
        "Hallo Anna\n\nerste Zeile\nzweite Zeile\n\n1 × Herd – 499,00 €\n\n- eins\n- zwei\n\n1. a\n2. b\n\n"
        "Zum Shop: https://shop.example/x oder info@shop.example oder +49 30 1234567\n"
    )


@pytest.mark.parametrize(
    ("text", "href", "shown"),
    [
        ("Zum Shop", "https://s.example/", "Zum Shop: https://s.example/"),
        ("https://s.example", "https://s.example/", "https://s.example/"),
        ("", "https://s.example/", "https://s.example/"),
        ("Schreiben Sie uns", "mailto:a@s.example", "Schreiben Sie uns: a@s.example"),
        ("oben", "#top", "oben"),
        ("klick", "javascript:alert(1)", "klick"),
    ],
)
def test_a_link_is_its_words_and_its_address_once(text: str, href: str, shown: str) -> None:
    assert link_text(text, href) == shown


@pytest.mark.parametrize("html", ["", "   ", "<!-- nur ein Kommentar -->"])
def test_nothing_visible_is_an_empty_text(html: str) -> None:
    assert html_to_text(html).strip() == ""

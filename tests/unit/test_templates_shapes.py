"""ShapeCache: an e-mail inlined once per shape is the e-mail inlined every time."""

from __future__ import annotations

import re
import threading

import jinja2
import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from templates import TemplateRenderer, sample_context
from templates.inlining import CssInliner, ShapeCache

ENV = jinja2.Environment(autoescape=True)
STYLE = "<style>p { color: #111; } .a { color: #a00; } .b { color: #00b; }</style>"
# Every place a printed value can stand that leaves the shape reusable.
REUSABLE = ENV.from_string(
    "<!DOCTYPE html><html><head><title>{{ v }}</title>" + STYLE + "</head><body>"
    "<!-- {{ v }} --><p>Hallo {{ v }}, {{ w }}!</p>"
    '<a href="https://shop.example/{{ v }}?x={{ w }}" title="{{ v }}">{{ w }}</a>'
    "<table><tr><td>{{ v }}</td></tr>{{ w }}</table></body></html>"
)
values = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))


def pieces(template: jinja2.Template, **variables: object) -> list[str]:
    return list(template.root_render_func(template.new_context(variables)))  # type: ignore[attr-defined]


def warm(cache: ShapeCache, template: jinja2.Template, **variables: object) -> None:
    """A shape is reused from the second time it is seen."""
    for _ in range(2):
        cache.inline(pieces(template, **variables))


@pytest.fixture(scope="module")
def inliner() -> CssInliner:
    return CssInliner()


@settings(max_examples=200, deadline=None)
@given(v=values, w=values)
def test_a_reused_shape_gives_what_inlining_the_document_gives(v: str, w: str) -> None:
    inliner = CssInliner()
    cache = ShapeCache(inliner)
    warm(cache, REUSABLE, v="Kim", w="Berlin")
    hits = cache.hits
    document = pieces(REUSABLE, v=v, w=w)
    assert cache.inline(document) == inliner.inline("".join(document))
    # Only values that are whitespace (or empty) change the shape; all others reuse it.
    if v.strip() and w.strip():
        assert cache.hits == hits + 1


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize(
    "template", ["thank_you", "inspection_invite", "loyalty_offer", "warranty_offer"]
)
def test_built_in_emails_are_the_same_with_and_without_the_cache(template, locale) -> None:
    cached = TemplateRenderer()
    uncached = TemplateRenderer()
    uncached._shapes.size = 0  # every shape forgotten at once: always inlined for real
    names = ["Kim", "A & B", 'Zoë "Z" O\'Neil', "<b>Jo</b>", "Jo\r\nAnn", "Ana\xa0Maria"]
    for name in names * 2:
        context = sample_context(locale)
        context["customer"]["first_name"] = name
        context["order"]["items"][0]["name"] = f"{name}'s Waschmaschine"
        marketing = template != "thank_you"
        a = cached.render_email(template, locale, context, marketing=marketing)
        b = uncached.render_email(template, locale, context, marketing=marketing)
        assert (a.html, a.text, a.subject) == (b.html, b.text, b.subject)
    assert cached._shapes.hits >= len(names)
    assert uncached._shapes.hits == 0


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        # The value picks the class, so the rule that applies.
        ('<p class="{{ c }}">x</p>', [{"c": "a"}, {"c": "b"}], ["#a00", "#00b"]),
        # The value is part of a style sheet.
        (
            "<style>p { color: {{ c }}; }</style><p>x</p>",
            [{"c": "#123"}, {"c": "#456"}],
            ["#123", "#456"],
        ),
        # An attribute selector reads the value.
        (
            '<style>a[href^="tel:"] { color: #0f0; }</style><a href="{{ c }}">x</a>',
            [{"c": "https://x"}, {"c": "tel:+49"}],
            [None, "#0f0"],
        ),
        # :lang() reads the lang attribute (neither inliner applies it yet; the cache must not
        # rely on that).
        (
            '<style>p:lang(en) { color: #0f0; }</style><div lang="{{ c }}"><p>x</p></div>',
            [{"c": "de"}, {"c": "en"}],
            [None, None],
        ),
        # An inline style attribute is merged with the rules.
        (
            '<p style="{{ c }}">x</p>',
            [{"c": "font-size: 3px"}, {"c": "margin: 0"}],
            ["font-size: 3px", "margin: 0"],
        ),
        # Printed markup is part of the shape.
        (
            "<div>{{ c|safe }}</div>",
            [{"c": '<p class="a">x</p>'}, {"c": '<p class="b">x</p>'}],
            ["#a00", "#00b"],
        ),
    ],
)
def test_values_that_css_can_see_are_inlined_for_real(inliner, source, variables, expected):
    template = ENV.from_string(STYLE + source)
    cache = ShapeCache(inliner)
    for _ in range(3):
        for variables_, colour in zip(variables, expected, strict=True):
            document = pieces(template, **variables_)
            html = cache.inline(document)
            assert html == inliner.inline("".join(document))
            if colour is not None:
                assert colour in html
    assert cache.hits == 0


class _LosingInliner:
    """An inliner that drops every paragraph's text after its first word."""

    name = "losing"

    def inline(self, html: str) -> str:
        return re.sub(r" [^<]*</p>", "</p>", html)


def test_a_shape_whose_tokens_do_not_all_come_back_is_not_reused() -> None:
    template = ENV.from_string("<p>{{ a }} {{ b }}</p>")
    cache = ShapeCache(_LosingInliner())
    for name in ["Kim", "Jo", "Ann"]:
        document = pieces(template, a=name, b="Test")
        assert cache.inline(document) == _LosingInliner().inline("".join(document))
    assert cache.hits == 0


def test_a_shape_is_analysed_when_it_recurs_and_the_cache_stays_bounded(inliner) -> None:
    template = ENV.from_string(STYLE + "<p>{{ v }}</p>{{ shape|safe }}")
    cache = ShapeCache(inliner, size=4)
    for n in range(10):  # ten shapes, each seen once: none is analysed or kept
        cache.inline(pieces(template, v="x", shape=f"<i>{n}</i>"))
    assert len(cache._shapes) == 0 and len(cache._seen) == 4
    for n in range(10):
        for value in ("x", "y"):
            cache.inline(pieces(template, v=value, shape=f"<b>{n}</b>"))
    assert len(cache._shapes) == 4
    assert cache.hits == 0
    cache.inline(pieces(template, v="z", shape="<b>9</b>"))
    assert cache.hits == 1


def test_threads_share_one_cache(inliner) -> None:
    cache = ShapeCache(inliner)
    errors: list[str] = []

    def render(worker: int) -> None:
        for n in range(200):
            document = pieces(REUSABLE, v=f"w{worker}", w=f"n{n} & co")
            if cache.inline(document) != inliner.inline("".join(document)):
                errors.append(f"{worker}/{n}")

    threads = [threading.Thread(target=render, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.hits > 700


def test_premailer_gives_the_same_document_with_and_without_the_cache() -> None:
    """lxml writes some characters differently (``&#160;``), so compare what it reads."""
    cached = TemplateRenderer(inliner="premailer")
    uncached = TemplateRenderer(inliner="premailer")
    uncached._shapes.size = 0

    def read(html: str) -> str:
        return lxml.html.tostring(lxml.html.document_fromstring(html), encoding="unicode")

    for name in ["Kim", "A & B", "Jo\xa0Ann"] * 2:
        context = sample_context("de")
        context["customer"]["first_name"] = name
        a = cached.render_email("loyalty_offer", "de", context, marketing=True)
        b = uncached.render_email("loyalty_offer", "de", context, marketing=True)
        assert read(a.html) == read(b.html)
        assert a.text == b.text
    assert cached._shapes.hits >= 3

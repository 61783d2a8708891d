"""Rendering the built-in templates, locale fallback, overrides, errors and the sandbox."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from templates import (
    BUILTIN_DIR,
    RenderedEmail,
    ShopInfo,
    TemplateError,
    TemplateRenderer,
    sample_context,
)

EMAILS = {
    "thank_you": False,
    "inspection_invite": True,
    "loyalty_offer": True,
    "warranty_offer": True,
}
SMS = {"inspection_reminder": True, "warranty_reminder": True}
LAYOUT = '{% extends "_layout.email.html.j2" %}\n'


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer(sms_opt_out_hint="STOP an 12345")


def project(tmp_path: Path, files: dict[str, str]) -> TemplateRenderer:
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    return TemplateRenderer(project_dir=tmp_path)


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("name", sorted(EMAILS))
def test_every_builtin_email_renders(renderer: TemplateRenderer, name: str, locale: str) -> None:
    ctx = sample_context(locale)
    email = renderer.render_email(name, locale, ctx, marketing=EMAILS[name])
    assert email.locale == locale
    assert email.subject and len(email.subject) <= 78
    assert email.preheader
    assert ctx["customer"]["first_name"] in email.text
    assert "<style" in email.html and "style=" in email.html
    assert ShopInfo().imprint.split(" · ")[0] in email.html  # legal imprint in every footer
    assert ("https://shop.example/u/sample-token" in email.html) is EMAILS[name]
    assert ("https://shop.example/u/sample-token" in email.text) is EMAILS[name]


def test_german_copy_uses_proper_umlauts_and_formal_address(renderer: TemplateRenderer) -> None:
    email = renderer.render_email("thank_you", "de", sample_context("de"), marketing=False)
    assert "Grüße" in email.text and "Sie" in email.text
    assert "499,00\xa0€" in email.text


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("name", sorted(SMS))
def test_every_builtin_sms_renders_in_gsm7(
    renderer: TemplateRenderer, name: str, locale: str
) -> None:
    context = sample_context(locale)
    sms = renderer.render_sms(name, locale, context, marketing=True)
    assert sms.encoding == "GSM-7"
    assert sms.body.endswith(" STOP an 12345")
    # The shop link goes out short, so the message fits one segment; the full link, with
    # its campaign, is what the short one leads to.
    assert sms.segments == 1
    assert f"{context['links']['short']} " in sms.body and "utm_" not in sms.body
    [link] = sms.links
    assert "utm_medium=sms" in link and link.startswith("https://shop.example/service/")


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize(
    "device", ["Kühl-Gefrierkombination KS 3", "Kaffeevollautomat KM 2", "Saugroboter SR 1"]
)
def test_an_inspection_reminder_fits_one_segment_with_a_long_device_name(
    locale: str, device: str
) -> None:
    """The demo shop's longest names, its short links and the default opt-out hints fit."""
    renderer = TemplateRenderer(
        shop=ShopInfo(name="Elektro Sommer"),
        sms_opt_out_hint={"de": "Abmelden: STOP", "en": "Reply STOP to opt out"},
    )
    context = sample_context(locale)
    context["customer"] = {**context["customer"], "first_name": "Alexander"}
    context["item"] = {**context["item"], "name": device}
    context["items"] = [context["item"]]
    context["step"] = {**context["step"], "occurrence": 4}
    context["links"] = {**context["links"], "short": "http://127.0.0.1:8000/l/2lkf.bGy5Iac"}
    sms = renderer.render_sms("inspection_reminder", locale, context, marketing=True)
    assert device in sms.body
    assert sms.segments == 1, f"{len(sms.body)} characters: {sms.body}"


@pytest.mark.parametrize("first_name", [None, ""])
@pytest.mark.parametrize("locale", ["de", "en"])
def test_a_customer_without_a_first_name_is_greeted_without_a_gap(
    renderer: TemplateRenderer, locale: str, first_name: str | None
) -> None:
    """Not "Danke für Ihren Einkauf, !" nor "Hallo , Ihre ...": the name is left out."""
    context = sample_context(locale)
    context["customer"] = {**context["customer"], "first_name": first_name}
    for name, marketing in {**EMAILS, "complaint_followup": False}.items():
        email = renderer.render_email(name, locale, context, marketing=marketing)
        assert not re.search(r"(,|None) ?[!?]?$", email.subject), (name, email.subject)
        assert "None" not in email.text and " ," not in email.text, name
    for name in SMS:
        body = renderer.render_sms(name, locale, context, marketing=True).body
        assert re.search(r": (Hallo|Hi), ", body) and "None" not in body, body


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("name", sorted(SMS))
@pytest.mark.parametrize("count", [1, 2])
def test_a_catalogue_name_of_any_length_costs_no_more_segments(
    renderer: TemplateRenderer, name: str, locale: str, count: int
) -> None:
    """A product name of 500 characters is cut to 40: the SMS stays within the configured
    segments instead of costing eight of them."""
    long = "Geschirrspülmaschinenersatzteilpaket-" * 14
    context = sample_context(locale, bundle=count == 2)
    context["items"] = [{**item, "name": long} for item in context["items"]]
    context["item"] = context["items"][0]
    sms = renderer.render_sms(name, locale, context, marketing=True)
    assert long[:37] in sms.body and long[:41] not in sms.body
    assert sms.body.count("...") == count
    assert sms.segments <= renderer.sms_max_segments, sms.body


@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.parametrize("days", [14, 60, 75, None])  # "in 14 days", "on" a date, "soon"
@pytest.mark.parametrize("device", ["Kühl-Gefrierkombination KS 3", "Saugroboter SR 1"])
def test_a_warranty_reminder_fits_one_segment_with_a_long_device_name(
    locale: str, days: int | None, device: str
) -> None:
    """The demo shop's longest names, its short links and the default opt-out hints fit."""
    renderer = TemplateRenderer(
        shop=ShopInfo(name="Elektro Sommer"),
        sms_opt_out_hint={"de": "Abmelden: STOP", "en": "Reply STOP to opt out"},
    )
    context = sample_context(locale)
    # A two-digit day: the longest date either language writes.
    context["now"] = datetime(2026, 9, 28, 9, tzinfo=UTC)
    ends = context["now"] + timedelta(days=days, hours=1) if days else None
    context["customer"] = {**context["customer"], "first_name": "Alexander"}
    context["item"] = {**context["item"], "name": device, "warranty_end": ends}
    context["items"] = [context["item"]]
    context["links"] = {**context["links"], "short": "http://127.0.0.1:8000/l/2lkf.bGy5Iac"}
    sms = renderer.render_sms("warranty_reminder", locale, context, marketing=True)
    assert device in sms.body
    assert (f" {days} " in sms.body) == (days is not None and days <= 60)
    assert sms.segments == 1, f"{len(sms.body)} characters: {sms.body}"


@pytest.mark.parametrize("locale", ["de", "en"])
def test_without_a_short_link_an_sms_carries_the_full_one(
    renderer: TemplateRenderer, locale: str
) -> None:
    context = {**sample_context(locale), "links": {"unsubscribe": "https://shop.example/u/x"}}
    sms = renderer.render_sms("inspection_reminder", locale, context, marketing=True)
    assert "utm_medium=sms" in sms.body and sms.links == ()
    assert sms.segments == 2


def test_transactional_sms_gets_no_opt_out_hint(renderer: TemplateRenderer) -> None:
    sms = renderer.render_sms("inspection_reminder", "de", sample_context(), marketing=False)
    assert "STOP" not in sms.body


def test_regional_locale_falls_back_to_its_language(renderer: TemplateRenderer) -> None:
    email = renderer.render_email("thank_you", "de-AT", sample_context("de-AT"), marketing=False)
    assert email.locale == "de"
    assert "Jänner" in email.text  # dates and amounts still formatted the Austrian way
    assert (
        renderer.render_sms("warranty_reminder", "de_AT", sample_context(), marketing=True).locale
        == "de"
    )


def test_unknown_locale_falls_back_to_the_project_default(renderer: TemplateRenderer) -> None:
    assert (
        renderer.render_email("thank_you", "fr", sample_context("fr"), marketing=False).locale
        == "de"
    )
    english = TemplateRenderer(default_locale="en")
    assert (
        english.render_email("thank_you", "fr", sample_context("fr"), marketing=False).locale
        == "en"
    )


def test_lookup_helpers(renderer: TemplateRenderer) -> None:
    assert renderer.available_locales("thank_you", "email") == ["de", "en"]
    assert renderer.has_template("thank_you", "email", "fr")
    assert not renderer.has_template("thank_you", "sms", "de")
    assert renderer.template_names("sms") == ["inspection_reminder", "warranty_reminder"]
    with pytest.raises(TemplateError, match="no email template"):
        renderer.render_email("nope", "de", sample_context(), marketing=False)


def test_project_template_overrides_builtin_by_file_name(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "thank_you.email.de.html.j2": LAYOUT
            + "{% block subject %}Eigener Dank{% endblock %}"
            + "{% block content %}<p>Unser eigener Text</p>{% endblock %}",
        },
    )
    email = r.render_email("thank_you", "de", sample_context(), marketing=False)
    assert email.subject == "Eigener Dank"
    assert "Unser eigener Text" in email.html
    # The built-in text part belongs to the built-in HTML: the override gets its own text.
    assert "Unser eigener Text" in email.text and "Pflegetipps" not in email.text
    # Other locales and templates still come from the built-ins.
    assert r.render_email(
        "thank_you", "en", sample_context("en"), marketing=False
    ).subject.startswith("Thank")


def test_project_adds_a_regional_variant(tmp_path: Path) -> None:
    r = project(tmp_path, {"inspection_reminder.sms.de-CH.j2": "Grüezi {{ customer.first_name }}"})
    assert (
        r.render_sms("inspection_reminder", "de_CH", sample_context(), marketing=False).body
        == "Grüezi Anna"
    )
    assert r.available_locales("inspection_reminder", "sms") == ["de", "de_CH", "en"]


def test_compiled_templates_are_cached_until_reload(tmp_path: Path) -> None:
    path = tmp_path / "note.sms.de.j2"
    path.write_text("eins", encoding="utf-8")
    r = TemplateRenderer(project_dir=tmp_path)
    assert r.render_sms("note", "de", sample_context(), marketing=False).body == "eins"
    path.write_text("zwei", encoding="utf-8")
    assert r.render_sms("note", "de", sample_context(), marketing=False).body == "eins"
    r.reload()
    assert r.render_sms("note", "de", sample_context(), marketing=False).body == "zwei"


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "loyalty_offer.email.de.html.j2": LAYOUT
            + "{% block subject %}Hallo{% endblock %}\n"
            + "{% block content %}\n<p>Hallo</p>\n<p>{{ customer.nickname }}</p>\n{% endblock %}\n"
        },
    )
    with pytest.raises(TemplateError) as info:
        r.render_email("loyalty_offer", "de", sample_context(), marketing=True)
    assert str(info.value) == (
        "loyalty_offer.email.de.html.j2:5: 'customer' has no attribute 'nickname'"
    )
    assert (info.value.file, info.value.line) == ("loyalty_offer.email.de.html.j2", 5)


def test_undefined_top_level_variable(tmp_path: Path) -> None:
    r = project(tmp_path, {"x.sms.de.j2": "Hallo\n{{ voucher }}"})
    with pytest.raises(TemplateError, match=r"^x\.sms\.de\.j2:2: 'voucher' is undefined$"):
        r.render_sms("x", "de", sample_context(), marketing=False)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    r = project(tmp_path, {"x.sms.de.j2": "Hallo\n\n{% if customer %}\n{{ customer.first_name }\n"})
    with pytest.raises(TemplateError, match=r"^x\.sms\.de\.j2:4: unexpected '}'"):
        r.render_sms("x", "de", sample_context(), marketing=False)


def test_unclosed_block_names_file(tmp_path: Path) -> None:
    r = project(tmp_path, {"x.sms.de.j2": "Hallo\n{% if customer %}\nohne Ende"})
    with pytest.raises(TemplateError, match=r"^x\.sms\.de\.j2:3: .*'endif'"):
        r.render_sms("x", "de", sample_context(), marketing=False)


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ customer.__class__ }}",
        "{{ shop_link.__globals__ }}",
        "{{ customer.attributes.update({'x': 1}) }}",
    ],
)
def test_sandbox_blocks_escapes(tmp_path: Path, escape: str) -> None:
    r = project(tmp_path, {"x.sms.de.j2": "Hallo " + escape})
    ctx = sample_context()
    with pytest.raises(TemplateError, match=r"^x\.sms\.de\.j2:1: ") as info:
        r.render_sms("x", "de", ctx, marketing=False)
    assert "unsafe" in str(info.value) or "not allowed" in str(info.value)
    assert ctx["customer"]["attributes"] == sample_context()["customer"]["attributes"]


def test_marketing_email_without_unsubscribe_link_is_refused(tmp_path: Path) -> None:
    bare = (
        "<html><head><title>{% block subject %}Angebot{% endblock %}</title></head>"
        "<body><p>Nur für Sie</p></body></html>"
    )
    r = project(tmp_path, {"promo.email.de.html.j2": bare})
    with pytest.raises(TemplateError, match="unsubscribe link missing"):
        r.render_email("promo", "de", sample_context(), marketing=True)
    # The same mail is fine when it is transactional.
    assert r.render_email("promo", "de", sample_context(), marketing=False).subject == "Angebot"


def test_money_and_date_filters_follow_the_locale(tmp_path: Path) -> None:
    source = (
        "{{ order.total | money(order.currency) }}|{{ item.warranty_end | date }}"
        "|{{ 1234.5 | number }}"
    )
    r = project(tmp_path, {"f.sms.de.j2": source, "f.sms.en.j2": source})
    ctx = sample_context()
    ctx["order"]["total"] = Decimal("499.00")
    assert r.compose_sms("f", "de", ctx, marketing=False).body == "499,00 €|05.01.2028|1.234,5"
    assert r.compose_sms("f", "en", ctx, marketing=False).body == "€499.00|Jan 5, 2028|1,234.5"


def test_date_filter_uses_the_customer_time_zone(tmp_path: Path) -> None:
    r = project(tmp_path, {"d.sms.en.j2": "{{ now | date }} {{ now | datetime('short') }}"})
    ctx = sample_context("en")
    # 23:30 UTC on 1 March is already 2 March in Tokyo.
    from datetime import UTC, datetime

    ctx["now"] = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    ctx["customer"]["timezone"] = "Asia/Tokyo"
    assert r.compose_sms("d", "en", ctx, marketing=False).body == "Mar 2, 2026 3/2/26, 8:30 AM"
    ctx["customer"]["timezone"] = "America/New_York"
    assert r.compose_sms("d", "en", ctx, marketing=False).body == "Mar 1, 2026 3/1/26, 6:30 PM"


def test_ordinals(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "o.sms.en.j2": "{% for n in [1, 2, 3, 4, 11, 12, 13, 21, 22, 103] %}"
            "{{ n | ordinal }} {% endfor %}"
        },
    )
    body = r.compose_sms("o", "en", sample_context("en"), marketing=False).body
    assert body == "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 103rd"


def test_shop_link_adds_utm_and_keeps_query(tmp_path: Path) -> None:
    r = TemplateRenderer(
        project_dir=tmp_path, utm_source="newsletter", shop=ShopInfo(url="https://laden.example/de")
    )
    (tmp_path / "l.sms.de.j2").write_text(
        "{{ shop_link('/service?sku=WM-1#termin') }} "
        "{{ shop_link('https://other.example/x?utm_source=keep') }}"
    )
    r.reload()
    context = sample_context()
    sms = r.compose_sms("l", "de", context, marketing=False)
    short = context["links"]["short"]
    assert sms.body == f"{short} {short}.1"  # numbered after the first
    first, second = sms.links
    parts = urlsplit(first)
    assert (parts.netloc, parts.path, parts.fragment) == ("laden.example", "/de/service", "termin")
    assert parse_qs(parts.query) == {
        "sku": ["WM-1"],
        "utm_source": ["newsletter"],
        "utm_medium": ["sms"],
        "utm_campaign": ["inspection"],
        "utm_content": ["invite"],
    }
    assert parse_qs(urlsplit(second).query)["utm_source"] == ["keep"]


def test_email_links_carry_utm_medium_email(renderer: TemplateRenderer) -> None:
    email = renderer.render_email("inspection_invite", "de", sample_context(), marketing=True)
    assert "utm_medium=email&amp;utm_campaign=inspection&amp;utm_content=invite" in email.html
    assert "utm_medium=email&utm_campaign=inspection&utm_content=invite" in email.text


def test_html_autoescapes_context_values_but_text_does_not(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "e.email.de.html.j2": LAYOUT
            + "{% block subject %}Für {{ customer.last_name }}{% endblock %}"
            + "{% block content %}<p>{{ customer.last_name }}</p>{% endblock %}",
            "e.email.de.txt.j2": "{{ customer.last_name }}",
        },
    )
    ctx = sample_context()
    ctx["customer"]["last_name"] = "<b>Müller & Söhne</b>"
    email = r.render_email("e", "de", ctx, marketing=False)
    assert "&lt;b&gt;Müller &amp; Söhne&lt;/b&gt;" in email.html and "<b>Müller" not in email.html
    assert email.subject == "Für <b>Müller & Söhne</b>"
    assert email.text == "<b>Müller & Söhne</b>\n"


def test_text_part_from_html_when_no_text_template(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "h.email.en.html.j2": LAYOUT
            + "{% block subject %}Hi{% endblock %}"
            + "{% block preheader %}SECRET PREHEADER{% endblock %}"
            + "{% block content %}<h1>Welcome</h1>"
            + "<p>Visit <a href=\"{{ shop_link('/a') }}\">us</a>.</p>{% endblock %}"
        },
    )
    email = r.render_email("h", "en", sample_context("en"), marketing=True)
    assert "Welcome" in email.text
    assert "https://shop.example/a?utm_source=aftersale" in email.text
    assert "https://shop.example/u/sample-token" in email.text
    assert "SECRET PREHEADER" not in email.text  # hidden preheader stays out of the text part
    assert email.preheader == "SECRET PREHEADER"


def test_project_templates_can_use_the_macros(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "m.email.de.html.j2": LAYOUT
            + '{% from "_macros.email.html.j2" import button, box %}'
            + "{% block subject %}Hallo{% endblock %}"
            + '{% block content %}{% call box("Ihr Code") %}<p>ABC</p>{% endcall %}'
            + "{{ button(shop_link('/'), 'Zum Shop') }}{% endblock %}"
        },
    )
    html = r.render_email("m", "de", sample_context(), marketing=True).html
    assert 'class="box-title"' in html and "Ihr Code" in html and "ABC" in html
    assert 'class="btn-link"' in html and "utm_source=aftersale" in html


def test_rendering_is_thread_safe(renderer: TemplateRenderer) -> None:
    contexts = [sample_context(loc) for loc in ("de", "en")]
    for i, ctx in enumerate(contexts):
        ctx["customer"]["first_name"] = f"Kundin{i}"
    expected = [
        renderer.render_email("loyalty_offer", loc, c, marketing=True)
        for loc, c in zip(("de", "en"), contexts, strict=True)
    ]
    results: list[RenderedEmail] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for _ in range(25):
            out = renderer.render_email(
                "loyalty_offer", ("de", "en")[index % 2], contexts[index % 2], marketing=True
            )
            with lock:
                results.append((index % 2, out))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert all(out == expected[which] for which, out in results)


def test_rendered_email_survives_a_mime_round_trip(renderer: TemplateRenderer) -> None:
    email = renderer.render_email("warranty_offer", "de", sample_context(), marketing=True)
    message = EmailMessage()
    message["Subject"] = email.subject
    message["From"] = "service@shop.example"
    message["To"] = "anna.schmidt@example.com"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())
    assert parsed["Subject"] == email.subject
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content() == email.text
    html = parsed.get_body(("html",)).get_content()
    assert html.rstrip("\n") == email.html.rstrip("\n")
    assert "Garantie" in html and "5. Januar 2028" in html


def test_builtins_ship_as_package_files() -> None:
    names = {p.name for p in BUILTIN_DIR.glob("*.j2")}
    for name in EMAILS:
        for locale in ("de", "en"):
            assert f"{name}.email.{locale}.html.j2" in names
            assert f"{name}.email.{locale}.txt.j2" in names
    for name in SMS:
        assert {f"{name}.sms.de.j2", f"{name}.sms.en.j2"} <= names
    assert {"_layout.email.html.j2", "_layout.email.txt.j2"} <= names


def test_the_opt_out_hint_speaks_the_customers_language():
    renderer = TemplateRenderer(
        default_locale="de",
        sms_opt_out_hint={"de": "Abmelden: STOP", "en": "Reply STOP to opt out"},
    )
    bodies = {
        locale: renderer.render_sms(
            "inspection_reminder", locale, sample_context(locale), marketing=True
        ).body
        for locale in ("de", "en", "en-GB", "fr")
    }
    assert bodies["de"].endswith("Abmelden: STOP")
    assert bodies["en"].endswith("Reply STOP to opt out")
    assert bodies["en-GB"].endswith("Reply STOP to opt out")
    assert bodies["fr"].endswith("Abmelden: STOP")  # falls back to the project's default
    transactional = renderer.render_sms(
        "inspection_reminder", "en", sample_context("en"), marketing=False
    )
    assert "STOP" not in transactional.body


@pytest.mark.parametrize("message_id", [0, 1, 35, 36, 123_456, 2**40])
def test_short_links_name_their_message_and_number(message_id: int) -> None:
    from templates.links import numbered, parse_short_link, short_link_base

    base = short_link_base("https://a.example/", "secret", message_id)
    tokens = [numbered(base, n).rsplit("/", 1)[1] for n in range(3)]
    assert [parse_short_link("secret", t) for t in tokens] == [(message_id, n) for n in range(3)]
    assert parse_short_link("another secret", tokens[0]) is None
    assert len(base) <= len("https://a.example/l/") + 8 + 1 + 7  # short enough for an SMS

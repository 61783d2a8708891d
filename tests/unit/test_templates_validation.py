"""TemplateRenderer.validate: every finding a marketer needs before a journey goes live."""

from __future__ import annotations

from pathlib import Path

import pytest

from templates import RenderedEmail, TemplateIssue, TemplateRenderer
from templates.validation import MAX_SUBJECT_CHARS, email_issues

LAYOUT = '{% extends "_layout.email.html.j2" %}\n'


def project(tmp_path: Path, files: dict[str, str], **kwargs: object) -> TemplateRenderer:
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    return TemplateRenderer(project_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


def levels(issues: list[TemplateIssue], level: str) -> list[TemplateIssue]:
    return [i for i in issues if i.level == level]


@pytest.mark.parametrize(
    ("name", "channel", "marketing"),
    [
        ("thank_you", "email", False),
        ("inspection_invite", "email", True),
        ("loyalty_offer", "email", True),
        ("warranty_offer", "email", True),
        ("inspection_reminder", "sms", True),
        ("warranty_reminder", "sms", True),
    ],
)
def test_builtins_validate_without_errors_or_warnings(
    name: str, channel: str, marketing: bool
) -> None:
    issues = TemplateRenderer(sms_opt_out_hint="STOP an 12345").validate(
        name,
        channel,
        marketing=marketing,  # type: ignore[arg-type]
    )
    assert levels(issues, "error") == [] and levels(issues, "warning") == [], issues


def test_sms_encoding_and_segments_are_reported() -> None:
    issues = TemplateRenderer().validate(
        "warranty_reminder", "sms", marketing=True, locales=("de",)
    )
    assert [i.message for i in issues] == ["GSM-7, 133 characters, 1 segment(s)"]
    assert issues[0].file == "warranty_reminder.sms.de.j2"


def test_fallback_is_a_warning_and_missing_everything_an_error(tmp_path: Path) -> None:
    r = project(tmp_path, {"only_fr.sms.fr.j2": "Bonjour {{ customer.first_name }}"})
    issues = r.validate("thank_you", "email", marketing=False, locales=("de", "fr"))
    assert [(i.level, i.message) for i in issues if i.level != "info"] == [
        ("warning", "no 'fr' version; falls back to 'de'")
    ]
    issues = r.validate("only_fr", "sms", marketing=False, locales=("fr", "de"))
    assert levels(issues, "error")[0].message == "no sms template for locale 'de' and no fallback"
    missing = r.validate("nothing", "email", marketing=False)
    assert [(i.level, i.message) for i in missing] == [
        ("error", "no email template named 'nothing'")
    ]


def test_undefined_variable_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "loyalty_offer.email.de.html.j2": LAYOUT
            + "{% block subject %}Hallo{% endblock %}\n{% block content %}\n"
            + "<p>{{ offer.voucher }}</p>\n{% endblock %}\n"
        },
    )
    errors = levels(r.validate("loyalty_offer", "email", marketing=True), "error")
    assert [str(e) for e in errors] == [
        "error: loyalty_offer.email.de.html.j2:4: 'offer' has no attribute 'voucher'"
    ]
    assert (errors[0].file, errors[0].line) == ("loyalty_offer.email.de.html.j2", 4)


def test_syntax_error_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    r = project(tmp_path, {"x.sms.de.j2": "Hallo\n{{ customer.first_name }\n"})
    [error] = levels(r.validate("x", "sms", marketing=False, locales=("de",)), "error")
    assert (error.file, error.line) == ("x.sms.de.j2", 2)


def test_sandbox_violation_is_an_error(tmp_path: Path) -> None:
    r = project(tmp_path, {"x.sms.de.j2": "{{ ''.__class__.__mro__ }}"})
    [error] = levels(r.validate("x", "sms", marketing=False, locales=("de",)), "error")
    assert error.line == 1 and "unsafe" in error.message


def test_marketing_email_needs_the_unsubscribe_link_in_both_parts(tmp_path: Path) -> None:
    html = (
        "<html><head><title>{% block subject %}Angebot{% endblock %}</title></head>"
        "<body>Hi</body></html>"
    )
    text_with_link = "Hi\nAbmelden: {{ links.unsubscribe }}"
    r = project(tmp_path, {"promo.email.de.html.j2": html, "promo.email.de.txt.j2": text_with_link})
    errors = levels(r.validate("promo", "email", marketing=True, locales=("de",)), "error")
    assert [e.message for e in errors] == [
        "marketing e-mail: unsubscribe link missing from the HTML part"
    ]
    assert levels(r.validate("promo", "email", marketing=False, locales=("de",)), "error") == []


def test_subject_rules(tmp_path: Path) -> None:
    long_subject = "Ein sehr langer Betreff " * 4
    r = project(
        tmp_path,
        {
            "empty.email.de.html.j2": LAYOUT + "{% block content %}Hallo{% endblock %}",
            "long.email.de.html.j2": LAYOUT
            + "{% block subject %}"
            + long_subject
            + "{% endblock %}{% block content %}x{% endblock %}",
        },
    )
    [empty] = levels(r.validate("empty", "email", marketing=False, locales=("de",)), "error")
    assert empty.message.startswith("subject is empty")
    warnings = levels(r.validate("long", "email", marketing=False, locales=("de",)), "warning")
    [long] = [w for w in warnings if not w.message.startswith("no text part")]
    assert (
        long.message
        == f"subject has {len(long_subject.strip())} characters (over {MAX_SUBJECT_CHARS})"
    )


def test_html_over_100_kb_is_a_warning(tmp_path: Path) -> None:
    r = project(
        tmp_path,
        {
            "big.email.de.html.j2": LAYOUT
            + "{% block subject %}Groß{% endblock %}"
            + "{% block content %}{% for _ in range(1500) %}"
            + "<p>Zeile mit etwas Text darin.</p>{% endfor %}{% endblock %}"
        },
    )
    warnings = levels(r.validate("big", "email", marketing=False, locales=("de",)), "warning")
    assert [w.message.split(";")[0] for w in warnings] == [
        "HTML is 163 KB",
        "no text part: write big.email.de.txt.j2 beside the HTML",
    ]


def test_an_email_without_a_text_part_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    r = project(tmp_path, {"plain.email.de.html.j2": LAYOUT + "{% block subject %}Hi{% endblock %}"
                           "{% block content %}<p>Hallo</p>{% endblock %}",
                           "plain.email.de.txt.j2": "Hallo"})  # fmt: skip
    assert not levels(r.validate("plain", "email", marketing=False, locales=("de",)), "warning")
    (tmp_path / "plain.email.de.txt.j2").unlink()
    r = project(tmp_path, {})
    [warning] = levels(r.validate("plain", "email", marketing=False, locales=("de",)), "warning")
    assert warning.message.startswith("no text part: write plain.email.de.txt.j2")


def test_sms_over_the_segment_limit_and_ucs2_are_reported(tmp_path: Path) -> None:
    r = project(tmp_path, {"long.sms.de.j2": "„Hallo“ " + "x" * 150}, sms_max_segments=2)
    issues = r.validate("long", "sms", marketing=False, locales=("de",))
    assert [i.level for i in issues] == ["info", "info", "warning"]
    assert issues[0].message == "UCS-2, 158 characters, 3 segment(s)"
    assert issues[1].message.startswith("UCS-2 because of '„' '“'")
    assert issues[2].message == "3 segments, more than the configured 2"


@pytest.mark.parametrize(("chars", "warned"), [(34_000, False), (35_000, True)])
def test_html_size_counts_utf8_bytes(chars: int, warned: bool) -> None:
    # "€" is three bytes: 35,000 of them pass the limit that 35,000 characters do not.
    html = "€" * chars
    email = RenderedEmail("Betreff", "Vorschau", html, "Text\n", "de")
    issues = email_issues(email, template="t", file=None, marketing=False, unsubscribe=None)
    assert any("KB; Gmail clips" in i.message for i in levels(issues, "warning")) is warned

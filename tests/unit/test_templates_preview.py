"""Previews, coupon codes and the sample context."""

from __future__ import annotations

import re
from pathlib import Path

from templates import TemplateRenderer, coupon_code, preview, sample_context, write_preview
from templates.coupons import COUPON_ALPHABET


def test_email_preview_and_files(tmp_path: Path) -> None:
    result = preview(TemplateRenderer(), "loyalty_offer", locale="de", context=sample_context())
    assert result.channel == "email" and result.locale == "de"
    assert result.subject == "Ein Dankeschön für Sie, Anna"
    assert result.html_bytes == len(result.html.encode()) > 1000
    assert result.text_bytes > 100 and result.issues == ()
    written = write_preview(result, tmp_path / "out" / "loyalty")
    assert [p.name for p in written] == ["loyalty.html", "loyalty.txt"]
    assert written[0].read_text(encoding="utf-8") == result.html


def test_sms_preview_reports_encoding_and_segments(tmp_path: Path) -> None:
    renderer = TemplateRenderer(sms_opt_out_hint="STOP an 12345")
    result = preview(renderer, "inspection_reminder", locale="en", context=sample_context("en"))
    assert (result.channel, result.sms_encoding, result.sms_segments) == ("sms", "GSM-7", 1)
    assert result.sms_body.endswith("STOP an 12345")
    [path] = write_preview(result, tmp_path / "sms")
    assert path.name == "sms.sms.txt" and path.read_text(encoding="utf-8") == result.sms_body + "\n"


def test_preview_lists_rule_violations_instead_of_failing(tmp_path: Path) -> None:
    (tmp_path / "promo.email.de.html.j2").write_text(
        "<html><head><title>{% block subject %}Angebot{% endblock %}</title></head>"
        "<body>x</body></html>"
    )
    result = preview(
        TemplateRenderer(project_dir=tmp_path), "promo", locale="de", context=sample_context()
    )
    assert [i.level for i in result.issues if i.level == "error"] == ["error", "error"]


def test_coupon_codes_are_stable_distinct_and_unambiguous() -> None:
    code = coupon_code("s3cret", "c1:loyalty:o1")
    assert code == coupon_code("s3cret", "c1:loyalty:o1")
    assert re.fullmatch(r"AS-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", code)
    assert coupon_code("other", "c1:loyalty:o1") != code
    codes = {coupon_code("s3cret", f"c{i}:loyalty:o{i}") for i in range(20_000)}
    assert len(codes) == 20_000
    assert not set("01IO") & set(COUPON_ALPHABET)
    assert coupon_code("s", "k", prefix="", groups=2).count("-") == 1


def test_sample_context_is_deterministic_and_localised() -> None:
    assert sample_context("de") == sample_context("de")
    assert sample_context("de-AT")["customer"]["first_name"] == "Anna"
    assert sample_context("de-AT")["customer"]["locale"] == "de-AT"
    assert sample_context("fr")["customer"]["first_name"] == "Emma"
    assert sample_context()["now"].tzinfo is not None

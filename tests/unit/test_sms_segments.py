"""GSM 03.38 encoding detection and segment counting."""

from hypothesis import given
from hypothesis import strategies as st

from templates import sms_segments
from templates.sms import append_opt_out, non_gsm_characters, normalise_sms_body


def test_empty_body_needs_no_segment() -> None:
    assert sms_segments("") == ("GSM-7", 0)


def test_gsm7_single_and_split_limits() -> None:
    assert sms_segments("a" * 160) == ("GSM-7", 1)
    assert sms_segments("a" * 161) == ("GSM-7", 2)
    assert sms_segments("a" * 306) == ("GSM-7", 2)
    assert sms_segments("a" * 307) == ("GSM-7", 3)


def test_ucs2_single_and_split_limits() -> None:
    assert sms_segments("ж" * 70) == ("UCS-2", 1)
    assert sms_segments("ж" * 71) == ("UCS-2", 2)
    assert sms_segments("ж" * 134) == ("UCS-2", 2)
    assert sms_segments("ж" * 135) == ("UCS-2", 3)


def test_german_letters_of_the_basic_table_stay_gsm7() -> None:
    assert sms_segments("äöüÄÖÜßé Grüße aus Köln")[0] == "GSM-7"


def test_one_typographic_quote_switches_the_whole_message_to_ucs2() -> None:
    text = "a" * 100
    assert sms_segments(text) == ("GSM-7", 1)
    assert sms_segments(text + "„") == ("UCS-2", 2)
    for forcing in ("“", "’", "ẞ", "–"):
        assert sms_segments("Hallo " + forcing)[0] == "UCS-2"


def test_euro_sign_takes_two_septets() -> None:
    assert sms_segments("€" * 80) == ("GSM-7", 1)
    assert sms_segments("€" * 81) == ("GSM-7", 2)


def test_every_extension_character_takes_two_septets() -> None:
    for ch in "^{}\\[~]|€\f":
        assert sms_segments(ch * 80) == ("GSM-7", 1), repr(ch)
        assert sms_segments(ch * 81) == ("GSM-7", 2), repr(ch)


def test_escape_sequences_are_not_split_across_parts() -> None:
    # 152 plain septets then "€": the escape pair cannot straddle the 153 boundary.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_segments(text) == ("GSM-7", 3)


def test_emoji_counts_two_utf16_units_and_is_not_split() -> None:
    assert sms_segments("😀" * 35) == ("UCS-2", 1)
    assert sms_segments("😀" * 36) == ("UCS-2", 2)
    # 66 units then a pair: 67 would need to split the pair, so it moves on.
    assert sms_segments("ж" * 66 + "😀" + "ж" * 66) == ("UCS-2", 3)


def test_non_gsm_characters_are_reported_once() -> None:
    assert non_gsm_characters("„Hallo“ „Welt“ ä") == ["„", "“"]


def test_normalise_collapses_blank_lines_and_nbsp() -> None:
    body = "  Hallo\u00a0Anna,  \n\n\n\n  499,00\u00a0€   \n"
    assert normalise_sms_body(body) == "Hallo Anna,\n\n499,00 €"


def test_opt_out_hint_is_appended_once() -> None:
    assert append_opt_out("Hallo", "STOP an 12345") == "Hallo STOP an 12345"
    assert append_opt_out("Hallo STOP an 12345", "STOP an 12345") == "Hallo STOP an 12345"
    assert append_opt_out("Hallo", None) == "Hallo"


sms_text = st.text(alphabet=st.sampled_from(list("aZ 09äöüß.,€[]{}^|~\\\n„“’😀ж")), max_size=400)


@given(sms_text, sms_text)
def test_appending_never_lowers_the_segment_count(head: str, tail: str) -> None:
    assert sms_segments(head + tail)[1] >= sms_segments(head)[1]


@given(sms_text)
def test_segments_cover_the_text(text: str) -> None:
    encoding, segments = sms_segments(text)
    if encoding == "GSM-7":
        units = sum(2 if ch in "^{}\\[~]|€\f" else 1 for ch in text)
        single, per_part = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, per_part = 70, 67
    if units == 0:
        assert segments == 0
    elif units <= single:
        assert segments == 1
    else:
        # Never fewer parts than the plain division; never more than one extra per
        # part for characters that could not be split.
        assert -(-units // per_part) <= segments <= -(-units // (per_part - 1))

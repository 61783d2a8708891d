"""Segment counting as carriers do it (used by the fake Twilio and the Twilio channel)."""

from __future__ import annotations

import pytest

from channels.sms_segments import segment_count, sms_encoding


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("Grüße, Ihr Team – ", "UCS-2", 1),  # the en dash is not GSM-7
        ("ÄÖÜäöüß" * 22, "GSM-7", 1),
        ("[]" * 40, "GSM-7", 1),  # two septets each: 160
        ("[]" * 40 + "a", "GSM-7", 2),
        ("ẞ" + "a" * 69, "UCS-2", 1),
        ("ẞ" + "a" * 70, "UCS-2", 2),
        ("😀" * 35, "UCS-2", 1),  # surrogate pairs: two units each
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_counts(text: str, encoding: str, segments: int) -> None:
    assert sms_encoding(text) == encoding
    assert segment_count(text) == segments

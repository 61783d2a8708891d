"""How a text message will be split: GSM-7 or UCS-2, and how many segments.

The fake Twilio server reports ``num_segments`` the way Twilio does, and the Twilio
channel reports the encoding (Twilio's API does not say which one it used).
"""

from __future__ import annotations

from typing import Literal

SmsEncoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 basic character set.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters reached through the escape code: each takes two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def sms_encoding(text: str) -> SmsEncoding:
    """Return the encoding a carrier will use: one non-GSM character forces UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return "GSM-7"
    return "UCS-2"


def sms_units(text: str, encoding: SmsEncoding) -> int:
    """Length in septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if encoding == "GSM-7":
        return sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def segment_count(text: str) -> int:
    """Number of segments: 160/153 septets for GSM-7, 70/67 code units for UCS-2."""
    encoding = sms_encoding(text)
    units = sms_units(text, encoding)
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    if units <= single:
        return 1
    return -(-units // multi)

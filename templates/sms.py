"""SMS encoding detection and segment counting (GSM 03.38).

A message is GSM-7 when every character is in the GSM 03.38 basic table or its
extension table; characters of the extension table (``^{}\\[~]|€`` and form feed)
are sent as an escape plus the character and so take two septets. Any other
character switches the *whole* message to UCS-2, counted in UTF-16 code units.

Limits: GSM-7 fits 160 septets in one segment, 153 per part once split (the rest
is the concatenation header); UCS-2 fits 70 code units, 67 per part. Split parts
never break an escape sequence or a surrogate pair, so a part may carry one unit
less than the maximum; we pack exactly the way a carrier has to.
"""

from __future__ import annotations

import re

__all__ = [
    "GSM7",
    "UCS2",
    "append_opt_out",
    "non_gsm_characters",
    "normalise_sms_body",
    "sms_segments",
]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 basic character set (the escape code 0x1B itself is not text).
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs the escape septet plus itself.
_EXTENSION = frozenset("\f^{}\\[~]|€")

_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}

# Spaces that look like spaces but are not GSM-7 (Babel puts them into amounts).
_SPACE_LIKE = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " ", "\t": " "})
_BLANK_RUNS = re.compile(r"\n\s*\n+")
_INNER_SPACES = re.compile(r"[ ]{2,}")


def _unit_sizes(text: str) -> tuple[str, list[int]]:
    """Return the encoding and the size of each character in encoding units."""
    if all(ch in _BASIC or ch in _EXTENSION for ch in text):
        return GSM7, [2 if ch in _EXTENSION else 1 for ch in text]
    return UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(sizes: list[int], per_part: int) -> int:
    """Count parts when characters are packed greedily without being split."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts


def sms_segments(text: str) -> tuple[str, int]:
    """Return ``(encoding, segments)`` for an SMS body.

    ``encoding`` is ``"GSM-7"`` or ``"UCS-2"``; an empty body needs no segment.
    """
    encoding, sizes = _unit_sizes(text)
    total = sum(sizes)
    single, per_part = _LIMITS[encoding]
    if total == 0:
        return encoding, 0
    if total <= single:
        return encoding, 1
    return encoding, _pack(sizes, per_part)


def non_gsm_characters(text: str) -> list[str]:
    """Characters that force UCS-2, each listed once in order of appearance."""
    seen: dict[str, None] = {}
    for ch in text:
        if ch not in _BASIC and ch not in _EXTENSION:
            seen.setdefault(ch, None)
    return list(seen)


def normalise_sms_body(text: str) -> str:
    """Strip, turn space look-alikes into spaces and collapse blank lines.

    Template line breaks are kept (a line break is one septet) but runs of blank
    lines become one, and trailing spaces on lines disappear.
    """
    text = text.translate(_SPACE_LIKE).replace("\r\n", "\n")
    lines = [_INNER_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def append_opt_out(body: str, hint: str | None) -> str:
    """Append the opt-out hint (e.g. ``"STOP an 12345"``) unless it is already there."""
    if not hint or not hint.strip():
        return body
    hint = hint.strip()
    if body.endswith(hint):
        return body
    return f"{body} {hint}" if body else hint

"""Shop links with UTM campaign parameters, and the short tracked links an SMS carries.

Short links: ``<public url>/l/<message>.<mac>[.<n>]``.

Every character of an SMS counts, and a shop link with its campaign parameters is long
enough to push a reminder into a second segment, which is billed as a second message. An
SMS therefore links to aftersale's own web app, which redirects to the full link and records
the click on the message (``clicked_at``): no SMS provider reports clicks.

``<message>`` is the message id in base 36, ``<mac>`` makes other messages' links
unguessable, ``<n>`` numbers the links of one message after the first, which has none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

__all__ = ["base36", "numbered", "parse_short_link", "short_link_base", "with_utm"]


def with_utm(base_url: str, path_or_url: str, params: Mapping[str, str | None]) -> str:
    """Resolve ``path_or_url`` against ``base_url`` and add the UTM parameters.

    Existing query parameters stay, in order; a UTM parameter the link already
    carries is kept as written (the author chose it), ``None`` values are left out.
    """
    return _with_utm(base_url, path_or_url, tuple(params.items()))


# A batch links to the same few pages with the same campaign, and urlencode is
# slow next to a whole template render: remember the answers.
@lru_cache(maxsize=4096)
def _with_utm(base_url: str, path_or_url: str, params: tuple[tuple[str, str | None], ...]) -> str:
    url = urljoin(base_url.rstrip("/") + "/", path_or_url.lstrip("/")) if path_or_url else base_url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    query += [(k, v) for k, v in params if v is not None and k not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


# ------------------------------------------------------------------ short links

_MAC_BYTES = 5  # 40 bits: about 10^12 tries to forge a click on someone else's message


def _mac(secret: str, message_id: int) -> str:
    digest = hmac.new(secret.encode(), f"link:{message_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).rstrip(b"=").decode()


def base36(number: int) -> str:
    """``number`` in base 36, lower case: a short id in a link."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def short_link_base(public_url: str, secret: str, message_id: int) -> str:
    """The first link of one message; :func:`numbered` gives the others."""
    return f"{public_url.rstrip('/')}/l/{base36(message_id)}.{_mac(secret, message_id)}"


def numbered(base: str, link: int) -> str:
    """Link ``link`` (from 0) of the message whose first link is ``base``."""
    return base if link == 0 else f"{base}.{link}"


MAX_TOKEN = 80  # a message id of 13 base-36 digits, a MAC and a link number fit many times


def parse_short_link(secret: str, token: str) -> tuple[int, int] | None:
    """(message id, link number) of a valid token, or None for anything forged or malformed."""
    if len(token) > MAX_TOKEN:
        return None
    parts = token.split(".")
    if len(parts) == 2:
        parts.append("0")
    if len(parts) != 3 or not token.isascii() or not (parts[0].isalnum() and parts[2].isdigit()):
        return None
    encoded_id, mac, number = parts
    message_id = int(encoded_id, 36)
    if not hmac.compare_digest(mac.encode(), _mac(secret, message_id).encode()):
        return None
    return message_id, int(number)

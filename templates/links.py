"""Shop links with UTM campaign parameters."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

__all__ = ["with_utm"]


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

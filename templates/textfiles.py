"""Files a person edits (journeys, templates, settings), read as UTF-8 text.

A file saved in another encoding is refused with the place of its first byte that is not
UTF-8, rather than with a decoder's traceback; a byte-order mark, as some editors write
one, is dropped.
"""

from __future__ import annotations

import codecs
from pathlib import Path


class NotText(ValueError):
    """A file that is not UTF-8 text; ``line`` and ``column`` (1-based, in characters) of the
    first byte that is not."""

    def __init__(self, line: int, column: int, byte: int) -> None:
        self.line, self.column = line, column
        super().__init__(
            f"not UTF-8 text: byte 0x{byte:02x} at column {column}; save the file as UTF-8"
        )


def read_text(path: Path | str) -> str:
    """The file's text; :class:`NotText` if it is not UTF-8, ``OSError`` if unreadable."""
    return decode(Path(path).read_bytes())


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text without a leading byte-order mark; :class:`NotText` if it is not
    UTF-8."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        raise NotText(line, column, data[exc.start]) from None

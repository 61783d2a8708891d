"""The text part of an HTML e-mail without a text template, written as a person would.

A text part is what a screen reader, a plain-text mail client and a spam filter read. It
is not the HTML with its markup showing: layout tables, rules and Markdown syntax (``|``,
``---``, ``[text](<url>)``) read as noise. :func:`html_to_text` keeps what a reader sees
and writes it as a careful sender types a plain-text e-mail:

* every block (paragraph, heading, table row, list) is a paragraph of its own,
  separated from the next by one blank line; a ``<br>`` starts a new line within it, and
  the cells of a row stand on one line, `` – `` between them;
* a link is its text followed by its address, ``Zum Shop: https://…``; a link whose text
  is its address (``service@shop.example``, ``https://…``) is written once; ``mailto:``
  and ``tel:`` addresses are written without their scheme;
* a list is a paragraph, one item a line, each starting with ``- `` (``1. `` when the
  list is numbered); rules (``<hr>``) and images leave nothing but the gap;
* what the reader never sees (``<head>``, ``display:none`` preheaders, scripts, styles)
  is left out; runs of spaces and line breaks in the source are one space.
"""

from __future__ import annotations

import re
from typing import Any

import lxml.etree
import lxml.html

__all__ = ["html_to_text"]

_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_SKIPPED = {"head", "title", "style", "script", "template", "noscript"}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "center", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "html", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
    "tfoot", "thead", "tr", "ul",
}  # fmt: skip
_CELLS = {"td", "th"}
CELL_GAP = " – "  # between the cells of a table row: "1 × Waschmaschine – 499,00 €"


def html_to_text(html: str) -> str:
    """Plain-text part for an HTML e-mail that has no text template of its own."""
    try:
        doc = lxml.html.document_fromstring(html)
    except lxml.etree.ParserError:  # nothing but whitespace or comments
        return ""
    writer = _Writer()
    writer.walk(doc)
    writer.end_block()
    return "\n\n".join(writer.paragraphs) + "\n"


def link_text(text: str, href: str) -> str:
    """A link as a reader of plain text needs it: its words and, once, its address."""
    href = href.strip()
    address = href
    for scheme in ("mailto:", "tel:"):
        if href.lower().startswith(scheme):
            address = href[len(scheme) :].split("?", 1)[0]
    if not href or href.startswith("#") or href.lower().startswith("javascript:"):
        return text
    if not text or text.rstrip("/") == address.rstrip("/") or text == href:
        return address
    if address.replace(" ", "") == text.replace(" ", ""):  # a phone number spelt either way
        return text
    return f"{text}: {address}"


class _Writer:
    """Walks the visible tree, gathering inline text into paragraphs."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.line: list[str] = []

    def end_block(self) -> None:
        lines = ["".join(piece for piece in part).strip() for part in _split(self.line)]
        lines = [_SPACES.sub(" ", line).strip() for line in lines]
        text = "\n".join(line for line in lines if line)
        if text:
            self.paragraphs.append(text)
        self.line = []

    def inline(self, text: str | None) -> None:
        if text:
            self.line.append(_SPACES.sub(" ", text))

    def walk(self, element: Any) -> None:
        tag = element.tag if isinstance(element.tag, str) else None
        if tag is None or tag in _SKIPPED or _HIDDEN.search(element.get("style", "")):
            return  # a comment, or nothing a reader sees (its tail is the parent's)
        if tag == "br":
            self.line.append("\n")
        elif tag == "a":
            words = _SPACES.sub(" ", element.text_content()).strip()
            self.inline(link_text(words, element.get("href", "")))
        elif tag in _CELLS:
            if "".join(self.line).strip():
                self.line.append(CELL_GAP)
            self._children(element)
        elif tag == "li":
            if "".join(self.line).strip():
                self.line.append("\n")
            self.line.append(_bullet(element))
            self._children(element)
        elif tag in _BLOCKS:
            self.end_block()
            self._children(element)
            self.end_block()
        else:
            self._children(element)

    def _children(self, element: Any) -> None:
        self.inline(element.text)
        for child in element:
            self.walk(child)
            self.inline(child.tail)


def _bullet(item: Any) -> str:
    """``- `` before an item of a list, ``2. `` before the second of a numbered one."""
    parent = item.getparent()
    if parent is not None and parent.tag == "ol":
        position = [child for child in parent if child.tag == "li"].index(item) + 1
        return f"{position}. "
    return "- "


def _split(pieces: list[str]) -> list[list[str]]:
    """Inline pieces cut into lines at each ``<br>``."""
    lines: list[list[str]] = [[]]
    for piece in pieces:
        if piece == "\n":
            lines.append([])
        else:
            lines[-1].append(piece)
    return lines

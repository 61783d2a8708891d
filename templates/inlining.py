"""CSS inlining of rendered HTML and the HTML → text fallback.

Inlining runs on the *rendered* document (see the design notes: inlining a
template before rendering breaks on loops inside tables and ``{{ }}`` in links).
Both inliners keep ``@media`` rules with their ``!important`` flags in a
``<style>`` block so responsive rules still win over the inlined styles.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from html.parser import HTMLParser
from typing import Literal, Protocol

import css_inline
from markupsafe import Markup

__all__ = [
    "CssInliner",
    "Inliner",
    "PremailerInliner",
    "ShapeCache",
    "make_inliner",
]

InlinerName = Literal["css_inline", "premailer"]
_DOCTYPE = re.compile(r"^\s*<!doctype[^>]*>", re.IGNORECASE)
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)


class Inliner(Protocol):
    """Turns ``<style>`` rules into ``style`` attributes."""

    name: str

    def inline(self, html: str) -> str:
        """Return ``html`` with CSS inlined."""
        ...


class CssInliner:
    """css-inline (Rust): about 0.07 ms for a built-in e-mail; safe to share between threads."""

    name = "css_inline"

    def __init__(self) -> None:
        # Remote stylesheets stay unloaded: rendering must never touch the network.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

    def inline(self, html: str) -> str:
        """Return ``html`` with CSS inlined and at-rules kept."""
        return self._inliner.inline(html)


class PremailerInliner:
    """premailer (Python, lxml + cssutils): about 30 times slower, kept for compatibility."""

    name = "premailer"

    def __init__(self) -> None:
        import premailer  # imported lazily: its import costs more than a whole render

        self._premailer = premailer

    def inline(self, html: str) -> str:
        """Return ``html`` with CSS inlined; ``!important`` in kept rules survives."""
        out = self._premailer.Premailer(
            html,
            strip_important=False,
            keep_style_tags=True,
            cssutils_logging_level=logging.CRITICAL,
            allow_network=False,
        ).transform()
        # lxml drops the doctype; without it clients render in quirks mode.
        doctype = _DOCTYPE.match(html)
        if doctype and not _DOCTYPE.match(out):
            out = f"{doctype.group(0).strip()}\n{out}"
        return out


def make_inliner(name: InlinerName) -> Inliner:
    """The inliner called ``name``."""
    if name == "css_inline":
        return CssInliner()
    if name == "premailer":
        return PremailerInliner()
    raise ValueError(f"unknown inliner {name!r}; use 'css_inline' or 'premailer'")


class ShapeCache:
    """Inlines a rendered e-mail once per *shape*, not once per recipient.

    A template rendered for a thousand customers gives a thousand documents that differ only
    in the text its ``{{ }}`` expressions printed: names, prices, dates, links. CSS selectors
    match elements, classes and attributes, never such text, so the inlined document is the
    same but for those values. :meth:`inline` takes the pieces Jinja2 streams out, replaces
    every printed value by a numbered token, inlines that shape the first time it recurs and
    afterwards only puts the values back: a dictionary lookup instead of a parse, a
    selector match and a serialisation.

    What may not become a token stays part of the shape, so it is inlined for real:

    - markup a template prints (a macro's output, ``|safe``): it may hold elements;
    - whitespace and empty values: whitespace decides where the HTML parser puts text;
    - a value after a bare ``&``, which could complete an entity.

    A shape is only reused when inlining it provably gives the document itself with the
    tokens in place. It is inlined for real instead (and remembered as such) when a token
    stands in a ``<style>`` or ``<script>`` element, in a ``class``, ``id`` or ``style``
    attribute, in an attribute's name, in any attribute of ``<link>`` or ``<style>``, in any
    attribute at all when the style sheets have selectors that read attribute values
    (``[href^=tel]``, ``:lang(de)``, ``:dir(rtl)``) or come from a ``<link>``, or when the
    inliner did not give back every token exactly once.

    A shape is analysed when it is seen the second time: shapes that never recur (a template
    that prints per-customer markup) cost a hash each, not an analysis. Thread-safe.
    """

    def __init__(self, inliner: Inliner, *, size: int = 256) -> None:
        self.inliner = inliner
        self.size = size
        # Letters and digits only: every parser keeps them as they are, in text and in
        # attribute values. The random part keeps a template's own text from matching.
        self._token = f"t{secrets.token_hex(5)}v"
        self._tokens = re.compile(self._token + r"(\d+)w")
        # The same token objects every time, like a template's own text: a shape is keyed
        # by its pieces, and a tuple of strings that hash once hashes in no time.
        self._numbered = tuple(f"{self._token}{i}w" for i in range(_NUMBERED))
        self._lock = threading.Lock()
        self._shapes: OrderedDict[tuple[str, ...], _Inlined | None] = OrderedDict()
        self._seen: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def inline(self, pieces: Sequence[str]) -> str:
        """Inline the document that ``pieces`` (Jinja2's output stream) make up."""
        shape: list[str] = []
        values: list[str] = []
        numbered = self._numbered
        for piece in pieces:
            if (
                type(piece) is Markup
                and piece
                and "<" not in piece
                and ">" not in piece
                and not piece.isspace()
                and not (shape and shape[-1].endswith("&"))
            ):
                n = len(values)
                shape.append(numbered[n] if n < _NUMBERED else f"{self._token}{n}w")
                values.append(piece)
            else:
                shape.append(piece)
        if not values:
            return self.inliner.inline("".join(pieces))
        inlined = self._lookup(tuple(shape))
        if inlined is None:
            return self.inliner.inline("".join(pieces))
        return inlined.fill(values)

    def clear(self) -> None:
        """Forget every shape (after the templates changed)."""
        with self._lock:
            self._shapes.clear()
            self._seen.clear()

    def _lookup(self, key: tuple[str, ...]) -> _Inlined | None:
        with self._lock:
            if key in self._shapes:
                self._shapes.move_to_end(key)
                found = self._shapes[key]
                if found is not None:
                    self.hits += 1
                    return found
                self.misses += 1
                return None
            self.misses += 1
            if key not in self._seen:
                self._seen[key] = None
                if len(self._seen) > self.size:
                    self._seen.popitem(last=False)
                return None
            del self._seen[key]
        prepared = self._prepare(key)  # outside the lock: other threads go on meanwhile
        with self._lock:
            self._shapes[key] = prepared
            if len(self._shapes) > self.size:
                self._shapes.popitem(last=False)
        return prepared

    def _prepare(self, pieces: tuple[str, ...]) -> _Inlined | None:
        shape = "".join(pieces)
        count = shape.count(self._token)  # every token must be found, and come back, once
        contexts = _TokenContexts.read(shape, self._token, count)
        if contexts is None:
            return None
        parts = self._tokens.split(self.inliner.inline(shape))
        order = tuple(int(i) for i in parts[1::2])
        if sorted(order) != list(range(count)):
            return None
        return _Inlined(tuple(parts[0::2]), order, tuple(contexts[i] for i in order))


# Selectors that read an attribute's value: attribute selectors, :lang() and :dir().
_READS_ATTRIBUTES = re.compile(r"\[|:(?:lang|dir)\(", re.IGNORECASE)
_NUMBERED = 512  # tokens made once; an e-mail printing more values makes the rest anew
# Where a token stands, and so how the inliner would have written the value in its place.
_TEXT, _ATTRIBUTE, _VERBATIM = "text", "attribute", "verbatim"


class _Inlined:
    """An inlined shape: the text around its tokens, and which value goes where, how."""

    __slots__ = ("contexts", "order", "texts")

    def __init__(
        self, texts: tuple[str, ...], order: tuple[int, ...], contexts: tuple[str, ...]
    ) -> None:
        self.texts = texts
        self.order = order
        self.contexts = contexts

    def fill(self, values: list[str]) -> str:
        out = [self.texts[0]]
        for index, context, text in zip(self.order, self.contexts, self.texts[1:], strict=True):
            out.append(_serialised(values[index], context))
            out.append(text)
        return "".join(out)


@lru_cache(maxsize=4096)  # links and prices recur across recipients; names hash quickly
def _serialised(value: str, context: str) -> str:
    """``value`` (HTML as Jinja2 escaped it) as the inliner's HTML5 serialiser writes it."""
    value = str(value)  # not Markup, whose replace() would escape the replacements
    if "\r" in value:  # as the parser reads every line break
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if context == _VERBATIM:  # a comment is written back as it was read
        return value
    if "&" in value:
        value = html.unescape(value)
    value = value.replace("&", "&amp;").replace("\xa0", "&nbsp;")
    if context == _ATTRIBUTE:
        return value.replace('"', "&quot;")
    return value.replace("<", "&lt;").replace(">", "&gt;")


class _TokenContexts(HTMLParser):
    """Where each token of a shape stands, or that one stands where CSS could see it."""

    _UNSAFE_ATTRIBUTES = frozenset({"class", "id", "style"})
    _UNSAFE_ELEMENTS = frozenset({"link", "style", "script"})

    def __init__(self, token: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens = re.compile(re.escape(token) + r"(\d+)w")
        self.contexts: dict[int, str] = {}
        self.unsafe = False
        # A style sheet reads attribute values: one of ours does, or one we cannot see may.
        self.css_reads_attributes = False
        self._raw: str | None = None

    @classmethod
    def read(cls, shape: str, token: str, count: int) -> list[str] | None:
        """Each of the ``count`` tokens' contexts in token order, or ``None`` if the shape
        is not reusable."""
        parser = cls(token)
        parser.feed(shape)
        parser.close()
        in_attributes = _ATTRIBUTE in parser.contexts.values()
        if parser.unsafe or (parser.css_reads_attributes and in_attributes):
            return None
        if sorted(parser.contexts) != list(range(count)):
            return None
        return [parser.contexts[i] for i in range(count)]

    def _found(self, text: str, context: str) -> bool:
        found = False
        for match in self.tokens.finditer(text):
            index = int(match[1])
            if index in self.contexts:  # read twice: the parser is not where we think
                self.unsafe = True
            self.contexts[index] = context
            found = True
        return found

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if self._found(name, _ATTRIBUTE):
                self.unsafe = True
            css_reads_it = name in self._UNSAFE_ATTRIBUTES or tag in self._UNSAFE_ELEMENTS
            if value is not None and self._found(value, _ATTRIBUTE) and css_reads_it:
                self.unsafe = True
        if tag in ("style", "script"):
            self._raw = tag
        elif tag == "link":
            self.css_reads_attributes = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._raw = None

    def handle_endtag(self, tag: str) -> None:
        if tag == self._raw:
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw is not None:
            if self._found(data, _VERBATIM):
                self.unsafe = True
            if self._raw == "style" and _READS_ATTRIBUTES.search(data):
                self.css_reads_attributes = True
        else:
            self._found(data, _TEXT)

    def handle_comment(self, data: str) -> None:
        self._found(data, _VERBATIM)

    def handle_decl(self, decl: str) -> None:
        if self._found(decl, _VERBATIM):
            self.unsafe = True

    handle_pi = unknown_decl = handle_decl

"""Values the renderer takes and returns, and its one exception.

Exceptions::

    Exception
     └── TemplateError   (missing template, syntax error, undefined variable,
                          sandbox violation, broken rule such as a marketing
                          e-mail without unsubscribe link; names file:line)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["RenderedEmail", "RenderedSms", "ShopInfo", "TemplateError", "TemplateIssue"]

IssueLevel = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class ShopInfo:
    """The sender as it appears in every message (header, footer, legal imprint)."""

    name: str = "Ihr Fachhandel"
    address: str = "Musterstraße 1, 12345 Musterstadt"
    support_email: str = "service@shop.example"
    support_phone: str = "+49 30 1234567"
    url: str = "https://shop.example"
    imprint: str = (
        "Ihr Fachhandel GmbH · Musterstraße 1 · 12345 Musterstadt · "
        "Geschäftsführung: Erika Muster · Amtsgericht Musterstadt HRB 12345 · "
        "USt-IdNr. DE123456789"
    )
    logo_url: str = ""  # absolute URL of a logo image; empty shows the name as text


@dataclass(frozen=True)
class RenderedEmail:
    """A finished e-mail: inlined HTML, text part and the locale actually used."""

    subject: str
    preheader: str
    html: str
    text: str
    locale: str


@dataclass(frozen=True)
class RenderedSms:
    """A finished SMS body with its encoding (``GSM-7``/``UCS-2``) and segment count."""

    body: str
    encoding: str
    segments: int
    locale: str
    # The full links behind the body's short ones, by number (empty without short links).
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateIssue:
    """One finding of :meth:`TemplateRenderer.validate`."""

    level: IssueLevel
    template: str
    file: str | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file or self.template
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{self.level}: {where}: {self.message}"


class TemplateError(Exception):
    """A template could not be rendered; ``str()`` reads ``file:line: message``."""

    def __init__(
        self, message: str, *, template: str, file: str | None = None, line: int | None = None
    ) -> None:
        self.message = message
        self.template = template
        self.file = file
        self.line = line
        super().__init__(self.location_prefix() + message)

    def location_prefix(self) -> str:
        """``"file:line: "``, ``"file: "`` or ``"template: "``."""
        where = self.file or self.template
        return f"{where}:{self.line}: " if self.line is not None else f"{where}: "

    def as_issue(self) -> TemplateIssue:
        """This error as a validation finding."""
        return TemplateIssue("error", self.template, self.file, self.line, self.message)

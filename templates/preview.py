"""Previews of a template for one customer: content, sizes and SMS segments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .renderer import TemplateRenderer
from .results import TemplateError, TemplateIssue
from .validation import email_issues, sms_issues

__all__ = ["PreviewResult", "preview", "write_preview"]


@dataclass(frozen=True)
class PreviewResult:
    """What a template renders to; e-mail fields or SMS fields are filled, not both."""

    template: str
    channel: Literal["email", "sms"]
    locale: str
    subject: str | None = None
    preheader: str | None = None
    html: str | None = None
    text: str | None = None
    sms_body: str | None = None
    sms_encoding: str | None = None
    sms_segments: int | None = None
    issues: tuple[TemplateIssue, ...] = ()

    @property
    def html_bytes(self) -> int:
        """Size of the inlined HTML part in UTF-8 bytes (0 for SMS)."""
        return len(self.html.encode()) if self.html else 0

    @property
    def text_bytes(self) -> int:
        """Size of the text part (e-mail) or body (SMS) in UTF-8 bytes."""
        body = self.text if self.channel == "email" else self.sms_body
        return len(body.encode()) if body else 0


def _channel_of(renderer: TemplateRenderer, template: str, locale: str) -> Literal["email", "sms"]:
    if renderer.has_template(template, "email", locale):
        return "email"
    if renderer.has_template(template, "sms", locale):
        return "sms"
    raise TemplateError("no e-mail or SMS template with this name", template=template)


def preview(
    renderer: TemplateRenderer,
    template: str,
    *,
    locale: str,
    context: Mapping[str, Any],
    channel: Literal["email", "sms"] | None = None,
    marketing: bool = True,
) -> PreviewResult:
    """Render ``template`` as it would be sent (channel guessed when not given).

    Rule violations (such as a missing unsubscribe link) do not stop a preview;
    they are listed in ``issues``. Rendering failures raise :class:`TemplateError`.
    """
    channel = channel or _channel_of(renderer, template, locale)
    file = renderer.template_file(template, channel, locale)
    if channel == "email":
        email = renderer.compose_email(template, locale, context, marketing=marketing)
        links = context.get("links") or {}
        unsubscribe = links.get("unsubscribe")
        issues = email_issues(
            email, template=template, file=file, marketing=marketing, unsubscribe=unsubscribe
        )
        return PreviewResult(
            template, "email", email.locale, subject=email.subject, preheader=email.preheader,
            html=email.html, text=email.text, issues=tuple(issues),
        )  # fmt: skip
    sms = renderer.compose_sms(template, locale, context, marketing=marketing)
    issues = sms_issues(sms, template=template, file=file, max_segments=renderer.sms_max_segments)
    return PreviewResult(
        template, "sms", sms.locale, sms_body=sms.body, sms_encoding=sms.encoding,
        sms_segments=sms.segments, issues=tuple(issues),
    )  # fmt: skip


def write_preview(result: PreviewResult, out: Path) -> list[Path]:
    """Write ``<out>.html`` and ``<out>.txt`` (e-mail) or ``<out>.sms.txt`` (SMS).

    Returns the paths written; parent directories are created.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if result.channel == "sms":
        path = out.with_name(out.name + ".sms.txt")
        path.write_text((result.sms_body or "") + "\n", encoding="utf-8")
        return [path]
    html_path = out.with_name(out.name + ".html")
    text_path = out.with_name(out.name + ".txt")
    html_path.write_text(result.html or "", encoding="utf-8")
    text_path.write_text(result.text or "", encoding="utf-8")
    return [html_path, text_path]

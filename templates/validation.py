"""Checks on rendered content, shared by rendering (errors raise) and validation (all reported)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from markupsafe import escape

from .formatting import language_of, normalise_locale
from .results import RenderedEmail, RenderedSms, TemplateError, TemplateIssue
from .sample import sample_context
from .sms import non_gsm_characters

if TYPE_CHECKING:
    from .renderer import TemplateRenderer

__all__ = ["MAX_HTML_BYTES", "MAX_SUBJECT_CHARS", "email_issues", "sms_issues", "validate_template"]

MAX_SUBJECT_CHARS = 78  # longer subjects get cut on phones and in most inbox lists
MAX_HTML_BYTES = 100 * 1024  # Gmail clips messages at about 102 KB


def email_issues(
    email: RenderedEmail,
    *,
    template: str,
    file: str | None,
    marketing: bool,
    unsubscribe: str | None,
) -> list[TemplateIssue]:
    """Subject, unsubscribe link and size checks on a rendered e-mail."""
    issues: list[TemplateIssue] = []

    def add(level: Literal["error", "warning", "info"], message: str) -> None:
        issues.append(TemplateIssue(level, template, file, None, message))

    if not email.subject:
        add("error", "subject is empty (define {% block subject %})")
    elif len(email.subject) > MAX_SUBJECT_CHARS:
        add("warning", f"subject has {len(email.subject)} characters (over {MAX_SUBJECT_CHARS})")
    if not email.preheader:
        add("info", "no preheader (define {% block preheader %})")
    if marketing:
        if not unsubscribe:
            add("error", "marketing e-mail without links.unsubscribe in the context")
        else:
            if unsubscribe not in email.html and str(escape(unsubscribe)) not in email.html:
                add("error", "marketing e-mail: unsubscribe link missing from the HTML part")
            if unsubscribe not in email.text:
                add("error", "marketing e-mail: unsubscribe link missing from the text part")
    # At most 4 bytes a character: most e-mails are too short to need encoding.
    size = len(email.html.encode()) if 4 * len(email.html) > MAX_HTML_BYTES else 0
    if size > MAX_HTML_BYTES:
        add("warning", f"HTML is {size / 1024:.0f} KB; Gmail clips messages above about 102 KB")
    return issues


def sms_issues(
    sms: RenderedSms, *, template: str, file: str | None, max_segments: int
) -> list[TemplateIssue]:
    """Emptiness, encoding and segment checks on a rendered SMS."""
    issues: list[TemplateIssue] = []
    if not sms.body:
        issues.append(TemplateIssue("error", template, file, None, "SMS body is empty"))
        return issues
    summary = f"{sms.encoding}, {len(sms.body)} characters, {sms.segments} segment(s)"
    issues.append(TemplateIssue("info", template, file, None, summary))
    forcing = non_gsm_characters(sms.body)
    if forcing:
        chars = " ".join(repr(ch) for ch in forcing)
        message = f"UCS-2 because of {chars}; GSM-7 would fit more text per segment"
        issues.append(TemplateIssue("info", template, file, None, message))
    if sms.segments > max_segments:
        message = f"{sms.segments} segments, more than the configured {max_segments}"
        issues.append(TemplateIssue("warning", template, file, None, message))
    return issues


def _no_text(template: str, locale: str) -> str:
    return (
        f"no text part: write {template}.email.{normalise_locale(locale) or locale}.txt.j2 "
        "beside the HTML; until then the text part is made from the HTML"
    )


def _locale_issues(
    renderer: TemplateRenderer, template: str, channel: Literal["email", "sms"], locale: str
) -> tuple[str | None, list[TemplateIssue]]:
    resolved = renderer.resolve_locale(template, channel, locale)
    if resolved is None:
        message = f"no {channel} template for locale {locale!r} and no fallback"
        return None, [TemplateIssue("error", template, None, None, message)]
    if language_of(resolved) != language_of(normalise_locale(locale)):
        file = renderer.template_file(template, channel, locale)
        message = f"no {locale!r} version; falls back to {resolved!r}"
        return resolved, [TemplateIssue("warning", template, file, None, message)]
    return resolved, []


def _render_issues(
    renderer: TemplateRenderer,
    template: str,
    channel: Literal["email", "sms"],
    locale: str,
    marketing: bool,
) -> list[TemplateIssue]:
    # Once about one item, then as a bundle naming two, so both branches of a template run;
    # the bundle adds only what goes wrong there alone.
    issues = _sample_issues(renderer, template, channel, locale, marketing, bundle=False)
    seen = {issue.message for issue in issues}
    for issue in _sample_issues(renderer, template, channel, locale, marketing, bundle=True):
        if issue.level != "info" and issue.message not in seen:
            issues.append(replace(issue, message=f"as a bundle of two items: {issue.message}"))
    return issues


def _sample_issues(
    renderer: TemplateRenderer,
    template: str,
    channel: Literal["email", "sms"],
    locale: str,
    marketing: bool,
    *,
    bundle: bool,
) -> list[TemplateIssue]:
    context = sample_context(locale, bundle=bundle)
    file = renderer.template_file(template, channel, locale)
    try:
        if channel == "email":
            email = renderer.compose_email(template, locale, context, marketing=marketing)
            unsubscribe = context["links"]["unsubscribe"]
            issues = email_issues(
                email, template=template, file=file, marketing=marketing, unsubscribe=unsubscribe
            )
            if not renderer.has_text_template(template, locale):
                issues.append(
                    TemplateIssue("warning", template, file, None, _no_text(template, locale))
                )
            return issues
        sms = renderer.compose_sms(template, locale, context, marketing=marketing)
        return sms_issues(sms, template=template, file=file, max_segments=renderer.sms_max_segments)
    except TemplateError as exc:
        return [exc.as_issue()]


def validate_template(
    renderer: TemplateRenderer,
    template: str,
    channel: Literal["email", "sms"],
    *,
    marketing: bool,
    locales: Sequence[str],
) -> list[TemplateIssue]:
    """Everything wrong (or worth knowing) about one template across ``locales``."""
    if not renderer.available_locales(template, channel):
        message = f"no {channel} template named {template!r}"
        return [TemplateIssue("error", template, None, None, message)]
    issues: list[TemplateIssue] = []
    seen: set[str] = set()
    for locale in locales:
        resolved, found = _locale_issues(renderer, template, channel, locale)
        issues += found
        # Each file is rendered once even when several locales fall back to it.
        if resolved is not None and resolved not in seen:
            seen.add(resolved)
            issues += _render_issues(renderer, template, channel, locale, marketing)
    return issues

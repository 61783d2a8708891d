"""`aftersale send-test`: one message through the configured provider, to the shop's own inbox.

The message is rendered as the dispatcher would render it for a customer's order and item
(:mod:`aftersale.previewing`; samples where the customer has none, with notes), then sent
to ``--to`` instead of the customer, with ``[TEST]`` before its subject (an SMS: before its
text). Nothing is written to the database: no send log row, nothing counted against a
frequency cap, no consent or quiet hours consulted. Its unsubscribe and preference links
are signed with a throwaway key, so clicking them in the test message shows the
"invalid link" page instead of unsubscribing the customer it was rendered for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from aftersale.app import Project
from aftersale.errors import InputError
from aftersale.previewing import preview_context
from channels import ChannelError, SendResult
from scheduler.rendering import RenderJob, render_message
from templates import BUILTIN_DIR, TemplateError

TEST_MARK = "[TEST]"


@dataclass
class TestSend:
    """What was sent where, and what in it was sample data."""

    __test__ = False  # not a pytest test class

    channel: str
    to: str
    subject: str
    provider: str
    result: SendResult
    notes: list[str] = field(default_factory=list)


def send_test(
    project: Project,
    template: str,
    to: str,
    *,
    customer_id: str | None = None,
    order_id: str | None = None,
    item_sku: str | None = None,
    locale: str | None = None,
) -> TestSend:
    """Render ``template`` for a customer's order and item and send it to ``to`` only.

    Bad input (an unknown template, customer, order or item; an address that is not one)
    raises :class:`InputError`; a provider that refuses raises :class:`ChannelError`.
    """
    renderer = project.renderer
    found = preview_context(project, customer_id, order_id, item_sku, locale)
    kind = _channel_of(project, template, found.locale)
    address = _address(kind, to, project.settings.default_region)
    category = _category(project, template)
    job = RenderJob(
        message_id=0, channel=kind, template=template, category=category, locale=found.locale,
        customer_id=str(found.context["customer"].get("id") or ""), journey="send-test",
        step=template, context=found.context,
    )  # fmt: skip
    try:
        outgoing = render_message(renderer, job).outgoing
    except TemplateError as exc:
        raise InputError(str(exc)) from exc
    outgoing = replace(
        outgoing,
        message_id=f"test-{uuid.uuid4().hex[:12]}",
        to=address,
        subject=f"{TEST_MARK} {outgoing.subject}" if kind == "email" else "",
        body_text=outgoing.body_text if kind == "email" else f"{TEST_MARK} {outgoing.body_text}",
    )
    channel = project.channels[kind]
    result = channel.send(outgoing)
    return TestSend(kind, address, outgoing.subject, channel.name, result, found.notes)


def _channel_of(project: Project, template: str, locale: str) -> str:
    renderer = project.renderer
    for kind in ("email", "sms"):
        if renderer.available_locales(template, kind):  # type: ignore[arg-type]
            return kind
    names = ", ".join(builtin_names())
    raise InputError(
        f"no e-mail or SMS template named {template!r}: the built-ins are {names}; "
        f"a project's own go in {project.settings.templates_dir}/"
    )


def builtin_names() -> list[str]:
    """The names of the built-in templates (``thank_you``, ``inspection_reminder``, …)."""
    return sorted({p.name.split(".", 1)[0] for p in Path(BUILTIN_DIR).glob("[!_]*.j2")})


def _address(kind: str, to: str, region: str) -> str:
    """``to`` as the channel needs it; not an address of that kind is an InputError."""
    if kind == "email":
        try:
            return validate_email(to.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InputError(f"--to {to!r} is not an e-mail address: {exc}") from None
    try:
        number = phonenumbers.parse(to, region)
    except phonenumbers.NumberParseException as exc:
        raise InputError(f"--to {to!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InputError(f"--to {to!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _category(project: Project, template: str) -> str:
    """Marketing unless every journey step that sends ``template`` is transactional."""
    loaded, _ = project.load_journeys()
    categories = {
        step.send.category
        for item in loaded
        for step in item.journey.steps
        if step.send.template == template
        or any(v.template == template for v in step.variants or ())
    }
    return "transactional" if categories == {"transactional"} else "marketing"


__all__ = ["TEST_MARK", "ChannelError", "TestSend", "builtin_names", "send_test"]

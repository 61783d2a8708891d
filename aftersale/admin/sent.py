"""A sent message as it went out, for an admin: rendered again the way the dispatcher
rendered it.

The send log keeps a message's template, locale, order, item, enrolment and send time, and
its subject as rendered; not its body. The body is rendered again through the dispatcher's
own path (:func:`scheduler.rendering.render_message`) from those: the same template and
locale, the order and items as bought, the same coupon code and links (derived from the
enrolment, the customer and the project's keys), the send time as ``now``, and the items of
the messages it carried (a bundle). What can differ from the message that went out: the
customer's name and addresses if they changed since, and the template files if they were
edited since.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aftersale.app import Project
from campaigns.models import COUNTING_STATUSES, Message
from campaigns.store import CUSTOMERS, CustomerRow
from scheduler.context import ContextLoader
from scheduler.parts import LinkSettings
from scheduler.rendering import RenderJob, render_message
from templates import TemplateError

messages_t = Message.__table__


@dataclass(frozen=True)
class SentContent:
    channel: str
    to: str
    subject: str
    stored_subject: str | None
    html: str | None
    text: str


def sent_content(project: Project, conn: Connection, message_id: int) -> SentContent | None:
    """The content of a message that went out, rendered again; None for a message that did
    not go out (or does not exist). Raises :class:`TemplateError` when the template no
    longer renders."""
    m = messages_t.c
    row = conn.execute(sa.select(messages_t).where(m.id == message_id)).first()
    if row is None or row.status not in COUNTING_STATUSES or row.sent_at is None:
        return None
    carried = list(conn.execute(sa.select(messages_t).where(m.bundled_into == row.id)))
    customer = conn.execute(CUSTOMERS, {"ids": [row.customer_id]}).first()
    if customer is None:
        return None
    loader = ContextLoader(conn, [row, *carried])
    parts = loader.parts_for(row, CustomerRow._make(customer), row.sent_at, carried)
    settings = project.settings
    job = RenderJob(
        message_id=row.id,
        channel=row.channel,
        template=row.template,
        category=row.category,
        locale=row.locale or parts.locale or settings.default_locale,
        customer_id=row.customer_id,
        journey=row.journey_id,
        step=row.step,
        parts=parts,
        links=LinkSettings(settings.public_url, project.secret_key(), settings.sms_short_links),
    )
    out = render_message(project.renderer, job).outgoing
    return SentContent(row.channel, out.to, out.subject, row.subject, out.body_html, out.body_text)


__all__ = ["SentContent", "TemplateError", "sent_content"]

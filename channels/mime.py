"""The e-mail as it goes over the wire: one builder shared by the outbox and SMTP."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

from channels.base import OutgoingMessage

# Characters that would break the ``<id@domain>`` syntax of a Message-ID (RFC 5322 msg-id).
_MSG_ID_FORBIDDEN = frozenset('<>@ \t\r\n"()[]\\,;:')
# 7-bit transfer encodings (quoted-printable for umlauts): safe through any relay,
# including those that do not announce 8BITMIME.
_POLICY = policy.default.clone(cte_type="7bit")


def sender_domain(sender: str) -> str:
    """Return the domain of an address such as ``Shop <shop@example.com>``."""
    _, address = email.utils.parseaddr(sender)
    if "@" not in address:
        raise ValueError(f"sender {sender!r} is not an e-mail address")
    return address.rpartition("@")[2]


def message_id_header(message_id: str, sender: str) -> str:
    """Return the Message-ID header value ``<message_id@sender-domain>``."""
    if not message_id or _MSG_ID_FORBIDDEN.intersection(message_id):
        raise ValueError(f"message id {message_id!r} cannot be used in a Message-ID header")
    return f"<{message_id}@{sender_domain(sender)}>"


def build_email(
    msg: OutgoingMessage,
    *,
    sender: str,
    reply_to: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """Build a standards-conforming e-mail for ``msg``.

    The result is ``multipart/alternative`` (text first, then HTML, so clients pick the
    richest part they understand) when there is HTML, a single ``text/plain`` part
    otherwise. Every entry of ``msg.headers`` is added as is: that is where the caller
    puts ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for marketing mail.
    """
    if msg.kind != "email":
        raise ValueError(f"message {msg.message_id} is {msg.kind}, not email")
    em = EmailMessage(policy=_POLICY)
    em["Subject"] = msg.subject
    em["From"] = sender
    em["To"] = msg.to
    if reply_to:
        em["Reply-To"] = reply_to
    em["Date"] = email.utils.format_datetime(date or datetime.now(UTC))
    em["Message-ID"] = message_id_header(msg.message_id, sender)
    em["X-Aftersale-Message-Id"] = msg.message_id
    for name, value in msg.headers.items():
        em[name] = value
    em.set_content(msg.body_text)
    if msg.body_html is not None:
        em.add_alternative(msg.body_html, subtype="html")
        # add_alternative builds the HTML part as a whole message, MIME-Version included;
        # the header belongs on the top level only (RFC 2045 section 4).
        for part in em.iter_parts():
            del part["MIME-Version"]
    return em

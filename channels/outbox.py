"""A development channel that writes messages to files instead of delivering them.

E-mails become ``<directory>/email/<message_id>.eml`` (open them in any mail client);
text messages are appended to ``<directory>/sms.jsonl``, one JSON object a line.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from channels.base import Channel, ChannelKind, OutgoingMessage, SendResult, TransientChannelError
from channels.mime import build_email

# Message ids become file names: keep them from escaping the directory.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class OutboxChannel(Channel):
    """Writes each message to ``directory`` instead of sending it."""

    name = "outbox"

    def __init__(
        self,
        kind: ChannelKind,
        directory: Path,
        *,
        sender: str = "aftersale <noreply@localhost>",
        reply_to: str | None = None,
    ) -> None:
        self.kind = kind
        self.directory = Path(directory)
        self.sender = sender
        self.reply_to = reply_to
        self._lock = threading.Lock()

    @property
    def email_dir(self) -> Path:
        """Where ``.eml`` files go."""
        return self.directory / "email"

    @property
    def sms_log(self) -> Path:
        """The JSON-lines file text messages are appended to."""
        return self.directory / "sms.jsonl"

    def send(self, message: OutgoingMessage) -> SendResult:
        """Write ``message`` to the outbox."""
        if message.kind != self.kind:
            raise ValueError(f"{self.kind} outbox cannot send a {message.kind} message")
        if not _SAFE_NAME.match(message.message_id):
            raise ValueError(f"message id {message.message_id!r} is not a safe file name")
        try:
            if message.kind == "email":
                return self._write_email(message)
            return self._append_sms(message)
        except OSError as exc:
            raise TransientChannelError(f"outbox write failed: {exc}", provider=self.name) from exc

    def _write_email(self, message: OutgoingMessage) -> SendResult:
        em = build_email(message, sender=self.sender, reply_to=self.reply_to)
        _private_dir(self.email_dir)
        target = self.email_dir / f"{message.message_id}.eml"
        # Write then rename, so a reader never sees half a message.
        fd, tmp = tempfile.mkstemp(dir=self.email_dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(em.as_bytes())
        os.replace(tmp, target)
        return SendResult(
            provider=self.name, provider_message_id=em["Message-ID"], details={"path": str(target)}
        )

    def _append_sms(self, message: OutgoingMessage) -> SendResult:
        record = {
            "message_id": message.message_id,
            "to": message.to,
            "body": message.body_text,
            "category": message.category,
            "customer_id": message.customer_id,
            "journey": message.journey,
            "step": message.step,
            "written_at": datetime.now(UTC).isoformat(),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            _private_dir(self.directory)
            fd = os.open(self.sms_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line)
        return SendResult(
            provider=self.name,
            provider_message_id=message.message_id,
            details={"path": str(self.sms_log)},
        )


def _private_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) readable by the owner only: messages hold
    addresses and personal links. mkstemp already creates each file 0600.

    One ``stat`` when it exists, as it does for every message after the first, rather
    than one for each of its parents per message."""
    if directory.is_dir():
        return
    for folder in reversed([directory, *directory.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)  # another send may create it first

"""Plain SMTP delivery with the standard library (a relay, Postfix, Mailpit...)."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
import urllib.parse
from dataclasses import dataclass

from channels.base import (
    AmbiguousChannelError,
    Channel,
    ChannelError,
    OutgoingMessage,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
)
from channels.errors import ConfigurationError
from channels.mime import SMTP_POLICY, build_email, envelope_sender
from channels.redaction import redact

PROVIDER = "smtp"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class SMTPServer:
    """Where and how to connect, parsed from an ``smtp://`` or ``smtps://`` URL."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    @classmethod
    def parse(cls, url: str) -> SMTPServer:
        """Parse ``smtp://user:pass@host:587?starttls=1&timeout=5`` or ``smtps://host:465``."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigurationError(
                f"SMTP URL must look like smtp://host:port, got {redact(url)!r}"
            )
        query = dict(urllib.parse.parse_qsl(parts.query))
        implicit_tls = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if implicit_tls else 25)
            timeout = float(query.get("timeout", 10))
        except ValueError as exc:
            raise ConfigurationError(
                f"invalid SMTP URL {redact(url)!r}: {redact(str(exc))}"
            ) from exc
        unquote = urllib.parse.unquote
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=implicit_tls,
            starttls=query.get("starttls", "").lower() in _TRUE,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )


class SMTPChannel(Channel):
    """Sends e-mail over SMTP, reusing one connection under a lock."""

    name = PROVIDER
    kind = "email"

    def __init__(
        self,
        server: SMTPServer,
        *,
        sender: str,
        reply_to: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = server
        self.sender = sender
        self.reply_to = reply_to
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        sender: str,
        reply_to: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> SMTPChannel:
        """Build a channel from an ``smtp://`` or ``smtps://`` URL."""
        return cls(SMTPServer.parse(url), sender=sender, reply_to=reply_to, ssl_context=ssl_context)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver ``message``; the Message-ID header is the provider message id."""
        em = build_email(message, sender=self.sender, reply_to=self.reply_to)
        envelope_from = envelope_sender(self.sender)
        data = em.as_bytes(policy=SMTP_POLICY)
        with self._lock:
            conn = self._connection()
            try:
                self._envelope(conn, envelope_from, message.to)
            except smtplib.SMTPServerDisconnected:
                # A reused connection the server had dropped: nothing was sent yet.
                conn = self._connection()
                try:
                    self._envelope(conn, envelope_from, message.to)
                except smtplib.SMTPServerDisconnected as exc:
                    raise TransientChannelError(
                        f"SMTP server closed the connection: {exc}", provider=PROVIDER
                    ) from exc
            self._data(conn, data)
        return SendResult(provider=PROVIDER, provider_message_id=em["Message-ID"])

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._conn.quit()
                self._drop()

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> smtplib.SMTP:
        s = self.server
        try:
            if s.implicit_tls:
                conn = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self._ssl_context
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        except smtplib.SMTPResponseException as exc:  # a greeting other than 220
            raise _reply_error("greeting", exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(
                f"SMTP server {s.host}:{s.port} unreachable: {exc}", provider=PROVIDER
            ) from exc
        try:
            self._handshake(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _handshake(self, conn: smtplib.SMTP) -> None:
        """EHLO, STARTTLS and AUTH, with their failures classified."""
        s = self.server
        try:
            conn.ehlo()
            if s.starttls:
                conn.starttls(context=self._ssl_context)
                conn.ehlo()
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentChannelError(
                f"SMTP login refused: {exc.smtp_error!r}", provider=PROVIDER, status=exc.smtp_code
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error("connect", exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(
                f"SMTP handshake with {s.host}:{s.port} failed: {exc}", provider=PROVIDER
            ) from exc

    def _envelope(self, conn: smtplib.SMTP, sender: str, recipient: str) -> None:
        """MAIL FROM and RCPT TO: failures here mean nothing was sent.

        A dropped connection is re-raised as is so the caller can reconnect once.
        """
        try:
            code, reply = conn.mail(sender)
            if code == 250:
                code, reply = conn.rcpt(recipient)
                stage = "RCPT TO"
            else:
                stage = "MAIL FROM"
        except smtplib.SMTPServerDisconnected:
            self._drop()
            raise
        except OSError as exc:
            self._drop()
            raise TransientChannelError(
                f"SMTP connection failed: {exc}", provider=PROVIDER
            ) from exc
        if code not in (250, 251):
            self._reset(conn)
            raise _reply_error(stage, code, reply)

    def _data(self, conn: smtplib.SMTP, data: bytes) -> None:
        """DATA: once the content is on the wire, a lost answer is ambiguous."""
        try:
            code, reply = conn.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused, before any content
            self._reset(conn)
            raise _reply_error("DATA", exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise AmbiguousChannelError(
                f"SMTP connection lost during DATA: {exc}", provider=PROVIDER
            ) from exc
        if code != 250:
            self._reset(conn)
            raise _reply_error("end of DATA", code, reply)

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _reply_error(stage: str, code: int, reply: bytes | str) -> ChannelError:
    """4xx replies are temporary by definition (RFC 5321); 5xx are final."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    message = f"SMTP {stage} refused: {code} {text}"
    if 400 <= code < 500:
        return TransientChannelError(message, provider=PROVIDER, status=code)
    return PermanentChannelError(message, provider=PROVIDER, status=code)

"""A recording SMTP server on loopback, built on aiosmtpd's ``Controller``."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# What the server does instead of accepting; see FakeSMTP.fail_next.
FAILURES = ("transient", "permanent", "rejected_recipient", "disconnect", "timeout")


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message as the server took it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the standard library."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, owner: FakeSMTP) -> None:
        self.owner = owner

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.owner._count_session()
        session.host_name = hostname
        return responses

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.owner.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.owner._peek_failure() == "rejected_recipient":
            self.owner._take_failure()
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        failure = self.owner._take_failure()
        if failure == "transient":
            return "451 4.3.0 Temporary failure, try again later"
        if failure == "permanent":
            return "554 5.7.1 Message rejected"
        if failure == "disconnect":
            server.transport.close()
            return "421 closing"
        if failure == "timeout":
            await asyncio.sleep(self.owner.hang_seconds)
            return "451 too late"
        self.owner._store(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 2.0.0 Queued"


def self_signed_certificate() -> tuple[bytes, bytes]:
    """A throwaway certificate for 127.0.0.1 and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSMTP:
    """An SMTP server on 127.0.0.1 that keeps every message in :attr:`messages`.

    With ``username``/``password`` it advertises AUTH (over plain text: it is loopback).
    :attr:`sessions` counts EHLO greetings, i.e. connections (with STARTTLS: two each).
    ``fail_next(n, kind)`` with kind in ``transient`` (451 after DATA), ``permanent``
    (554 after DATA), ``rejected_recipient`` (550 at RCPT), ``disconnect`` (connection
    closed after the content was sent) or ``timeout`` (no answer after the content).
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        hang_seconds: float = 5.0,
        idle_timeout: float = 300.0,
        starttls: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.hang_seconds = hang_seconds
        self.idle_timeout = idle_timeout
        self.starttls = starttls
        self.certificate_pem: bytes | None = None
        self.messages: list[ReceivedMail] = []
        self.sessions = 0
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._controller: Controller | None = None

    def start(self) -> Self:
        """Start the server thread."""
        kw: dict[str, Any] = {"timeout": self.idle_timeout}
        if self.username is not None:
            kw |= {
                "authenticator": self._authenticate,
                "auth_require_tls": False,
                # Enforced in handle_RCPT: aiosmtpd warns when AUTH is required without TLS.
                "auth_required": False,
            }
        if self.starttls:
            kw |= {"tls_context": self._server_tls(), "require_starttls": True}
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=_free_port(), **kw)
        self._controller.start()
        return self

    def _server_tls(self) -> ssl.SSLContext:
        cert, key = self_signed_certificate()
        self.certificate_pem = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # load_cert_chain only reads files; they are needed for this call only.
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "cert.pem").write_bytes(cert)
            (Path(tmp) / "key.pem").write_bytes(key)
            context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        if self.certificate_pem is None:
            raise RuntimeError("start the server with starttls=True first")
        return ssl.create_default_context(cadata=self.certificate_pem.decode())

    def stop(self) -> None:
        """Stop the server thread."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._controller is None:
            raise RuntimeError("the fake SMTP server is not running")
        return int(self._controller.port)

    @property
    def url(self) -> str:
        """An ``smtp://`` URL for :meth:`channels.smtp.SMTPChannel.from_url`."""
        auth = f"{self.username}:{self.password}@" if self.username is not None else ""
        query = "?starttls=1" if self.starttls else ""
        return f"smtp://{auth}127.0.0.1:{self.port}{query}"

    def fail_next(self, n: int, kind: str) -> None:
        """Make the next ``n`` messages fail with ``kind``."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure kind {kind!r}; use {FAILURES}")
        with self._lock:
            self._script.extend([kind] * n)

    def reset(self) -> None:
        """Forget received messages and scripted failures."""
        with self._lock:
            self.messages.clear()
            self._script.clear()
            self.sessions = 0

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        # handled=False: let aiosmtpd answer 535 itself on failure.
        return AuthResult(success=ok, handled=False)

    def _count_session(self) -> None:
        with self._lock:
            self.sessions += 1

    def _peek_failure(self) -> str | None:
        with self._lock:
            return self._script[0] if self._script else None

    def _take_failure(self) -> str | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _store(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)

"""One contract, every channel: what the provider saw, and how failures are classified.

Each implementation runs against the real thing it would talk to on loopback: the
in-memory list, files on disk, the fake SendGrid and Twilio HTTP servers with the official
clients, and an aiosmtpd server with smtplib.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from channels import (
    AmbiguousChannelError,
    Channel,
    ChannelError,
    OutgoingMessage,
    PermanentChannelError,
    TransientChannelError,
)
from channels.base import ChannelKind
from channels.fakes import FakeSendGrid, FakeSMTP, FakeTwilio
from channels.memory import InMemoryChannel
from channels.outbox import OutboxChannel
from channels.sendgrid import SendGridChannel
from channels.smtp import SMTPChannel
from channels.twilio import TwilioChannel

SENDER = "Küchenhaus Weber <service@kuechenhaus.example>"
EXPECTED_ERRORS: dict[str, type[ChannelError]] = {
    "transient": TransientChannelError,
    "permanent": PermanentChannelError,
    "ambiguous": AmbiguousChannelError,
}


@dataclass
class Received:
    """What the far side got, reduced to the fields every provider can show."""

    message_id: str | None
    to: str
    text: str
    subject: str = ""
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Harness:
    channel: Channel
    kind: ChannelKind
    received: Callable[[], list[Received]]
    # Make the next send fail in the named way ("transient", "permanent", "ambiguous").
    inject: dict[str, Callable[[], None]]


# -- one harness per implementation ----------------------------------------------------


def _memory(kind: ChannelKind, tmp_path: Path) -> Iterator[Harness]:
    channel = InMemoryChannel(kind)

    def received() -> list[Received]:
        return [
            Received(m.message_id, m.to, m.body_text, m.subject, m.body_html, dict(m.headers))
            for m in channel.sent
        ]

    inject = {
        name: (lambda cls=cls: channel.fail_next(cls("scripted", provider="memory")))
        for name, cls in EXPECTED_ERRORS.items()
    }
    yield Harness(channel, kind, received, inject)


def _parse_eml(data: bytes) -> Received:
    # On the wire lines end in CRLF; compare content the way a mail client shows it.
    msg = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return Received(
        msg["X-Aftersale-Message-Id"],
        msg["To"],
        text.get_content() if text else "",
        msg["Subject"],
        html.get_content() if html else None,
        {k: str(v) for k, v in msg.items()},
    )


def _outbox(kind: ChannelKind, tmp_path: Path) -> Iterator[Harness]:
    channel = OutboxChannel(kind, tmp_path / "outbox", sender=SENDER)

    def received() -> list[Received]:
        if kind == "email":
            files = sorted(channel.email_dir.glob("*.eml")) if channel.email_dir.exists() else []
            return [_parse_eml(f.read_bytes()) for f in files]
        if not channel.sms_log.is_file():
            return []
        lines = channel.sms_log.read_text(encoding="utf-8").splitlines()
        return [Received(r["message_id"], r["to"], r["body"]) for r in map(json.loads, lines)]

    def block_writes() -> None:
        # A file where the outbox needs a directory (and vice versa): a real OS error.
        target = channel.email_dir if kind == "email" else channel.sms_log
        channel.directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        (target.mkdir() if kind == "sms" else target.write_text("in the way"))

    yield Harness(channel, kind, received, {"transient": block_writes})


def _sendgrid(kind: ChannelKind, tmp_path: Path) -> Iterator[Harness]:
    with FakeSendGrid(hang_seconds=5) as server:
        channel = SendGridChannel(api_key=server.api_key, host=server.url, sender=SENDER, timeout=1)

        def received() -> list[Received]:
            return [_from_sendgrid(body) for body in server.requests]

        inject = {
            "transient": lambda: server.fail_next(1, "server_error"),
            "permanent": lambda: server.fail_next(1, "bad_request"),
            "ambiguous": lambda: server.fail_next(1, "timeout"),
        }
        yield Harness(channel, kind, received, inject)


def _from_sendgrid(body: dict) -> Received:
    parts = {c["type"]: c["value"] for c in body["content"]}
    return Received(
        body["custom_args"]["aftersale_message_id"],
        body["personalizations"][0]["to"][0]["email"],
        parts["text/plain"],
        body["subject"],
        parts.get("text/html"),
        body.get("headers", {}),
    )


def _twilio(kind: ChannelKind, tmp_path: Path) -> Iterator[Harness]:
    with FakeTwilio(hang_seconds=5) as server:
        channel = TwilioChannel(
            account_sid=server.account_sid,
            auth_token=server.auth_token,
            from_number="+4930901820",
            api_base_url=server.url,
            status_callback="https://shop.example/webhooks/twilio/status",
            timeout=1,
        )

        def received() -> list[Received]:
            return [
                Received(_callback_message_id(form["StatusCallback"]), form["To"], form["Body"])
                for form in server.requests
            ]

        inject = {
            "transient": lambda: server.fail_next(1, "rate_limit"),
            "permanent": lambda: server.fail_next(1, "invalid_number"),
            "ambiguous": lambda: server.fail_next(1, "disconnect"),
        }
        yield Harness(channel, kind, received, inject)
        channel.close()


def _callback_message_id(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["aftersale_message_id"][0]


def _smtp(kind: ChannelKind, tmp_path: Path) -> Iterator[Harness]:
    with FakeSMTP(hang_seconds=3) as server:
        channel = SMTPChannel.from_url(server.url + "?timeout=1", sender=SENDER)

        def received() -> list[Received]:
            return [_parse_eml(m.data) for m in server.messages]

        inject = {
            "transient": lambda: server.fail_next(1, "transient"),
            "permanent": lambda: server.fail_next(1, "permanent"),
            "ambiguous": lambda: server.fail_next(1, "disconnect"),
        }
        yield Harness(channel, kind, received, inject)
        channel.close()


IMPLEMENTATIONS = {
    "memory-email": (_memory, "email"),
    "memory-sms": (_memory, "sms"),
    "outbox-email": (_outbox, "email"),
    "outbox-sms": (_outbox, "sms"),
    "sendgrid": (_sendgrid, "email"),
    "twilio": (_twilio, "sms"),
    "smtp": (_smtp, "email"),
}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    factory, kind = IMPLEMENTATIONS[request.param]
    yield from factory(kind, tmp_path)


def make_message(kind: ChannelKind, n: int = 1) -> OutgoingMessage:
    if kind == "sms":
        return OutgoingMessage(
            message_id=f"msg-{n}",
            kind="sms",
            to="+4915112345678",
            body_text=f"Hallo Anna, Ihre Inspektion ist fällig ({n}). STOP=Abmelden",
            category="marketing",
            journey="inspection",
            step="invite",
        )
    return OutgoingMessage(
        message_id=f"msg-{n}",
        kind="email",
        to="anna.schmidt@example.org",
        subject=f"Zeit für die kostenlose Inspektion Ihrer Waschmaschine ({n})",
        body_text="Hallo Anna,\n\nIhre Waschmaschine wird 3 Monate alt.\n",
        body_html="<html><body><p style='color:#333'>Hallo Anna,</p></body></html>",
        headers={
            "List-Unsubscribe": "<https://shop.example/u/tok-1>, <mailto:unsub@shop.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        category="marketing",
        customer_id="c1",
        journey="inspection",
        step="invite",
    )


# -- the contract ------------------------------------------------------------------------


def test_send_delivers_exactly_the_content(harness: Harness) -> None:
    message = make_message(harness.kind)

    result = harness.channel.send(message)

    assert result.provider == harness.channel.name
    [got] = harness.received()
    assert got.message_id == message.message_id
    assert got.to == message.to
    assert got.text.strip() == message.body_text.strip()
    if harness.kind == "email":
        assert got.subject == message.subject
        assert got.html is not None and got.html.strip() == message.body_html.strip()
        for name, value in message.headers.items():
            assert got.headers[name] == value


def test_provider_message_id_is_returned(harness: Harness) -> None:
    first = harness.channel.send(make_message(harness.kind, 1))
    second = harness.channel.send(make_message(harness.kind, 2))

    assert first.provider_message_id and second.provider_message_id
    assert first.provider_message_id != second.provider_message_id


@pytest.mark.parametrize("failure", list(EXPECTED_ERRORS))
def test_failures_are_classified(harness: Harness, failure: str) -> None:
    if failure not in harness.inject:
        pytest.skip(f"{harness.channel.name} cannot fail {failure}ly")
    harness.inject[failure]()

    with pytest.raises(ChannelError) as caught:
        harness.channel.send(make_message(harness.kind))

    assert type(caught.value) is EXPECTED_ERRORS[failure]
    assert caught.value.provider == harness.channel.name
    assert harness.received() == []


@pytest.mark.parametrize("failure", list(EXPECTED_ERRORS))
def test_channel_recovers_after_a_failure(harness: Harness, failure: str) -> None:
    if failure not in harness.inject or harness.channel.name == "outbox":
        pytest.skip("nothing to recover from")
    harness.inject[failure]()
    with pytest.raises(ChannelError):
        harness.channel.send(make_message(harness.kind, 1))

    harness.channel.send(make_message(harness.kind, 2))

    assert [r.message_id for r in harness.received()] == ["msg-2"]


def test_concurrent_sends_each_arrive_once(harness: Harness) -> None:
    messages = [make_message(harness.kind, n) for n in range(24)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(harness.channel.send, messages))

    assert len({r.provider_message_id for r in results}) == len(messages)
    assert sorted(r.message_id for r in harness.received()) == sorted(
        m.message_id for m in messages
    )


def test_wrong_kind_is_refused(harness: Harness) -> None:
    other: ChannelKind = "sms" if harness.kind == "email" else "email"

    with pytest.raises(ValueError):
        harness.channel.send(make_message(other))

    assert harness.received() == []

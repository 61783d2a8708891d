"""smtplib against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from channels import (
    AmbiguousChannelError,
    OutgoingMessage,
    PermanentChannelError,
    TransientChannelError,
)
from channels.fakes import FakeSMTP
from channels.smtp import SMTPChannel

SENDER = "Küchenhaus Weber <service@kuechenhaus.example>"


def mail(n: int = 1) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"mail-{n}",
        kind="email",
        to="anna@example.org",
        subject="Danke für Ihren Einkauf – Ihre Waschmaschine",
        body_text="Hallo Anna,\n.\nEine Zeile mit nur einem Punkt.\n",
        body_html="<p>Hallo Anna</p>",
        headers={"List-Unsubscribe": "<https://shop.example/u/1>"},
    )


@pytest.fixture
def server() -> Iterator[FakeSMTP]:
    with FakeSMTP(username="shop", password="p@ss word", hang_seconds=3) as fake:
        yield fake


def channel_for(server: FakeSMTP, **query: str) -> SMTPChannel:
    url = f"smtp://shop:p%40ss%20word@127.0.0.1:{server.port}?timeout=1"
    url += "".join(f"&{k}={v}" for k, v in query.items())
    return SMTPChannel.from_url(url, sender=SENDER, reply_to="hilfe@kuechenhaus.example")


def test_login_and_envelope(server: FakeSMTP) -> None:
    channel = channel_for(server)

    result = channel.send(mail())

    [received] = server.messages
    assert received.mail_from == "service@kuechenhaus.example"
    assert received.rcpt_tos == ["anna@example.org"]
    msg = received.message
    assert msg["Subject"] == mail().subject
    assert msg["Reply-To"] == "hilfe@kuechenhaus.example"
    assert msg["Message-ID"] == result.provider_message_id == "<mail-1@kuechenhaus.example>"
    # Dot-stuffing survived the trip: the lone "." line is content, not end of DATA.
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == mail().body_text
    channel.close()


def test_wrong_password_is_permanent(server: FakeSMTP) -> None:
    channel = SMTPChannel.from_url(
        f"smtp://shop:wrong@127.0.0.1:{server.port}?timeout=1", sender=SENDER
    )

    with pytest.raises(PermanentChannelError) as caught:
        channel.send(mail())

    assert caught.value.status == 535
    assert server.messages == []


def test_one_connection_serves_many_messages(server: FakeSMTP) -> None:
    channel = channel_for(server)

    for n in range(5):
        channel.send(mail(n))

    assert len(server.messages) == 5
    assert server.sessions == 1
    channel.close()


def test_reconnects_after_the_server_dropped_an_idle_connection() -> None:
    with FakeSMTP(idle_timeout=0.2) as server:
        channel = SMTPChannel.from_url(server.url, sender=SENDER)
        channel.send(mail(1))
        time.sleep(0.5)  # the server closes the idle connection meanwhile

        channel.send(mail(2))

        assert [m.message["X-Aftersale-Message-Id"] for m in server.messages] == [
            "mail-1",
            "mail-2",
        ]
        assert server.sessions == 2
        channel.close()


def test_rejected_recipient_is_permanent_and_connection_stays_usable(server: FakeSMTP) -> None:
    channel = channel_for(server)
    server.fail_next(1, "rejected_recipient")

    with pytest.raises(PermanentChannelError) as caught:
        channel.send(mail(1))
    channel.send(mail(2))

    assert caught.value.status == 550
    assert len(server.messages) == 1 and server.sessions == 1
    channel.close()


def test_no_answer_after_data_is_ambiguous(server: FakeSMTP) -> None:
    server.fail_next(1, "timeout")

    with pytest.raises(AmbiguousChannelError):
        channel_for(server).send(mail())


def test_unreachable_server_is_transient(server: FakeSMTP) -> None:
    port = server.port
    server.stop()

    with pytest.raises(TransientChannelError):
        SMTPChannel.from_url(f"smtp://127.0.0.1:{port}?timeout=1", sender=SENDER).send(mail())


def test_starttls_then_login() -> None:
    with FakeSMTP(username="shop", password="pw", starttls=True) as server:
        channel = SMTPChannel.from_url(
            f"smtp://shop:pw@127.0.0.1:{server.port}?starttls=1&timeout=2",
            sender=SENDER,
            ssl_context=server.client_ssl_context(),
        )

        channel.send(mail())
        channel.close()

        assert len(server.messages) == 1
        assert server.sessions == 2  # EHLO before and after STARTTLS


def test_untrusted_certificate_is_not_accepted() -> None:
    with FakeSMTP(starttls=True) as server:
        channel = SMTPChannel.from_url(server.url + "&timeout=2", sender=SENDER)

        with pytest.raises(TransientChannelError, match="handshake"):
            channel.send(mail())

        assert server.messages == []

"""The official SendGrid client against the fake Mail Send API on loopback."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from channels import (
    AmbiguousChannelError,
    OutgoingMessage,
    PermanentChannelError,
    TransientChannelError,
)
from channels.errors import ConfigurationError
from channels.fakes import FakeSendGrid
from channels.sendgrid import SendGridChannel

MESSAGE = OutgoingMessage(
    message_id="01JABCDEF",
    kind="email",
    to="jonas@example.org",
    subject="Ihre Garantie läuft in 30 Tagen ab",
    body_text="Verlängern Sie jetzt um 2 Jahre.",
    body_html="<p>Verlängern Sie jetzt um <b>2 Jahre</b>.</p>",
    headers={
        "List-Unsubscribe": "<https://shop.example/u/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
    category="marketing",
    journey="warranty",
    step="offer-30d",
)


@pytest.fixture
def server() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key="SG.secret", hang_seconds=5) as fake:
        yield fake


@pytest.fixture
def channel(server: FakeSendGrid) -> SendGridChannel:
    return SendGridChannel(
        api_key="SG.secret",
        host=server.url,
        sender="Küchenhaus Weber <service@kuechenhaus.example>",
        reply_to="Kundendienst <hilfe@kuechenhaus.example>",
        timeout=1,
    )


def test_request_carries_everything_sendgrid_needs(
    server: FakeSendGrid, channel: SendGridChannel
) -> None:
    result = channel.send(MESSAGE)

    [body] = server.requests
    assert body["personalizations"] == [{"to": [{"email": "jonas@example.org"}]}]
    assert body["from"] == {"email": "service@kuechenhaus.example", "name": "Küchenhaus Weber"}
    assert body["reply_to"] == {"email": "hilfe@kuechenhaus.example", "name": "Kundendienst"}
    assert body["subject"] == MESSAGE.subject
    assert body["content"] == [
        {"type": "text/plain", "value": MESSAGE.body_text},
        {"type": "text/html", "value": MESSAGE.body_html},
    ]
    assert body["custom_args"] == {"aftersale_message_id": "01JABCDEF"}
    assert body["categories"] == ["warranty", "offer-30d"]
    assert body["headers"] == MESSAGE.headers
    [headers] = server.request_headers
    assert headers["Authorization"] == "Bearer SG.secret"
    assert headers["Content-Type"] == "application/json"
    assert result.provider_message_id and len(result.provider_message_id) >= 16
    assert result.details == {"status": 202}


def test_text_only_message_sends_one_part(server: FakeSendGrid, channel: SendGridChannel) -> None:
    plain = OutgoingMessage(
        message_id="t1", kind="email", to="a@example.org", subject="Danke", body_text="Danke!"
    )

    channel.send(plain)

    [body] = server.requests
    assert body["content"] == [{"type": "text/plain", "value": "Danke!"}]
    assert "categories" not in body and "headers" not in body


def test_rate_limit_reports_when_to_retry(server: FakeSendGrid, channel: SendGridChannel) -> None:
    server.rate_limit_reset = 40
    server.fail_next(1, "rate_limit")

    with pytest.raises(TransientChannelError) as caught:
        channel.send(MESSAGE)

    assert caught.value.status == 429
    assert caught.value.retry_after is not None and 38 <= caught.value.retry_after <= 40


def test_wrong_api_key_is_permanent(server: FakeSendGrid) -> None:
    channel = SendGridChannel(api_key="SG.wrong", host=server.url, sender="s@example.org")

    with pytest.raises(PermanentChannelError) as caught:
        channel.send(MESSAGE)

    assert caught.value.status == 401
    assert "authorization grant is invalid" in str(caught.value)
    assert server.requests == []


def test_rejected_payload_carries_provider_text(
    server: FakeSendGrid, channel: SendGridChannel
) -> None:
    bad = OutgoingMessage(message_id="b1", kind="email", to="not-an-address", body_text="x")

    with pytest.raises(PermanentChannelError) as caught:
        channel.send(bad)

    assert caught.value.status == 400
    assert "does not contain a valid address" in str(caught.value)


def test_disconnect_after_request_is_ambiguous(
    server: FakeSendGrid, channel: SendGridChannel
) -> None:
    server.fail_next(1, "disconnect")

    with pytest.raises(AmbiguousChannelError):
        channel.send(MESSAGE)

    # The fake did receive the request: re-sending would risk a duplicate.
    assert len(server.calls) == 1 and server.calls[0].failure == "disconnect"


def test_read_timeout_is_ambiguous_and_bounded(
    server: FakeSendGrid, channel: SendGridChannel
) -> None:
    server.fail_next(1, "timeout")
    started = time.monotonic()

    with pytest.raises(AmbiguousChannelError):
        channel.send(MESSAGE)

    assert time.monotonic() - started < 3


def test_refused_connection_is_transient() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = SendGridChannel(api_key="k", host=f"http://127.0.0.1:{port}", sender="s@example.org")

    with pytest.raises(TransientChannelError):
        channel.send(MESSAGE)


def test_failure_rate_is_seeded_and_roughly_right(server: FakeSendGrid) -> None:
    channel = SendGridChannel(api_key="SG.secret", host=server.url, sender="s@example.org")
    server.failure_rate(0.3, ["server_error", "rate_limit"], seed=7)

    outcomes = []
    for _ in range(200):
        try:
            channel.send(MESSAGE)
            outcomes.append("ok")
        except TransientChannelError as exc:
            outcomes.append(str(exc.status))

    failures = 200 - outcomes.count("ok")
    assert 40 <= failures <= 80
    assert {"429", "500"} <= set(outcomes)
    assert len(server.requests) == outcomes.count("ok")


def test_reset_forgets_requests_and_failures(
    server: FakeSendGrid, channel: SendGridChannel
) -> None:
    channel.send(MESSAGE)
    server.fail_next(3, "server_error")

    server.reset()

    assert server.requests == [] and server.calls == []
    channel.send(MESSAGE)
    assert len(server.requests) == 1


def test_fake_answers_like_sendgrid_without_the_client(server: FakeSendGrid) -> None:
    body = json.dumps(SendGridChannel(api_key="x", sender="s@example.org").payload(MESSAGE))
    request = urllib.request.Request(
        server.url + "/v3/mail/send",
        data=body.encode(),
        headers={"Authorization": "Bearer SG.secret", "Content-Type": "application/json"},
    )

    with urllib.request.urlopen(request, timeout=2) as response:
        assert response.status == 202
        assert response.read() == b""
        assert response.headers["X-Message-Id"]


def test_unknown_failure_kind_is_refused(server: FakeSendGrid) -> None:
    with pytest.raises(ValueError, match="unknown failure kinds"):
        server.fail_next(1, "opted_out")


def test_missing_api_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        SendGridChannel(api_key="", sender="s@example.org")


def test_fake_serves_many_requests_on_one_kept_alive_connection(server: FakeSendGrid) -> None:
    # How fast it serves them is a benchmark figure (bench_providers), not a test.
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(SendGridChannel(api_key="x", sender="s@example.org").payload(MESSAGE))
    headers = {"Authorization": "Bearer SG.secret", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    n = 1500
    for _ in range(n):
        conn.request("POST", "/v3/mail/send", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 202
    conn.close()

    assert len(server.requests) == n

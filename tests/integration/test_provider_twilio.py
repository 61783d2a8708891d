"""The official Twilio client against the fake Messages API on loopback."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from channels import (
    AmbiguousChannelError,
    DeliveryEvent,
    EventType,
    OutgoingMessage,
    PermanentChannelError,
    RecipientOptedOut,
    TransientChannelError,
)
from channels.errors import ConfigurationError
from channels.fakes import FakeTwilio
from channels.twilio import TwilioChannel, parse_twilio_status, verify_twilio_signature

SID = "AC" + "1234abcd" * 4
TOKEN = "s3cret-token"


def sms(text: str = "Hallo Anna, Ihre Inspektion ist fällig. STOP=Abmelden") -> OutgoingMessage:
    return OutgoingMessage(message_id="m-42", kind="sms", to="+4915112345678", body_text=text)


@pytest.fixture
def server() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=SID, auth_token=TOKEN, hang_seconds=5) as fake:
        yield fake


@pytest.fixture
def make_channel(server: FakeTwilio) -> Iterator[Callable[..., TwilioChannel]]:
    made: list[TwilioChannel] = []

    def make(**kw: object) -> TwilioChannel:
        options: dict = {"account_sid": SID, "auth_token": TOKEN, "from_number": "+4930901820"}
        options.setdefault("api_base_url", kw.get("api_base_url") or server.url)
        options.update(timeout=1, **kw)
        made.append(TwilioChannel(**options))
        return made[-1]

    yield make
    for channel in made:
        channel.close()


def test_create_posts_the_form_twilio_expects(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    channel = make_channel(status_callback="https://shop.example/hooks/twilio?src=as")

    result = channel.send(sms())

    [form] = server.requests
    assert form["To"] == "+4915112345678"
    assert form["From"] == "+4930901820"
    assert form["Body"] == sms().body_text
    callback = urllib.parse.urlsplit(form["StatusCallback"])
    assert callback.netloc == "shop.example" and callback.path == "/hooks/twilio"
    assert urllib.parse.parse_qs(callback.query) == {
        "src": ["as"],
        "aftersale_message_id": ["m-42"],
    }
    assert result.provider_message_id.startswith("SM") and len(result.provider_message_id) == 34
    assert result.details == {"status": "queued", "num_segments": 1, "encoding": "GSM-7"}


def test_messaging_service_replaces_the_sender(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    channel = make_channel(from_number=None, messaging_service_sid="MG" + "0" * 32)

    result = channel.send(sms())

    [form] = server.requests
    assert form["MessagingServiceSid"] == "MG" + "0" * 32 and "From" not in form
    assert "StatusCallback" not in form
    assert result.details["status"] == "accepted"


@pytest.mark.parametrize(
    ("text", "segments", "encoding"),
    [
        ("a" * 160, 1, "GSM-7"),
        ("a" * 161, 2, "GSM-7"),
        ("Grüße aus Köln " * 10, 1, "GSM-7"),
        ("€" * 80, 1, "GSM-7"),
        ("€" * 81, 2, "GSM-7"),
        ("„Danke“ " * 9, 2, "UCS-2"),
    ],
)
def test_segments_and_encoding_are_reported(
    server: FakeTwilio,
    text: str,
    segments: int,
    encoding: str,
    make_channel: Callable[..., TwilioChannel],
) -> None:
    result = make_channel().send(sms(text))

    assert result.details["num_segments"] == segments
    assert result.details["encoding"] == encoding


def test_opted_out_recipient_is_its_own_error(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    server.fail_next(1, "opted_out")

    with pytest.raises(RecipientOptedOut) as caught:
        make_channel().send(sms())

    assert caught.value.code == "21610" and caught.value.status == 400
    assert isinstance(caught.value, PermanentChannelError)


def test_invalid_number_is_permanent_even_without_injection(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    bad = OutgoingMessage(message_id="x", kind="sms", to="0151 1234", body_text="hi")

    with pytest.raises(PermanentChannelError) as caught:
        make_channel().send(bad)

    assert caught.value.code == "21211"
    assert not isinstance(caught.value, RecipientOptedOut)


@pytest.mark.parametrize(("kind", "status"), [("rate_limit", 429), ("server_error", 500)])
def test_throttling_and_outages_are_transient(
    server: FakeTwilio, kind: str, status: int, make_channel: Callable[..., TwilioChannel]
) -> None:
    server.fail_next(1, kind)

    with pytest.raises(TransientChannelError) as caught:
        make_channel().send(sms())

    assert caught.value.status == status


def test_wrong_credentials_are_permanent(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    with pytest.raises(PermanentChannelError) as caught:
        make_channel(auth_token="wrong").send(sms())

    assert caught.value.status == 401 and caught.value.code == "20003"


@pytest.mark.parametrize("kind", ["timeout", "disconnect"])
def test_lost_answer_is_ambiguous(
    server: FakeTwilio, kind: str, make_channel: Callable[..., TwilioChannel]
) -> None:
    server.fail_next(1, kind)

    with pytest.raises(AmbiguousChannelError):
        make_channel().send(sms())


def test_refused_connection_is_transient(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    url = server.url
    server.stop()

    with pytest.raises(TransientChannelError):
        make_channel(api_base_url=url).send(sms())


def test_channel_needs_a_sender() -> None:
    with pytest.raises(ConfigurationError):
        TwilioChannel(account_sid=SID, auth_token=TOKEN)


class _StatusReceiver(HTTPServer):
    """A stand-in for the web app's status endpoint: verify, then parse."""

    events: list[DeliveryEvent]
    rejected: int


class _StatusHandler(BaseHTTPRequestHandler):
    server: _StatusReceiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        params = dict(urllib.parse.parse_qsl(body.decode()))
        host, port = self.server.server_address[:2]
        url = f"http://{host}:{port}{self.path}"
        if verify_twilio_signature(TOKEN, url, params, self.headers.get("X-Twilio-Signature", "")):
            self.server.events.append(parse_twilio_status(params, url))
            self.send_response(204)
        else:
            self.server.rejected += 1
            self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def receiver() -> Iterator[_StatusReceiver]:
    httpd = _StatusReceiver(("127.0.0.1", 0), _StatusHandler)
    httpd.events, httpd.rejected = [], 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_status_callback_round_trip(
    server: FakeTwilio, receiver: _StatusReceiver, make_channel: Callable[..., TwilioChannel]
) -> None:
    port = receiver.server_address[1]
    channel = make_channel(status_callback=f"http://127.0.0.1:{port}/hooks/twilio/status")
    sid = channel.send(sms()).provider_message_id

    assert server.send_status_callback(sid, "sent") == 204
    assert server.send_status_callback(sid, "undelivered", error_code="30005") == 204

    sent, undelivered = receiver.events
    assert (sent.event_type, sent.message_id, sent.provider_message_id) == (
        EventType.QUEUED,
        "m-42",
        sid,
    )
    assert undelivered.event_type is EventType.BOUNCED
    assert (
        undelivered.recipient == "+4915112345678" and undelivered.event_id == f"{sid}:undelivered"
    )
    assert receiver.rejected == 0


def test_status_callback_with_another_token_is_rejected(
    server: FakeTwilio, receiver: _StatusReceiver, make_channel: Callable[..., TwilioChannel]
) -> None:
    port = receiver.server_address[1]
    channel = make_channel(status_callback=f"http://127.0.0.1:{port}/status")
    sid = channel.send(sms()).provider_message_id
    server.auth_token = "someone-else"

    assert server.send_status_callback(sid, "delivered") == 403
    assert receiver.events == [] and receiver.rejected == 1


def test_fake_never_calls_outside_loopback(
    server: FakeTwilio, make_channel: Callable[..., TwilioChannel]
) -> None:
    channel = make_channel(status_callback="https://shop.example/status")
    sid = channel.send(sms()).provider_message_id

    with pytest.raises(ValueError, match="non-loopback"):
        server.send_status_callback(sid, "delivered")

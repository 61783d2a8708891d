"""Webhook verification with real keys and signatures, and parsing into DeliveryEvent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from channels import ConfigurationError, EventType
from channels.fakes import SendGridSigner, twilio_signature
from channels.sendgrid import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    parse_sendgrid_events,
    verify_sendgrid_signature,
)
from channels.twilio import parse_twilio_inbound, parse_twilio_status, verify_twilio_signature

# Exactly the bytes SendGrid posts: compact JSON, one event per object.
SENDGRID_BODY = (
    b'[{"email":"anna@example.org","timestamp":1767261600,"event":"delivered",'
    b'"sg_event_id":"ZGVsaXZlcmVk-1","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",'
    b'"aftersale_message_id":"01JMSG","response":"250 OK"},'
    b'{"email":"anna@example.org","timestamp":1767261700,"event":"bounce","type":"bounce",'
    b'"sg_event_id":"Ym91bmNl-2","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",'
    b'"aftersale_message_id":"01JMSG","reason":"550 5.1.1 mailbox does not exist"}]'
)


@pytest.fixture(scope="module")
def signer() -> SendGridSigner:
    return SendGridSigner.generate()


def test_sendgrid_signature_as_sendgrid_signs_it(signer: SendGridSigner) -> None:
    headers = signer.headers(SENDGRID_BODY, "1767261800")

    assert verify_sendgrid_signature(
        signer.public_key, SENDGRID_BODY, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
    )


@pytest.mark.parametrize(
    "tamper",
    [
        "body",
        "timestamp",
        "reserialised",
        "other_key",
        "unsigned",
        "garbage",
    ],
)
def test_sendgrid_signature_rejects(signer: SendGridSigner, tamper: str) -> None:
    ts = "1767261800"
    signature = signer.sign(SENDGRID_BODY, ts)
    body = SENDGRID_BODY
    if tamper == "body":
        body = SENDGRID_BODY.replace(b"delivered", b"delivere\\u0064")
    elif tamper == "timestamp":
        ts = "1767261801"
    elif tamper == "reserialised":  # what a framework's parsed-and-dumped JSON looks like
        body = json.dumps(json.loads(SENDGRID_BODY)).encode()
    elif tamper == "other_key":
        signature = SendGridSigner.generate().sign(SENDGRID_BODY, ts)
    elif tamper == "unsigned":
        signature = ""
    else:
        signature = "not//base64!!"

    assert verify_sendgrid_signature(signer.public_key, body, signature, ts) is False


def test_sendgrid_invalid_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        verify_sendgrid_signature("bm90IGEga2V5", SENDGRID_BODY, "c2ln", "1")


def test_sendgrid_events_are_normalised() -> None:
    delivered, bounced = parse_sendgrid_events(SENDGRID_BODY)

    assert delivered.event_type is EventType.DELIVERED
    assert delivered.provider == "sendgrid"
    assert delivered.event_id == "ZGVsaXZlcmVk-1"
    assert delivered.message_id == "01JMSG"
    assert delivered.provider_message_id == "14c5d75ce93"
    assert delivered.recipient == "anna@example.org"
    assert delivered.timestamp == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert delivered.description == "250 OK"
    assert bounced.event_type is EventType.BOUNCED
    assert bounced.description == "550 5.1.1 mailbox does not exist"
    assert bounced.raw["type"] == "bounce"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("processed", EventType.QUEUED),
        ("deferred", EventType.DEFERRED),
        ("delivered", EventType.DELIVERED),
        ("bounce", EventType.BOUNCED),
        ("dropped", EventType.DROPPED),
        ("spamreport", EventType.COMPLAINED),
        ("unsubscribe", EventType.UNSUBSCRIBED),
        ("group_unsubscribe", EventType.UNSUBSCRIBED),
        ("open", EventType.OPENED),
        ("click", EventType.CLICKED),
        ("group_resubscribe", EventType.OPTED_IN),
        ("machine_opened", EventType.UNKNOWN),
    ],
)
def test_sendgrid_event_names(name: str, expected: EventType) -> None:
    [event] = parse_sendgrid_events(json.dumps([{"event": name}]).encode())

    assert event.event_type is expected
    assert event.message_id is None and event.timestamp is None


def test_sendgrid_legacy_unique_args_carry_the_message_id() -> None:
    body = json.dumps([{"event": "open", "unique_args": {"aftersale_message_id": "m9"}}])

    [event] = parse_sendgrid_events(body.encode())

    assert event.message_id == "m9"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "not JSON"),
        (b'{"event": "delivered"}', "JSON array"),
        (b'[{"email": "a@example.org"}]', "event #0"),
        (b'[{"event": "open"}, "oops"]', "event #1"),
        (b'[{"event": "open", "timestamp": "yesterday"}]', "bad timestamp"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_sendgrid_malformed_bodies(body: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_sendgrid_events(body)


# -- Twilio ----------------------------------------------------------------------------

TOKEN = "12345abcdef"
STATUS_URL = "https://shop.example/webhooks/twilio/status?aftersale_message_id=01JSMS"
STATUS = {
    "AccountSid": "AC" + "0" * 32,
    "MessageSid": "SM" + "a" * 32,
    "MessageStatus": "delivered",
    "To": "+4915112345678",
    "From": "+4930901820",
}


def test_twilio_signature_as_twilio_signs_it() -> None:
    signature = twilio_signature(TOKEN, STATUS_URL, STATUS)

    assert verify_twilio_signature(TOKEN, STATUS_URL, STATUS, signature)


@pytest.mark.parametrize("tamper", ["param", "url", "token", "unsigned", "extra_param"])
def test_twilio_signature_rejects(tamper: str) -> None:
    signature = twilio_signature(TOKEN, STATUS_URL, STATUS)
    params, url, token = dict(STATUS), STATUS_URL, TOKEN
    if tamper == "param":
        params["MessageStatus"] = "failed"
    elif tamper == "url":
        url = STATUS_URL.replace("01JSMS", "01JOTHER")
    elif tamper == "token":
        token = "another-token"
    elif tamper == "unsigned":
        signature = ""
    else:
        params["Injected"] = "1"

    assert verify_twilio_signature(token, url, params, signature) is False


@pytest.mark.parametrize(
    ("status", "error_code", "expected"),
    [
        ("queued", None, EventType.QUEUED),
        ("sent", None, EventType.QUEUED),
        ("delivered", None, EventType.DELIVERED),
        ("failed", "30008", EventType.FAILED),
        ("undelivered", "30005", EventType.BOUNCED),
        ("undelivered", "30003", EventType.FAILED),
        ("canceled", None, EventType.DROPPED),
        ("mystery", None, EventType.UNKNOWN),
    ],
)
def test_twilio_status(status: str, error_code: str | None, expected: EventType) -> None:
    params = {**STATUS, "MessageStatus": status}
    if error_code:
        params["ErrorCode"] = error_code

    event = parse_twilio_status(params, STATUS_URL)

    assert event.event_type is expected
    assert event.message_id == "01JSMS"
    assert event.provider_message_id == STATUS["MessageSid"]
    assert event.event_id == f"{STATUS['MessageSid']}:{status}"
    assert event.recipient == "+4915112345678"
    if error_code:
        assert error_code in event.description


def test_twilio_status_without_status_is_malformed() -> None:
    with pytest.raises(ValueError, match="MessageStatus"):
        parse_twilio_status({"MessageSid": "SM1"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", EventType.OPTED_OUT),
        ("  stop \n", EventType.OPTED_OUT),
        ("Stopall", EventType.OPTED_OUT),
        ("unsubscribe", EventType.OPTED_OUT),
        ("CANCEL", EventType.OPTED_OUT),
        ("end", EventType.OPTED_OUT),
        ("Quit", EventType.OPTED_OUT),
        ("START", EventType.OPTED_IN),
        ("unstop", EventType.OPTED_IN),
        ("help", EventType.UNKNOWN),
    ],
)
def test_twilio_keywords(body: str, expected: EventType) -> None:
    params = {"MessageSid": "SM" + "b" * 32, "From": "+4915112345678", "Body": body}

    event = parse_twilio_inbound(params)

    assert event is not None
    assert event.event_type is expected
    assert event.recipient == "+4915112345678"
    assert event.raw["keyword"] == body.strip().upper()
    if body.strip().lower() == "help":
        assert event.description == "help"


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("STOP!", "STOP"), ("Stop.", "STOP"), (" stop 🙏 ", "STOP"), ("„Stopp!“", "STOP"),
     ("Abmelden", "STOP"), ("abbestellen!!", "STOP"), ("Unsubscribe.", "UNSUBSCRIBE"),
     ("Hilfe?", "HELP"), ("help?", "HELP")],
)  # fmt: skip
def test_twilio_opt_outs_as_customers_write_them(body: str, keyword: str) -> None:
    """With punctuation or an emoji, or in German: they asked for no more SMS (or help)."""
    event = parse_twilio_inbound({"MessageSid": "SM1", "From": "+491", "Body": body})
    assert event is not None and event.raw["keyword"] == keyword
    expected = EventType.UNKNOWN if keyword == "HELP" else EventType.OPTED_OUT
    assert event.event_type is expected


@pytest.mark.parametrize(
    "body",
    ["please stop the calls", "Danke", "", "S T O P", "stop it", "!!!", "🙏",
     "Start!", "unstop."],  # opting back in stays exact, as the provider's unblocking
)  # fmt: skip
def test_twilio_ordinary_replies_are_not_keywords(body: str) -> None:
    assert parse_twilio_inbound({"MessageSid": "SM1", "From": "+491", "Body": body}) is None

"""Provider webhooks through the real app: signed as the providers sign, applied to the log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from aftersale.web import create_app
from campaigns.models import (
    Customer,
    DeliveryEventRecord,
    Event,
    Message,
    MessageDecision,
    Suppression,
)
from channels.fakes import SendGridSigner, twilio_signature
from tests.conftest import POLICY_TOML, Harness, item, purchase, utc

SIGNER = SendGridSigner.generate()
TWILIO_TOKEN = "twilio-test-token"
SHOPIFY_SECRET = "shopify-test-secret"
API_TOKEN = "api-test-token"
PHONE = "+4915112345678"
WEB_TOML = (
    POLICY_TOML.replace("https://shop.example/after", "http://testserver")
    + f"""
[sendgrid]
webhook_public_key = "{SIGNER.public_key}"
[twilio]
auth_token = "{TWILIO_TOKEN}"
[shopify]
webhook_secret = "{SHOPIFY_SECRET}"
[api]
token = "{API_TOKEN}"
"""
)
TABLES = (Customer, Message, MessageDecision, Suppression, DeliveryEventRecord, Event)


class Web:
    """A project, its web app under a test client, and helpers to look at the database."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.client = TestClient(create_app(harness.project))

    def snapshot(self) -> dict[str, list[tuple]]:
        with self.h.project.db.connect() as conn:
            return {
                model.__tablename__: [
                    tuple(r)
                    for r in conn.execute(
                        sa.select(model.__table__).order_by(*model.__table__.primary_key.columns)
                    )
                ]
                for model in TABLES
            }

    def customer(self, customer_id: str = "c1") -> Any:
        t = Customer.__table__
        with self.h.project.db.connect() as conn:
            return conn.execute(sa.select(t).where(t.c.id == customer_id)).one()

    def suppressions(self) -> list[tuple]:
        t = Suppression.__table__
        with self.h.project.db.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(t.c.customer_id, t.c.channel,
                                                              t.c.reason, t.c.source))]  # fmt: skip

    def decisions(self, message_id: int) -> list[str]:
        t = MessageDecision.__table__
        with self.h.project.db.connect() as conn:
            return [
                r[0]
                for r in conn.execute(
                    sa.select(t.c.action).where(t.c.message_id == message_id).order_by(t.c.id)
                )
            ]

    def sendgrid(self, events: list[dict[str, Any]], *, sign: bool = True) -> Any:
        body = json.dumps(events, separators=(",", ":")).encode()
        headers = SIGNER.headers(body) if sign else {}
        return self.client.post("/webhooks/sendgrid", content=body, headers=headers)

    def twilio(self, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN) -> Any:
        url = f"http://testserver{path}"
        headers = {"X-Twilio-Signature": twilio_signature(token, url, params)}
        return self.client.post(path, data=params, headers=headers)


def sold(h: Harness, *, sms: bool = True) -> None:
    """c1 buys a machine with a three-month warranty: thank-you, loyalty, warranty e-mail and SMS."""
    h.customers([{"id": "c1", "email": "anna@example.org", "phone": PHONE,
                  "sms_consent": "yes" if sms else "no"}])  # fmt: skip
    h.events([purchase("e1", "c1", "2026-01-05T10:00:00+01:00", "o1", item(warranty_months=3))])


@pytest.fixture
def sent(web: Web) -> Any:
    """The thank-you e-mail, sent."""
    sold(web.h)
    web.h.simulate(utc("2026-01-06T00:00:00"))
    (message,) = web.h.messages(journey_id="thank_you")
    assert message.status == "sent"
    return message


def sg_event(message: Any, event: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"email": "anna@example.org", "timestamp": 1767700000 + n, "event": event,
            "sg_event_id": f"sg-{event}-{n}", "sg_message_id": "x.filter",
            "aftersale_message_id": str(message.id), **extra}  # fmt: skip


# ------------------------------------------------------------------------- SendGrid


def test_delivered_is_applied_once_and_logged(web: Web, sent: Any) -> None:
    response = web.sendgrid([sg_event(sent, "delivered", 1)])
    assert response.status_code == 200
    assert response.json() == {"applied": 1, "duplicates": 0, "unmatched": 0}

    (row,) = web.h.messages(id=sent.id)
    assert row.status == "delivered"
    assert row.delivered_at == utc("2026-01-06T11:46:41")  # the event's own timestamp
    assert web.decisions(sent.id)[-1] == "delivery:delivered"

    before = web.snapshot()
    replay = web.sendgrid([sg_event(sent, "delivered", 1)])
    assert replay.json()["duplicates"] == 1
    assert web.snapshot() == before


def test_bounce_suppresses_and_is_never_regressed(web: Web, sent: Any) -> None:
    bounce = sg_event(sent, "bounce", 2, reason="550 5.1.1 no such user", type="bounce")
    web.sendgrid([bounce, sg_event(sent, "delivered", 3)])

    (row,) = web.h.messages(id=sent.id)
    assert row.status == "bounced"
    assert row.reason == "bounce:550 5.1.1 no such user"
    assert web.suppressions() == [("c1", "email", "bounce", "provider:sendgrid")]


def test_dropped_fails_the_message(web: Web, sent: Any) -> None:
    web.sendgrid([sg_event(sent, "dropped", 4, reason="Bounced Address")])
    (row,) = web.h.messages(id=sent.id)
    assert (row.status, row.reason) == ("failed", "dropped:Bounced Address")


def test_spamreport_and_unsubscribe(web: Web, sent: Any) -> None:
    web.sendgrid([sg_event(sent, "spamreport", 5), sg_event(sent, "unsubscribe", 6)])

    assert web.suppressions() == [("c1", "email", "spamreport", "provider:sendgrid")]
    customer = web.customer()
    assert customer.email_consent is False
    assert customer.email_consent_source == "provider:sendgrid"


def test_open_and_click_keep_the_first_time(web: Web, sent: Any) -> None:
    web.sendgrid([sg_event(sent, "click", 10, url="https://shop/x"), sg_event(sent, "open", 20)])
    web.sendgrid([sg_event(sent, "click", 30, url="https://shop/y")])

    (row,) = web.h.messages(id=sent.id)
    assert row.clicked_at == utc("2026-01-06T11:46:50")
    assert row.opened_at == row.clicked_at  # the click proves an open the pixel missed
    assert row.status == "sent"


def test_events_match_by_provider_message_id_without_custom_args(web: Web, sent: Any) -> None:
    event = sg_event(sent, "delivered", 7, sg_message_id=f"{sent.provider_message_id}.filter01")
    del event["aftersale_message_id"]
    web.sendgrid([event])
    assert web.h.messages(id=sent.id)[0].status == "delivered"


@pytest.mark.parametrize("attack", ["unsigned", "tampered", "other_key", "old_signature"])
def test_bad_sendgrid_signatures_change_nothing(web: Web, sent: Any, attack: str) -> None:
    body = json.dumps([sg_event(sent, "bounce", 8, reason="x")]).encode()
    headers = SIGNER.headers(body, "1767700000")
    if attack == "unsigned":
        headers = {}
    elif attack == "tampered":
        body = body.replace(b"bounce", b"open")
    elif attack == "other_key":
        headers = SendGridSigner.generate().headers(body, "1767700000")
    else:
        headers = SIGNER.headers(b"[]", "1767700000")
    before = web.snapshot()

    response = web.client.post("/webhooks/sendgrid", content=body, headers=headers)

    assert response.status_code == 403
    assert web.snapshot() == before


def test_malformed_sendgrid_body_is_400(web: Web, sent: Any) -> None:
    before = web.snapshot()
    for body in (b"not json", b'{"event":"open"}', b'[{"no":"event"}]'):
        response = web.client.post("/webhooks/sendgrid", content=body, headers=SIGNER.headers(body))
        assert response.status_code == 400, body
    assert web.snapshot() == before


def test_missing_key_setting_is_503(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    client = TestClient(create_app(h.project))
    assert client.post("/webhooks/sendgrid", content=b"[]").status_code == 503
    assert client.post("/webhooks/twilio/inbound", data={"Body": "STOP"}).status_code == 503
    h.project.close()


# --------------------------------------------------------------------------- Twilio


@pytest.fixture
def sms_sent(web: Web) -> Any:
    """The warranty SMS (14 days before the end of a three-month warranty), sent."""
    sold(web.h)
    web.h.simulate(utc("2026-03-25T00:00:00"))
    (message,) = web.h.messages(channel="sms")
    assert message.status == "sent"
    return message


def status_params(message: Any, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": message.provider_message_id, "MessageStatus": status,
            "To": PHONE, "From": "+4930901820", "AccountSid": "AC" + "0" * 32, **extra}  # fmt: skip


def test_twilio_status_callback_delivered(web: Web, sms_sent: Any) -> None:
    path = f"/webhooks/twilio/status?aftersale_message_id={sms_sent.id}"
    response = web.twilio(path, status_params(sms_sent, "delivered"))
    assert response.status_code == 204
    assert web.h.messages(id=sms_sent.id)[0].status == "delivered"


def test_twilio_undelivered_fails(web: Web, sms_sent: Any) -> None:
    params = status_params(sms_sent, "undelivered", ErrorCode="30003", ErrorMessage="unreachable")
    web.twilio("/webhooks/twilio/status", params)  # matched by MessageSid alone
    (row,) = web.h.messages(id=sms_sent.id)
    assert (row.status, row.reason) == ("failed", "undelivered:30003 unreachable")


def test_twilio_signature_must_cover_the_exact_url(web: Web, sms_sent: Any) -> None:
    params = status_params(sms_sent, "delivered")
    signed_for = "http://testserver/webhooks/twilio/status?aftersale_message_id=1"
    before = web.snapshot()
    for headers in (
        {},
        {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, signed_for, params)},
        {"X-Twilio-Signature": twilio_signature("other", "http://testserver/webhooks/twilio/status", params)},
    ):  # fmt: skip
        response = web.client.post("/webhooks/twilio/status", data=params, headers=headers)
        assert response.status_code == 403
    assert web.snapshot() == before


def inbound(body: str, sid: str = "SMin1") -> dict[str, str]:
    return {"MessageSid": sid, "From": PHONE, "To": "+4930901820", "Body": body}


def test_signed_stop_ends_sms_before_the_next_tick(web: Web) -> None:
    sold(web.h)
    web.h.simulate(utc("2026-03-01T00:00:00"))
    (planned,) = web.h.messages(channel="sms")
    assert planned.status == "planned"

    response = web.twilio("/webhooks/twilio/inbound", inbound(" stop "))
    assert response.status_code == 200
    assert response.text.endswith("<Response></Response>")
    customer = web.customer()
    assert (customer.sms_consent, customer.sms_consent_source) == (False, "sms:STOP")

    web.h.simulate(utc("2026-04-10T00:00:00"))
    (skipped,) = web.h.messages(channel="sms")
    assert (skipped.status, skipped.reason) == ("skipped", "no_consent:sms")
    assert web.h.sms.sent == []


def test_unsigned_stop_is_refused_and_changes_nothing(web: Web) -> None:
    sold(web.h)
    before = web.snapshot()
    response = web.client.post("/webhooks/twilio/inbound", data=inbound("STOP"))
    assert response.status_code == 403
    assert web.snapshot() == before
    assert web.customer().sms_consent is True


@pytest.mark.parametrize(
    "keyword", ["STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "Stopp!", "Abmelden."]
)
def test_every_opt_out_keyword_and_start(web: Web, keyword: str) -> None:
    sold(web.h)
    web.twilio("/webhooks/twilio/inbound", inbound(keyword.lower(), "SM1"))
    assert web.customer().sms_consent is False
    web.twilio("/webhooks/twilio/inbound", inbound("Unstop", "SM2"))
    customer = web.customer()
    assert (customer.sms_consent, customer.sms_consent_source) == (True, "sms:START")


def test_help_answers_with_the_help_text_and_changes_nothing(web: Web) -> None:
    sold(web.h)
    before = web.snapshot()
    response = web.twilio("/webhooks/twilio/inbound", inbound("Hilfe?"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    text = web.h.project.settings.sms_help_text
    assert f"<Response><Message>{text}</Message></Response>" in response.text
    assert web.snapshot() == before


def test_ordinary_replies_and_unknown_numbers_change_nothing(web: Web) -> None:
    sold(web.h)
    before = web.snapshot()
    web.twilio("/webhooks/twilio/inbound", inbound("Bitte nicht mehr vor 10 Uhr"))
    stranger = {**inbound("STOP", "SM9"), "From": "+4915199999999"}
    assert web.twilio("/webhooks/twilio/inbound", stranger).status_code == 200
    after = web.snapshot()
    assert after["customers"] == before["customers"]


def test_start_lifts_the_providers_stop_suppression(web: Web, sms_sent: Any) -> None:
    from campaigns.delivery import suppress

    with web.h.project.db.begin() as conn:
        suppress(conn, "c1", "sms", "sms_stop", "provider", utc("2026-03-26T00:00:00"))
    web.twilio("/webhooks/twilio/inbound", inbound("START"))
    assert web.suppressions() == []

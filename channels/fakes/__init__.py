"""Fake provider servers on loopback, shared by tests, the demo and benchmarks."""

from channels.fakes.http import FakeHTTPProvider, RecordedCall, Reply
from channels.fakes.sendgrid import FakeSendGrid
from channels.fakes.signing import SendGridSigner, twilio_signature
from channels.fakes.smtp import FakeSMTP, ReceivedMail
from channels.fakes.twilio import FakeTwilio

__all__ = [
    "FakeHTTPProvider",
    "FakeSMTP",
    "FakeSendGrid",
    "FakeTwilio",
    "ReceivedMail",
    "RecordedCall",
    "Reply",
    "SendGridSigner",
    "twilio_signature",
]

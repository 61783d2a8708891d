"""Signing webhook requests exactly as the providers do, for tests and the demo."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from channels.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER


@dataclass(frozen=True)
class SendGridSigner:
    """An ECDSA P-256 key pair standing in for SendGrid's Event Webhook signing key."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SendGridSigner:
        """A fresh key pair."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign(self, payload: bytes, timestamp: str) -> str:
        """Base64 DER ECDSA/SHA-256 signature over ``timestamp + payload``."""
        der = self.private_key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(der).decode()

    def headers(self, payload: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The two headers SendGrid sends with an event batch."""
        ts = timestamp or str(int(time.time()))
        return {SIGNATURE_HEADER: self.sign(payload, ts), TIMESTAMP_HEADER: ts}


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))

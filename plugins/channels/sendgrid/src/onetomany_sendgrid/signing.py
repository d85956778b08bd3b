"""The Event Webhook's signature: ECDSA over P-256 with SHA-256, as SendGrid documents it.

SendGrid signs the bytes of the ``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by
the raw request body, and sends the DER signature, base64-encoded, in
``X-Twilio-Email-Event-Webhook-Signature``. Its settings page shows the verification key as
base64 DER (a SubjectPublicKeyInfo); a PEM block is taken too.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["load_public_key", "sign", "valid"]


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The P-256 key ``text`` holds; ValueError says why it is not one."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError(f"not a base64 DER or PEM public key ({exc})"[:200]) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key, which SendGrid signs with")
    return key


def valid(key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> bool:
    """Whether ``signature`` (base64 DER) is SendGrid's over ``timestamp`` and ``body``."""
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The signature header SendGrid would send (for tests and local fakes)."""
    der = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode()

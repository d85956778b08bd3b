"""Amazon SNS messages: their signature, their signing certificate, and the subscription
handshake. SES publishes its events to an SNS topic, which posts them to an HTTPS endpoint.

Every SNS message is signed: ``Signature`` is an RSA PKCS#1 v1.5 signature (SHA-1 for
``SignatureVersion`` 1, SHA-256 for 2) over a canonical string of some of its fields, each
written ``name\\nvalue\\n`` in byte order of the names; the signing certificate is at
``SigningCertURL``. That URL is fetched only when it is HTTPS on the topic region's SNS host
(``sns.<region>.amazonaws.com``), so a forged message cannot name a certificate of its own;
``allow_loopback`` (tests only) also admits ``http://127.0.0.1``. Certificates are cached by
URL, so a busy topic costs one fetch.

A ``SubscriptionConfirmation`` is answered by a GET of its ``SubscribeURL``, under the same
host rule, once its signature holds.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from onetomany.delivery.webhooks import WebhookRefused

_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
#: The fields each message type signs, in the order the canonical string takes them.
SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SUBSCRIPTION,
    "UnsubscribeConfirmation": _SUBSCRIPTION,
}
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_.-]{1,256}")
#: Certificates kept; SNS rotates its signing certificate rarely.
_CACHE_SIZE = 32
#: Seconds to wait for a certificate or a subscription answer.
FETCH_TIMEOUT = 5.0


def canonical(message: Mapping[str, Any]) -> bytes:
    """The string an SNS message's signature covers."""
    kind = str(message.get("Type"))
    lines = []
    for field in SIGNED_FIELDS[kind]:
        value = message.get(field)
        if value is None:
            if field == "Subject":
                continue  # a notification without a subject leaves it out
            raise WebhookRefused(f"the SNS {kind} has no {field}", status=401)
        lines.append(f"{field}\n{value}\n")
    return "".join(lines).encode()


def topic_region(topic_arn: str) -> str:
    found = _TOPIC.fullmatch(topic_arn)
    if found is None:
        raise WebhookRefused(f"TopicArn {topic_arn[:120]!r} is not an SNS topic ARN")
    return found["region"]


def trusted_url(url: str, *, region: str, allow_loopback: bool, what: str) -> str:
    """``url`` when SNS would use it (HTTPS on ``sns.<region>.amazonaws.com``, or loopback
    when allowed); WebhookRefused (401) otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    expected = {f"sns.{region}.amazonaws.com", f"sns.{region}.amazonaws.com.cn"}
    if parts.scheme == "https" and host in expected and parts.port in (None, 443):
        return url
    if allow_loopback and parts.scheme in ("http", "https") and host == "127.0.0.1":
        return url
    raise WebhookRefused(
        f"the {what} {url[:160]!r} is not on SNS's host for {region} "
        f"(https://sns.{region}.amazonaws.com); refused",
        status=401,
    )


class Certificates:
    """SNS signing certificates by URL, fetched once each (thread-safe)."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    def key(self, url: str, *, now: datetime) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        try:
            response = self._session.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            raise WebhookRefused(
                f"the SNS signing certificate could not be fetched: {type(exc).__name__}",
                status=503,
            ) from exc
        if response.status_code != 200:
            raise WebhookRefused(
                f"the SNS signing certificate could not be fetched: HTTP {response.status_code}",
                status=503,
            )
        try:
            certificate = x509.load_pem_x509_certificate(response.content)
        except ValueError as exc:
            raise WebhookRefused("the SNS signing certificate is not a PEM certificate") from exc
        if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
            raise WebhookRefused("the SNS signing certificate is not valid now", status=401)
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise WebhookRefused("the SNS signing certificate has no RSA key", status=401)
        with self._lock:
            if len(self._keys) >= _CACHE_SIZE:
                self._keys.pop(next(iter(self._keys)))
            self._keys[url] = public
        return public

    def get(self, url: str) -> None:
        """GET ``url`` (a SubscribeURL): SNS confirms the subscription."""
        try:
            response = self._session.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            raise WebhookRefused(
                f"the subscription could not be confirmed: {type(exc).__name__}", status=503
            ) from exc
        if response.status_code != 200:
            raise WebhookRefused(
                f"the subscription could not be confirmed: HTTP {response.status_code}",
                status=503,
            )


def verify(
    message: Mapping[str, Any], *, certificates: Certificates, allow_loopback: bool, now: datetime
) -> None:
    """Raise WebhookRefused (401) unless ``message`` carries a valid SNS signature."""
    kind = message.get("Type")
    if kind not in SIGNED_FIELDS:
        raise WebhookRefused(f"SNS message type {str(kind)[:40]!r} is not one SNS sends")
    version = str(message.get("SignatureVersion", ""))
    algorithm = _HASHES.get(version)
    if algorithm is None:
        raise WebhookRefused(f"SignatureVersion {version[:10]!r} is not 1 or 2", status=401)
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except binascii.Error as exc:
        raise WebhookRefused("the SNS Signature is not base64", status=401) from exc
    if not signature:
        raise WebhookRefused("the SNS message is not signed", status=401)
    region = topic_region(str(message.get("TopicArn", "")))
    url = trusted_url(
        str(message.get("SigningCertURL", "")),
        region=region,
        allow_loopback=allow_loopback,
        what="SigningCertURL",
    )
    public = certificates.key(url, now=now)
    try:
        public.verify(signature, canonical(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise WebhookRefused("the SNS message's signature does not match", status=401) from exc

"""A stand-in for Amazon SNS in tests: a throwaway RSA key and self-signed certificate, served
on loopback with the subscription endpoint, and SNS messages signed with them as SNS signs."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from onetomany_ses.sns import canonical

TOPIC = "arn:aws:sns:eu-west-1:123456789012:onetomany-ses-events"


def self_signed() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    # Valid for the tests' frozen clock as well as for today.
    since = datetime(2020, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(since)
        .not_valid_after(since + timedelta(days=365 * 30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


class FakeSns:
    """``with FakeSns() as sns:``; ``sns.notification(event)`` is a signed SNS message
    carrying an SES event; ``sns.cert_fetches`` and ``sns.confirmed`` count what reached it."""

    _KEY: tuple[rsa.RSAPrivateKey, bytes] | None = None

    def __init__(self) -> None:
        if FakeSns._KEY is None:  # one key for the session: generating one takes a while
            FakeSns._KEY = self_signed()
        self.key, self.pem = FakeSns._KEY
        self.cert_fetches = 0
        self.confirmed: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/cert"):
                    fake.cert_fetches += 1
                    body = fake.pem
                elif self.path.startswith("/confirm"):
                    fake.confirmed.append(self.path)
                    body = b"<ConfirmSubscriptionResponse/>"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeSns:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign(self, message: dict[str, Any], *, version: str = "1") -> dict[str, Any]:
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        message = message | {"SignatureVersion": version}
        signature = self.key.sign(canonical(message), padding.PKCS1v15(), algorithm)
        return message | {"Signature": base64.b64encode(signature).decode()}

    def envelope(self, kind: str, *, at: datetime, **fields: Any) -> dict[str, Any]:
        return {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Timestamp": at.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "SigningCertURL": f"{self.url}/cert/SimpleNotificationService-test.pem",
            "UnsubscribeURL": f"{self.url}/unsubscribe",
        } | fields

    def notification(
        self, event: dict[str, Any], *, at: datetime, version: str = "1"
    ) -> dict[str, Any]:
        message = self.envelope("Notification", at=at, Message=json.dumps(event))
        return self.sign(message, version=version)

    def confirmation(self, *, at: datetime) -> dict[str, Any]:
        token = uuid.uuid4().hex
        message = self.envelope(
            "SubscriptionConfirmation",
            at=at,
            Token=token,
            Message=f"You have chosen to subscribe to the topic {TOPIC}.",
            SubscribeURL=f"{self.url}/confirm?Action=ConfirmSubscription&Token={token}",
        )
        return self.sign(message)


def ses_event(kind: str, *, key_tag: str, at: datetime, **section: Any) -> dict[str, Any]:
    """An SES event document as a configuration set's event destination publishes it."""
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    mail = {
        "timestamp": stamp,
        "source": "success@acme.test",
        "messageId": "0100018c-fake-00000001-000000",
        "destination": ["nancy@northwind.test"],
        "tags": {"onetomany_key": [key_tag], "ses:configuration-set": ["onetomany"]},
    }
    return {"eventType": kind, "mail": mail, kind.lower(): {"timestamp": stamp} | section}

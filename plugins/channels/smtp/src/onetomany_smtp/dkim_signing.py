"""DKIM signing (RFC 6376) of outgoing messages, with dkimpy.

A receiver checks the signature against the public key published at
``{selector}._domainkey.{domain}``; Gmail and Yahoo ask bulk senders for it. The signed
header fields (``h=``) include List-Unsubscribe and List-Unsubscribe-Post whenever the
message has them: RFC 8058 one-click unsubscribe requires both to be covered by a valid DKIM
signature, or a receiver may ignore them.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from onetomany.errors import ConfigError

__all__ = ["SIGNED_HEADERS", "DkimSigner"]

#: The header fields signed when present, in this order. From is always signed.
SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"MIME-Version",
    b"Content-Type",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"List-Id",
)


class DkimSigner:
    """Signs messages for ``domain`` with the key of ``selector`` (a PEM private key file)."""

    def __init__(self, *, domain: str, selector: str, key_file: Path) -> None:
        self.domain = domain.encode("idna")
        self.selector = selector.encode("ascii")
        self._key = self.check_key(key_file)

    @staticmethod
    def check_key(key_file: Path) -> bytes:
        """The PEM private key in ``key_file``; ConfigError (key ``dkim_key``) when none."""
        try:
            key = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {key_file}: {exc.strerror}", key="dkim_key") from None
        if b"PRIVATE KEY-----" not in key:
            raise ConfigError(f"{key_file} holds no PEM private key", key="dkim_key")
        return key

    def signed_headers(self, data: bytes) -> list[bytes]:
        """The fields of :data:`SIGNED_HEADERS` that ``data``'s header has."""
        head = data.partition(b"\r\n\r\n")[0].lower()
        present = {line.split(b":", 1)[0].strip() for line in head.split(b"\r\n") if b":" in line}
        return [name for name in SIGNED_HEADERS if name.lower() in present]

    def sign(self, data: bytes) -> bytes:
        """``data`` (a whole message, CRLF line ends) with a DKIM-Signature field in front."""
        signature: bytes = dkim.sign(
            data,
            self.selector,
            self.domain,
            self._key,
            include_headers=self.signed_headers(data),
            canonicalize=(b"relaxed", b"relaxed"),
            linesep=b"\r\n",
        )
        return signature + data

"""The helpers HTTP channels share: masking secrets out of an error, reading a JSON object."""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from onetomany.delivery.http import json_object, masked
from onetomany.errors import PermanentDeliveryError, TransientDeliveryError
from onetomany.plugins.options import MASK


def test_masked_replaces_each_secret_and_keeps_class_and_retry_after() -> None:
    error = TransientDeliveryError("HTTP 429: token tok-1 over limit at hook/abc", retry_after=7)

    hidden = masked(error, "tok-1", "", "hook/abc")

    assert type(hidden) is TransientDeliveryError
    assert hidden.retry_after == 7
    assert str(hidden) == f"HTTP 429: token {MASK} over limit at {MASK}"


def test_masked_returns_the_same_error_when_no_secret_shows() -> None:
    error = PermanentDeliveryError("HTTP 400: bad number")

    assert masked(error, "tok-1") is error


# The mask is made of "*": a secret without one cannot reappear next to it.
@given(
    secret=st.text(st.characters(blacklist_characters="*"), min_size=1, max_size=40),
    around=st.text(st.characters(blacklist_characters="*"), max_size=40),
)
def test_no_secret_survives_masking(secret: str, around: str) -> None:
    error = PermanentDeliveryError(f"{around}{secret}{around}")

    assert secret not in str(masked(error, secret))


def _response(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    return response


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"ok": true}', {"ok": True}),
        (b"[1, 2]", {}),
        (b"<html>bad gateway</html>", {}),
        (b"", {}),
    ],
)
def test_json_object_reads_only_a_json_object(body: bytes, expected: dict[str, object]) -> None:
    assert json_object(_response(body)) == expected

"""Fixtures: a local SendGrid fake whose every request is validated against SendGrid's
OpenAPI document (``openapi/``, trimmed), and channels and messages pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from openapi_core import OpenAPI

from onetomany import testing
from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.testing import channels_of
from onetomany_sendgrid import SendGridChannel
from onetomany_sendgrid.testing import FakeSendGrid

API_KEY = "SG.test-key.5f1c2a9e0d7c"
SPEC = Path(__file__).parent / "openapi" / "tsg_mail_v3.send.json"
#: The server the document names: requests are checked as if they had gone there.
SERVER = "https://api.sendgrid.com"


@pytest.fixture(scope="session")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC))


def openapi_check(spec: OpenAPI) -> Callable[[str, str, Mapping[str, str], bytes], None]:
    """A FakeSendGrid check that refuses any request SendGrid's document does not allow."""
    return testing.openapi_check(spec, SERVER)


@pytest.fixture
def sendgrid(openapi: OpenAPI) -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=API_KEY, check=openapi_check(openapi)) as fake:
        yield fake
    assert not fake.refused, f"requests SendGrid's OpenAPI document refuses: {fake.refused}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


MakeChannel = Callable[..., SendGridChannel]


@pytest.fixture
def make_channel(sendgrid: FakeSendGrid, clock: FrozenClock) -> Iterator[MakeChannel]:
    """A SendGridChannel for the fake with ``options`` over the test defaults."""
    defaults: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": sendgrid.url,
        "sender": "Success Team <success@example.com>",
        "timeout": 0.5,
    }
    runtime = Runtime(clock=clock)
    with channels_of(
        SendGridChannel, name="email", plugin="sendgrid", defaults=defaults, runtime=runtime
    ) as make:
        yield make


MakeMessage = Callable[..., Message]


@pytest.fixture
def make_message() -> MakeMessage:
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:welcome:contact-{n}:1",
            "channel": "email",
            "kind": ChannelKind.EMAIL,
            "touch": "welcome",
            "to": f"Ana Souza <ana{n}@customer.example>",
            "subject": "Welcome aboard",
            "text": "Hi Ana,\nwelcome aboard.\n",
            "html": "<p>Hi Ana,</p><p>welcome aboard.</p>",
            "headers": {"List-Unsubscribe": "<https://acme.test/u/1>"},
        }
        return Message(**(defaults | fields))

    return make

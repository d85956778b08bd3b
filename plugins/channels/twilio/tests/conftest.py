"""Fixtures: a local Twilio fake whose every request is validated against Twilio's OpenAPI
document (``openapi/``, trimmed), and channels and messages pointed at it."""

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
from onetomany_twilio import TwilioChannel
from onetomany_twilio.testing import ACCOUNT_SID, FakeTwilio

TOKEN = "tw-auth-token-5f1c2a"
SENDER = "+14155550100"
SPEC = Path(__file__).parent / "openapi" / "twilio_api_v2010.messages.json"
#: The server the document names: requests are checked as if they had gone there.
SERVER = "https://api.twilio.com"


@pytest.fixture(scope="session")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC))


def openapi_check(spec: OpenAPI) -> Callable[[str, str, Mapping[str, str], bytes], None]:
    """A FakeTwilio check that refuses any request Twilio's document does not allow."""
    return testing.openapi_check(spec, SERVER)


@pytest.fixture
def twilio(openapi: OpenAPI) -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=TOKEN, check=openapi_check(openapi)) as fake:
        yield fake
    assert not fake.refused, f"requests Twilio's OpenAPI document refuses: {fake.refused}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


MakeChannel = Callable[..., TwilioChannel]


@pytest.fixture
def make_channel(twilio: FakeTwilio, clock: FrozenClock) -> Iterator[MakeChannel]:
    """A TwilioChannel for the fake with ``options`` over the test defaults."""
    defaults: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": TOKEN,
        "base_url": twilio.url,
        "sender": SENDER,
        "status_callback": "https://hooks.acme.example/twilio/status",
        "timeout": 0.5,
    }
    runtime = Runtime(clock=clock)
    with channels_of(
        TwilioChannel, name="sms", plugin="twilio", defaults=defaults, runtime=runtime
    ) as make:
        yield make


MakeMessage = Callable[..., Message]


@pytest.fixture
def make_message() -> MakeMessage:
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:trial-ending:contact-{n}:1",
            "channel": "sms",
            "kind": ChannelKind.SMS,
            "touch": "trial-ending",
            "to": f"+1415555{n % 10000:04d}",
            "text": "Your Acme trial ends in 3 days. Reply STOP to opt out.",
        }
        return Message(**(defaults | fields))

    return make

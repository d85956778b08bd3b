"""The webhook contract every channel distribution's parser follows, with a parser a test
plugin registers: what the app records, and what it refuses."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from starlette.testclient import TestClient

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import (
    EVENT_NAMES,
    ProviderEvent,
    WebhookRefused,
    WebhookRequest,
)
from onetomany.engine import Engine
from onetomany.metrics import events as measured
from onetomany.plugins.hookspecs import hookimpl
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import create_app

from .conftest import KEYS, PEOPLE, deliver_tips, inbox_program


def parse_test_provider(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    if request.headers.get("x-test-secret") != "open sesame":
        raise WebhookRefused("no secret", status=401)
    document = json.loads(request.body)
    return [
        ProviderEvent(
            id=item["id"],
            kind=item["kind"],
            key=item["key"],
            at=datetime.fromisoformat(item["at"]),
            address=item.get("address", ""),
            hard=item.get("hard", False),
        )
        for item in document
    ]


class TestProvider:
    __test__ = False

    @hookimpl
    def onetomany_register_webhook_parsers(self, register):
        register("recording", parse_test_provider)


@pytest.fixture
def hooked(tmp_path, frozen_clock, temp_store):
    plugins = make_plugins(("test-provider", TestProvider()))
    with Engine(
        inbox_program(tmp_path), store=temp_store, clock=frozen_clock, plugins=plugins
    ) as e:
        e.identify(*PEOPLE)
        deliver_tips(e, "c1", 1)
        with TestClient(create_app(e, keys=KEYS)) as client:
            yield e, client


def test_the_recorded_names_are_those_the_measuring_layer_counts():
    assert EVENT_NAMES == {
        "delivered": measured.DELIVERED,
        "bounced": measured.BOUNCED,
        "complained": measured.COMPLAINED,
        "opened": measured.OPENED,
        "clicked": measured.CLICKED,
        # Only the provider's record of it: the unsubscribe it causes records the measured
        # ``unsubscribed`` event, once, as every other unsubscribe does.
        "unsubscribed": "message_unsubscribed",
    }
    assert EVENT_NAMES["unsubscribed"] != measured.UNSUBSCRIBED
    with pytest.raises(ValueError, match="not one of"):
        ProviderEvent(id="1", kind="exploded", key="k", at=datetime.now())


def test_a_batch_is_all_or_nothing_when_one_event_names_an_unknown_row(hooked):
    engine, client = hooked
    (row,) = [r for r in engine.store.outbox_rows() if r.channel == "inapp"]
    at = engine.clock.now().isoformat()
    good = {"id": "e1", "kind": "delivered", "key": row.idempotency_key, "at": at}
    unknown = {
        "id": "e2",
        "kind": "bounced",
        "key": "acme:nope",
        "at": at,
        "hard": True,
        "address": "nancy@northwind.test",
    }
    headers = {"X-Test-Secret": "open sesame"}
    refused = client.post("/webhooks/email", json=[good, unknown], headers=headers)
    assert refused.status_code == 404 and "acme:nope" in refused.json()["error"]
    assert client.post("/webhooks/email", json=[good]).status_code == 401
    contact = engine.store.get_contact("c1")
    assert events_of(engine.store, contact, names=["message_delivered"]) == []
    assert engine.suppressions() == []
    answer = client.post("/webhooks/email", json=[good, good | {"id": "e3"}], headers=headers)
    assert answer.json() == {"recorded": 2, "duplicates": 0}
    assert client.post("/webhooks/email", json=[good], headers=headers).json() == {
        "recorded": 0,
        "duplicates": 1,
    }


def test_hook_onetomany_register_webhook_parsers(hooked):
    """A registered parser answers for the channels using its plugin, and only those."""
    engine, client = hooked
    parsers = engine.plugins.webhook_parsers()
    assert parsers.get("recording").value is parse_test_provider
    assert "inapp" not in parsers.names()
    assert client.post("/webhooks/nowhere", json=[]).status_code == 404
    answer = client.post("/webhooks/inapp", json=[])  # the in-app plugin registered none
    assert answer.status_code == 404 and "takes webhooks" in answer.json()["error"]

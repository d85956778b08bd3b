"""One-click unsubscribe (RFC 8058) and the preference page over HTTP: what a mail client's
POST and a person's clicks change, and that a bad token changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
from starlette.testclient import TestClient

from onetomany.engine import Engine
from onetomany.model.clock import FrozenClock
from onetomany.rules.topics import Topic
from onetomany.rules.unsubscribe import UnsubscribeSettings, make_token
from onetomany.store import Store
from onetomany.testing import make_plugins
from onetomany.web import create_app

from .conftest import KEYS, PEOPLE, inbox_program

UNSUBSCRIBE = UnsubscribeSettings(
    url="https://app.acme.test/onetomany/unsubscribe/{token}",
    preferences_url="https://app.acme.test/onetomany/preferences/{token}",
    keys={"2026-12": "u" * 40},
    current="2026-12",
    max_age=timedelta(days=30),
)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def engine(tmp_path: Path, frozen_clock: FrozenClock, temp_store: Store) -> Iterator[Engine]:
    program = attrs.evolve(
        inbox_program(tmp_path),
        topics={
            "tips": Topic(name="tips", description="Product tips"),
            "billing": Topic(name="billing", transactional=True),
        },
        unsubscribe=UNSUBSCRIBE,
    )
    with Engine(program, store=temp_store, clock=frozen_clock, plugins=make_plugins()) as e:
        e.identify(*PEOPLE)
        yield e


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, keys=KEYS)) as c:
        yield c


def answers(engine: Engine, contact_id: str) -> list[tuple[str | None, str | None, bool]]:
    return [(a.topic, a.channel, a.subscribed) for a in engine.preferences(contact_id).answers]


def test_one_click_post_unsubscribes_the_tokens_contact_from_its_topic(client, engine):
    token = engine.unsubscribe_token("c1", "tips")
    answer = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answers(engine, "c1") == [("tips", None, False)]
    assert engine.preferences("c1").answers[0].source == "link"
    assert answers(engine, "c2") == []


def test_one_click_without_a_topic_unsubscribes_from_every_topic(client, engine):
    client.post(f"/unsubscribe/{engine.unsubscribe_token('c2')}", data=ONE_CLICK)
    assert not engine.preferences("c2").allows("tips")
    assert engine.preferences("c2").allows("billing")  # transactional


def test_a_get_only_asks_and_its_button_posts_the_one_click_body(client, engine):
    token = engine.unsubscribe_token("c2", "tips")
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert 'lang="pt"' in page.text and "Deixar de receber" in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert answers(engine, "c2") == []  # a link scanner's GET changes nothing


def test_the_post_must_carry_the_rfc_8058_body(client, engine):
    token = engine.unsubscribe_token("c1", "tips")
    for body in ({}, {"List-Unsubscribe": "Yes"}):
        refused = client.post(f"/unsubscribe/{token}", data=body)
        assert refused.status_code == 400
        assert "List-Unsubscribe=One-Click" in refused.text
    as_json = client.post(f"/unsubscribe/{token}", json=ONE_CLICK)
    assert as_json.status_code == 415
    assert answers(engine, "c1") == []


def _tampered(token: str) -> list[str]:
    key, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    return [
        f"{key}.{payload}.{flipped}",  # tampered signature
        f"{key}.{payload[:-3]}.{signature}",  # tampered payload
        token[: len(token) // 2],  # truncated
        f"{key}.{payload}",  # signature dropped
        "x" * 2000,  # longer than any token
        f"{key}.{payload}ü.{signature}",  # not even ASCII
    ]


def test_tampered_truncated_foreign_and_expired_tokens_change_nothing(client, engine):
    good = engine.unsubscribe_token("c1", "tips")
    foreign_settings = attrs.evolve(UNSUBSCRIBE, keys={"2026-12": "f" * 40})
    foreign = make_token(foreign_settings, "c1", "tips", now=engine.clock.now())
    retired = make_token(
        attrs.evolve(UNSUBSCRIBE, keys={"2025-01": "r" * 40}, current="2025-01"),
        "c1",
        None,
        now=engine.clock.now(),
    )
    expired = engine.unsubscribe_token("c1", "tips")
    engine.clock.advance(days=31)  # type: ignore[attr-defined]
    for token in [*_tampered(good), foreign, retired, expired]:
        for method, path in (
            ("POST", "unsubscribe"),
            ("GET", "unsubscribe"),
            ("GET", "preferences"),
            ("POST", "preferences"),
        ):
            data = ONE_CLICK if path == "unsubscribe" else {"form": "preferences"}
            answer = client.request(method, f"/{path}/{token}", data=data)
            assert answer.status_code == 400, (method, path, token)
            assert "refused" in answer.text
    assert answers(engine, "c1") == []


def test_the_preference_page_lists_topics_and_channels_in_the_contacts_language(client, engine):
    page = client.get(f"/preferences/{engine.unsubscribe_token('c2')}")
    assert page.status_code == 200
    assert "Suas preferências" in page.text
    assert 'name="topic" value="tips" checked' in page.text
    assert "billing" in page.text and 'name="topic" value="billing"' not in page.text
    assert 'name="channel" value="inapp" checked' in page.text
    assert 'name="channel" value="email" checked' in page.text
    english = client.get(
        f"/preferences/{engine.unsubscribe_token('c1')}", headers={"Accept-Language": "de"}
    )
    assert "Your email preferences" in english.text  # the contact's locale wins
    refused = client.get("/preferences/x.y.z", headers={"Accept-Language": "fr, de;q=0.8"})
    assert "Dieser Link kann nicht verwendet werden" in refused.text  # no contact: the browser's


def test_saving_the_preference_form_unsubscribes_the_unticked_and_resubscribes(client, engine):
    path = f"/preferences/{engine.unsubscribe_token('c1')}"
    saved = client.post(path, data={"form": "preferences", "channel": ["inapp"]})
    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.text
    assert sorted(answers(engine, "c1"), key=str) == sorted(
        [(None, "email", False), ("tips", None, False)], key=str
    )
    preferences = engine.preferences("c1")
    assert not preferences.allows("tips") and not preferences.allows(None, "email")
    assert preferences.allows("billing", "email")
    engine.clock.advance(minutes=1)  # type: ignore[attr-defined]
    client.post(path, data={"form": "preferences", "topic": "tips", "channel": ["inapp", "email"]})
    preferences = engine.preferences("c1")
    assert preferences.allows("tips") and preferences.allows("tips", "email")
    assert answers(engine, "c2") == []


def test_a_form_naming_what_the_page_does_not_offer_changes_nothing(client, engine):
    path = f"/preferences/{engine.unsubscribe_token('c1')}"
    for data in (
        {"form": "preferences", "topic": ["billing"]},
        {"form": "preferences", "channel": ["csm"]},
        {"topic": "tips"},
    ):
        refused = client.post(path, data=data)
        assert refused.status_code == 400
    assert answers(engine, "c1") == []


def test_a_body_over_the_limit_is_refused_unread(client, engine):
    token = engine.unsubscribe_token("c1", "tips")
    big = client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click&" + b"x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    assert answers(engine, "c1") == []

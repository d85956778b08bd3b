"""The contact's own preferences through the inbox token: what the widget's preferences panel
reads and changes, through the same policy API as the email preference page."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from starlette.testclient import TestClient

from onetomany.engine import Engine
from onetomany.rules.topics import Topic
from onetomany.web import create_app

from .conftest import KEYS, auth

TOPICS = {
    "tips": Topic(name="tips", description="Product tips"),
    "billing": Topic(name="billing", description="Invoices", transactional=True),
}


def with_topics(engine: Engine) -> Engine:
    engine.program = attrs.evolve(engine.program, topics=TOPICS)
    return engine


@pytest.fixture
def prefs(sqlite_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(with_topics(sqlite_engine), keys=KEYS)) as client:
        yield client


def test_the_contact_reads_its_topics_and_channels(prefs, sqlite_engine):
    answer = prefs.get("/inbox/preferences", headers=auth(sqlite_engine, "c1"))
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "topics": [
            {
                "name": "tips",
                "description": "Product tips",
                "transactional": False,
                "subscribed": True,
            },
            {
                "name": "billing",
                "description": "Invoices",
                "transactional": True,
                "subscribed": True,
            },
        ],
        "channels": [
            {"kind": "inapp", "subscribed": True},
            {"kind": "email", "subscribed": True},
        ],
    }


def test_a_change_is_recorded_through_the_policy_api_with_its_source(prefs, sqlite_engine):
    answer = prefs.post(
        "/inbox/preferences",
        headers=auth(sqlite_engine, "c1"),
        json={"topics": {"tips": False}, "channels": {"email": False}},
    )
    assert answer.status_code == 200, answer.text
    state = answer.json()
    assert [t["subscribed"] for t in state["topics"]] == [False, True]
    assert state["channels"] == [
        {"kind": "inapp", "subscribed": True},
        {"kind": "email", "subscribed": False},
    ]
    preferences = sqlite_engine.preferences("c1")
    assert not preferences.allows("tips")
    assert {a.source for a in preferences.answers} == {"inbox"}
    assert sqlite_engine.preferences("c2").allows("tips")  # only the token's contact
    back = prefs.post(
        "/inbox/preferences", headers=auth(sqlite_engine, "c1"), json={"topics": {"tips": True}}
    )
    assert back.json()["topics"][0]["subscribed"] is True


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"topics": {"billing": False}}, "'billing'"),
        ({"topics": {"nope": False}}, "'nope'"),
        ({"channels": {"fax": False}}, "'fax'"),
        ({"topics": {"tips": "no"}}, "topics.tips"),
        ({"topics": ["tips"]}, '"topics" must be an object'),
        ({"topics": {"tips": False}, "channels": {"fax": True}}, "'fax'"),
    ],
)
def test_bad_changes_are_refused_naming_them_and_change_nothing(prefs, sqlite_engine, body, names):
    answer = prefs.post("/inbox/preferences", headers=auth(sqlite_engine, "c1"), json=body)
    assert answer.status_code == 400
    assert names in answer.json()["error"]
    assert sqlite_engine.preferences("c1").answers == ()


def test_no_token_no_preferences(prefs, sqlite_engine):
    assert prefs.get("/inbox/preferences").status_code == 401
    refused = prefs.post("/inbox/preferences", json={"topics": {"tips": False}})
    assert refused.status_code == 401
    assert sqlite_engine.preferences("c1").answers == ()


def test_a_cross_site_form_cannot_change_them(prefs, sqlite_engine):
    # A form's content type needs no CORS preflight, so the API refuses it.
    answer = prefs.post(
        "/inbox/preferences",
        content=b"topics=tips",
        headers={**auth(sqlite_engine, "c1"), "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415
    assert sqlite_engine.preferences("c1").answers == ()

"""NPS answers through the signed 0-10 links of a survey email, then the comment form; and
the tokens that are refused with nothing recorded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from onetomany.metrics.events import NPS_ANSWERED
from onetomany.model.clock import FrozenClock
from onetomany.rules.tracking_links import nps_token, verify_nps
from onetomany.store import Store
from onetomany.store.queries.metrics import nps_counts

from .emails import KEYSET, Sent, events_named, flip, send_welcome


@pytest.fixture
def sent(tmp_path: Path, frozen_clock: FrozenClock, temp_store: Store) -> Iterator[Sent]:
    yield from send_welcome(tmp_path, frozen_clock, temp_store)


def test_the_survey_buttons_are_signed_links_left_out_of_click_tracking(sent):
    tokens = sent.links("nps")
    assert [verify_nps(KEYSET, t) for t in tokens] == [(sent.key, 3), (sent.key, 9)]
    assert len(sent.clicks()) == 3  # the NPS links are not wrapped in /c/


def test_a_score_link_records_the_answer_once_then_the_comment_is_added(sent):
    nine = sent.links("nps")[1]
    for _ in range(2):
        page = sent.client.get(f"/nps/{nine}")
        assert page.status_code == 200
        assert "Your score of 9 is recorded." in page.text and 'name="comment"' in page.text
    (answer,) = events_named(sent.engine, NPS_ANSWERED)
    assert answer == {
        "score": 9,
        "idempotency_key": sent.key,
        "touch": "welcome",
        "channel": "email",
    }
    thanks = sent.client.post(f"/nps/{nine}", data={"comment": "  Great <b>docs</b>\n "})
    assert thanks.status_code == 200 and "Thank you for your comment." in thanks.text
    latest = events_named(sent.engine, NPS_ANSWERED)[-1]
    assert latest["score"] == 9 and latest["comment"] == "Great <b>docs</b>"
    assert nps_counts(sent.engine.store, event=NPS_ANSWERED, by="all") == {
        "all": {"promoters": 1, "detractors": 0, "answered": 1}
    }


def test_another_button_is_a_newer_answer_and_the_report_counts_the_latest(sent):
    three, nine = sent.links("nps")
    sent.client.get(f"/nps/{nine}")
    sent.engine.clock.advance(minutes=1)  # type: ignore[attr-defined]
    sent.client.get(f"/nps/{three}")
    assert [e["score"] for e in events_named(sent.engine, NPS_ANSWERED)] == [9, 3]
    assert nps_counts(sent.engine.store, event=NPS_ANSWERED, by="all")["all"]["detractors"] == 1


def _signed(payload: list[object]) -> str:
    # Signed with the program's own key, as only a bug in onetomany could write it.
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    mac = hmac.new(b"t" * 40, f"track:2026-12.{body}".encode(), hashlib.sha256).digest()
    return f"2026-12.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_tampered_foreign_crossed_and_out_of_range_tokens_record_nothing(sent):
    three = sent.links("nps")[0]
    foreign = attrs.evolve(KEYSET, keys={"2026-12": "f" * 40})
    refused = [
        flip(three, 2),
        flip(three, 1),
        three[:-4],
        nps_token(foreign, sent.key, 10),
        sent.clicks()[0],  # a click token is no NPS token
        sent.pixel(),
        _signed(["n", sent.key, 11]),
        _signed(["n", sent.key, "9"]),
        nps_token(KEYSET, "acme:not-a-row", 9),  # a message the store does not hold
    ]
    for token in refused:
        assert sent.client.get(f"/nps/{token}").status_code == 400, token
        assert sent.client.post(f"/nps/{token}", data={"comment": "x"}).status_code == 400
    assert events_named(sent.engine, NPS_ANSWERED) == []
    # The helper signs as the program does: only the range and the type refused those two.
    assert verify_nps(KEYSET, _signed(["n", sent.key, 9])) == (sent.key, 9)


def test_an_overlong_or_malformed_comment_is_refused_and_the_score_stands(sent):
    nine = sent.links("nps")[1]
    sent.client.get(f"/nps/{nine}")
    too_long = sent.client.post(f"/nps/{nine}", data={"comment": "x" * 2001})
    assert too_long.status_code == 400 and "at most 2000" in too_long.text
    as_json = sent.client.post(f"/nps/{nine}", json={"comment": "hi"})
    assert as_json.status_code == 415
    assert [e.get("comment") for e in events_named(sent.engine, NPS_ANSWERED)] == [None]


def test_a_score_outside_0_to_10_cannot_be_signed():
    for score in (-1, 11, True, 9.5):
        with pytest.raises(ValueError, match="0 to 10"):
            nps_token(KEYSET, "k", score)  # type: ignore[arg-type]

"""Signed click and open tracking: the links an email goes out with, what a click and the
pixel record, machine opens, and the tokens that are refused with nothing recorded."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetomany.model.clock import FrozenClock
from onetomany.rules.machine_opens import machine_open
from onetomany.rules.tracking_links import (
    LinkRewriter,
    TrackingSettings,
    TrackingTokenError,
    click_token,
    open_token,
    read_tracking,
    rewrite_html,
    verify_click,
    verify_open,
)
from onetomany.rules.unsubscribe import UnsubscribeSettings
from onetomany.store import Store

from .emails import (
    APPLE_PROXY,
    BASE,
    FIREFOX,
    KEYSET,
    TRACKING,
    Sent,
    events_named,
    flip,
    send_welcome,
)


@pytest.fixture
def sent(tmp_path: Path, frozen_clock: FrozenClock, temp_store: Store) -> Iterator[Sent]:
    yield from send_welcome(tmp_path, frozen_clock, temp_store)


def test_each_link_goes_out_signed_with_its_position_and_the_pixel_is_added(sent):
    tokens = sent.clicks()
    claims = [verify_click(KEYSET, t) for t in tokens]
    assert [(c.key, c.position) for c in claims] == [(sent.key, i) for i in range(3)]
    assert [c.url for c in claims] == [
        "https://acme.test/docs?a=1&b=2&utm_source=onetomany&utm_campaign=welcome",
        "https://acme.test/pricing?utm_source=onetomany&utm_campaign=welcome",
        "https://acme.test/start?utm_source=onetomany&utm_campaign=welcome",
    ]
    assert verify_open(KEYSET, sent.pixel()) == sent.key
    assert 'href="mailto:help@acme.test"' in sent.html
    assert "https://app.acme.test/onetomany/unsubscribe/" in sent.html  # never rewritten


def test_the_text_part_links_carry_the_html_parts_tokens(sent):
    text = sent.recorder.sent[0].text or ""
    in_text = re.findall(re.escape(BASE) + r"/c/([^\s)]+)", text)
    assert in_text == sent.clicks()  # same links, same positions, same order
    assert "acme.test/docs" not in text and "acme.test/pricing" not in text
    assert "https://app.acme.test/onetomany/unsubscribe/" in text  # never rewritten
    assert "help@acme.test" in text
    for token, url in zip(in_text, ["/docs?a=1&b=2", "/pricing", "/start"], strict=True):
        answer = sent.client.get(f"/c/{token}")
        assert answer.status_code == 302
        assert answer.headers["location"].startswith(f"https://acme.test{url}")
    assert len(events_named(sent.engine, "message_clicked")) == 3
    # A click on the same link in the HTML part is the same click.
    sent.client.get(f"/c/{sent.clicks()[0]}")
    assert len(events_named(sent.engine, "message_clicked")) == 3


def test_text_only_links_get_the_next_positions_and_prose_punctuation_stays_outside():
    rewriter = LinkRewriter(key="k1", touch="welcome", settings=TRACKING, keys=KEYSET)
    rewriter.html('<a href="https://acme.test/a">a</a>')
    text = rewriter.text(
        "See https://acme.test/a. Or (https://acme.test/b), https://acme.test/a again."
    )
    links = re.findall(re.escape(BASE) + r"/c/([\w-]+\.[\w-]+\.[\w-]+)", text)
    claims = [verify_click(KEYSET, t) for t in links]
    assert [(c.position, c.url.split("?")[0]) for c in claims] == [
        (0, "https://acme.test/a"),
        (1, "https://acme.test/b"),
        (0, "https://acme.test/a"),
    ]
    assert text.startswith("See https://") and ". Or (https://" in text and "), https://" in text


def test_a_click_redirects_to_its_own_url_and_counts_once(sent):
    token = sent.clicks()[1]
    for _ in range(2):
        answer = sent.client.get(f"/c/{token}?url=https://evil.test/")
        assert answer.status_code == 302
        assert answer.headers["location"] == (
            "https://acme.test/pricing?utm_source=onetomany&utm_campaign=welcome"
        )
        assert answer.headers["referrer-policy"] == "no-referrer"
    clicks = events_named(sent.engine, "message_clicked")
    assert len(clicks) == 1
    assert clicks[0]["idempotency_key"] == sent.key and clicks[0]["position"] == 1
    sent.client.get(f"/c/{sent.clicks()[0]}")
    assert len(events_named(sent.engine, "message_clicked")) == 2  # another link, another click


def test_a_persons_open_counts_once_and_stops_the_not_opened_ladder(sent):
    sent.engine.clock.advance(minutes=5)  # type: ignore[attr-defined]
    for _ in range(3):
        pixel = sent.client.get(f"/o/{sent.pixel()}", headers={"User-Agent": FIREFOX})
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        assert "no-store" in pixel.headers["cache-control"]
    opens = events_named(sent.engine, "message_opened")
    assert len(opens) == 1 and "machine" not in opens[0]
    sent.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    sent.engine.tick()
    assert [r.touch for r in sent.engine.store.outbox_rows()] == ["welcome"]


@pytest.mark.parametrize(
    ("agent", "delay", "reason"),
    [
        (APPLE_PROXY, timedelta(minutes=5), "Apple Mail Privacy Protection"),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)",
            timedelta(minutes=5),
            "image proxy",
        ),
        (FIREFOX, timedelta(seconds=3), "opened within 10 seconds of the send"),
        ("", timedelta(minutes=5), "no user agent"),
    ],
)
def test_a_machines_open_is_flagged_and_stops_no_ladder(sent, agent, delay, reason):
    sent.engine.clock.advance(seconds=delay.total_seconds())  # type: ignore[attr-defined]
    assert sent.client.get(f"/o/{sent.pixel()}", headers={"User-Agent": agent}).status_code == 200
    (opened,) = events_named(sent.engine, "message_opened")
    assert opened["machine"] is True and opened["machine_reason"] == reason
    sent.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    sent.engine.tick()
    assert [r.touch for r in sent.engine.store.outbox_rows()] == ["welcome", "nudge"]


def test_tampered_truncated_foreign_and_crossed_tokens_are_refused_and_record_nothing(sent):
    click, pixel = sent.clicks()[0], sent.pixel()
    foreign = attrs.evolve(KEYSET, keys={"2026-12": "f" * 40})
    # The same message and position, another URL: only a key the program holds could sign it.
    elsewhere = click_token(foreign, sent.key, 0, "https://evil.test/")
    signature = click.split(".")[2]
    swapped = click_token(KEYSET, sent.key, 0, "https://evil.test/").split(".")[1]
    bad_clicks = [
        flip(click, 2),
        flip(click, 1),
        click[:-5],
        click.rsplit(".", 1)[0],
        elsewhere,
        f"2026-12.{swapped}.{signature}",  # the URL swapped under the original signature
        pixel,  # an open token is no click token
        sent.engine.unsubscribe_token("c1"),  # nor is an unsubscribe token
        "x" * 5000,
        f"2026-12.{swapped}é.{signature}",  # not even ASCII
    ]
    for token in bad_clicks:
        answer = sent.client.get(f"/c/{quote(token, safe='')}")
        assert answer.status_code == 400, token
        assert "location" not in answer.headers
    for token in (flip(pixel, 2), pixel[:-3], click, open_token(foreign, sent.key)):
        assert sent.client.get(f"/o/{token}").status_code == 400
    assert events_named(sent.engine, "message_clicked") == []
    assert events_named(sent.engine, "message_opened") == []


def test_a_valid_token_of_a_message_not_in_the_store_leads_on_and_records_nothing(sent):
    token = click_token(KEYSET, "acme:gone:c1:x", 0, "https://acme.test/old")
    answer = sent.client.get(f"/c/{token}")
    assert answer.status_code == 302 and answer.headers["location"] == "https://acme.test/old"
    assert sent.client.get(f"/o/{open_token(KEYSET, 'acme:gone:c1:x')}").status_code == 200
    assert events_named(sent.engine, "message_clicked") == []
    assert events_named(sent.engine, "message_opened") == []


def test_a_touch_with_track_false_goes_out_as_written(tmp_path, frozen_clock, temp_store):
    for sent in send_welcome(tmp_path, frozen_clock, temp_store, track=False):
        assert sent.clicks() == [] and "/o/" not in sent.html
        assert 'href="https://acme.test/docs?a=1&amp;b=2"' in sent.html


@given(
    urls=st.lists(
        st.builds(
            lambda host, path: f"https://{host}.test/{path}",
            st.text("abcdefghijklmnop", min_size=1, max_size=12),
            st.text("abc/?=&%-_.~xyz0123", max_size=40),
        ),
        max_size=6,
    )
)
def test_every_rewritten_link_verifies_to_its_own_url_and_position(urls):
    body = (
        "<html><body>"
        + "".join(f'<a class="x" href="{html_lib.escape(u)}">{i}</a>' for i, u in enumerate(urls))
        + "</body></html>"
    )
    rewritten = rewrite_html(
        body, key="k1", touch="t", settings=TrackingSettings(base_url=BASE), keys=KEYSET
    )
    tokens = re.findall(re.escape(BASE) + r"/c/([^\"]+)", rewritten)
    claims = [verify_click(KEYSET, t) for t in tokens]
    assert [(c.url, c.position, c.key) for c in claims] == [
        (u, i, "k1") for i, u in enumerate(urls)
    ]
    assert (
        rewritten.endswith("</body></html>")
        and verify_open(KEYSET, re.findall(re.escape(BASE) + r"/o/([^\"]+)", rewritten)[0]) == "k1"
    )


def test_the_tracking_section_is_checked():
    settings, errors = read_tracking(
        {"base_url": "http://app.acme.test", "utm": {"utm_source": 3}, "pixel": True},
        file="program.toml",
        keys=KEYSET,
    )
    assert not settings.enabled
    assert sorted(e.key or "" for e in errors) == [
        "tracking.base_url",
        "tracking.pixel",
        "tracking.utm",
    ]
    _, errors = read_tracking({"base_url": BASE}, file="program.toml", keys=UnsubscribeSettings())
    assert [e.key for e in errors] == ["tracking.base_url"] and "[unsubscribe]" in str(errors[0])


def test_a_click_token_names_one_url_only():
    token = click_token(KEYSET, "k", 2, "https://acme.test/a")
    assert verify_click(KEYSET, token).url == "https://acme.test/a"
    with pytest.raises(TrackingTokenError):
        verify_open(KEYSET, token)
    with pytest.raises(TrackingTokenError, match="not a click token"):
        verify_click(KEYSET, click_token(KEYSET, "k", 2, "javascript:alert(1)"))


def test_machine_opens_are_told_from_a_persons():
    now = FrozenClock().now()
    assert machine_open(FIREFOX, sent_at=now - timedelta(minutes=1), opened_at=now) is None
    assert machine_open(FIREFOX, sent_at=None, opened_at=now) is None
    assert (
        machine_open("Mozilla/5.0", sent_at=None, opened_at=now) == "Apple Mail Privacy Protection"
    )
    assert machine_open("YahooMailProxy; https://help.yahoo.com", sent_at=None, opened_at=now)

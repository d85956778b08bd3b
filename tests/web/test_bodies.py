"""In-app bodies as the inbox API hands them to a page: escaped text by default, markdown or
HTML by the touch's choice, and in every mode no script reaches the page."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.program import load_program
from onetomany.web import create_app
from onetomany.web.bodies import body_html

from .conftest import KEYS, auth

ATTACKS = (
    '<script>alert("x")</script>',
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">go</a>',
    "<iframe src=https://evil.test></iframe>",
    '<svg onload="alert(1)"></svg>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    "[go](javascript:alert(1))",
    "![x](javascript:alert(1))",
    '<a href="https://acme.test" onclick="alert(1)">ok</a>',
)


class _Elements(HTMLParser):
    """The elements and attributes a browser would build from some markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def _safe(markup: str) -> bool:
    """No element that runs script: no script/frame/svg/style/form element, no event handler
    or style attribute, no URL with a scheme other than http(s) or mailto."""
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    for tag, attributes in parser.found:
        if tag in ("script", "iframe", "svg", "style", "object", "embed", "form", "math"):
            return False
        for name, value in attributes:
            if name.startswith("on") or name == "style":
                return False
            if name in ("href", "src") and _scheme(value or "") not in _SAFE_SCHEMES:
                return False
    return True


_SAFE_SCHEMES = ("", "http", "https", "mailto")


def _scheme(url: str) -> str:
    """The scheme a browser reads in ``url`` ("" for a relative one): the WHATWG URL parser
    drops tabs and line breaks anywhere and leading C0 controls and spaces, then takes a
    letter followed by letters, digits, "+", "-" or "." up to a colon."""
    cleaned = re.sub(r"[\t\n\r]", "", url).lstrip("".join(map(chr, range(0x21))))
    found = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", cleaned)
    return found.group()[:-1].lower() if found else ""


def test_the_scheme_check_reads_urls_as_a_browser_does() -> None:
    assert _scheme(" java\tscript:alert(1)") == "javascript"
    assert _scheme("HTTPS://acme.test") == "https"
    assert _scheme("%5Bgo%5D(javascript:alert(1))") == ""  # a relative path
    assert _scheme("/u/1?next=javascript:x") == ""


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("body_format", ["text", "markdown", "html"])
def test_script_injection_is_refused_in_every_mode(attack, body_format):
    assert _safe(body_html(f"Hello\n\n{attack}\n\nbye", body_format))


@given(
    st.lists(
        st.sampled_from(
            [
                *ATTACKS,
                "<",
                ">",
                '"',
                "'",
                "=",
                " ",
                "\n",
                "](",
                ")",
                "[",
                "a",
                "<p>",
                "</p>",
                "href=",
                "src=",
                "on",
                "error",
                "javascript",
                ":",
                "&#106;",
                "&lt;",
                "<!--",
                "-->",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_no_input_yields_markup_that_runs_script(text):
    for body_format in ("text", "markdown", "html"):
        assert _safe(body_html(text, body_format)), body_format


def test_markdown_keeps_formatting_links_and_shows_typed_html_as_text():
    rendered = body_html(
        "# Tip\n\nUse **filters** and [the docs](https://acme.test/docs).\n\n<b>raw</b>", "markdown"
    )
    assert "<h1>Tip</h1>" in rendered and "<strong>filters</strong>" in rendered
    assert '<a href="https://acme.test/docs" rel="noopener noreferrer nofollow">' in rendered
    assert "&lt;b&gt;raw&lt;/b&gt;" in rendered


def test_html_keeps_the_allowed_elements():
    rendered = body_html(
        "<p>Hi <em>there</em></p><ul><li>one</li></ul><div>kept text</div>", "html"
    )
    assert rendered.startswith("<p>Hi <em>there</em></p><ul><li>one</li></ul>")
    assert "<div" not in rendered and "kept text" in rendered


def test_text_is_escaped_with_line_breaks():
    assert body_html("<b>a</b>\nb") == "&lt;b&gt;a&lt;/b&gt;<br>b"


def _client(engine: Engine, body_format: str) -> TestClient:
    touches = tuple(
        attrs.evolve(t, body=body_format) if t.name == "tip" else t for t in engine.program.touches
    )
    engine.program = attrs.evolve(engine.program, touches=touches)
    return TestClient(create_app(engine, keys=KEYS))


@pytest.mark.parametrize("body_format", ["markdown", "html"])
def test_the_inbox_api_renders_the_touchs_body_format(sqlite_engine, body_format):
    store, now = sqlite_engine.store, sqlite_engine.clock.now()
    store.inbox_add(
        contact_id="c1",
        idempotency_key="k1",
        touch="tip",
        title="t",
        body='**Bold** <script>alert("x")</script> <img src=x onerror=alert(1)>',
        url=None,
        now=now,
    )
    with _client(sqlite_engine, body_format) as client:
        [item] = client.get("/inbox", headers=auth(sqlite_engine, "c1")).json()["items"]
    assert item["body_format"] == body_format
    assert _safe(item["body_html"])
    if body_format == "markdown":
        assert "<strong>Bold</strong>" in item["body_html"]


def test_an_unknown_body_format_is_a_config_error_naming_the_touch(tmp_path: Path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "program.toml").write_text(
        '[program]\nname = "p"\ntemplates = "templates"\n'
        '[channels.inapp]\nplugin = "inapp"\n'
        '[touches.tip]\ntrigger = { event = "tip" }\nchannel = "inapp"\ntemplate = "tip"\n'
        'body = "rtf"\n'
    )
    with pytest.raises(ConfigErrors, match=r"touches\.tip\.body.*markdown"):
        load_program(tmp_path)

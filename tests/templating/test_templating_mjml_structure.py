"""Malformed MJML that mrml would let through (or report without a position) is refused before
compiling, naming the file, line and column; well-formed MJML, whatever Jinja it holds, passes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from templating_support import WriteFiles, page, template

from onetomany.errors import TemplateError
from onetomany.templating import TemplateSet
from onetomany.templating.structure import MjmlStructureError, check_structure

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "examples" / "onboarding" / "templates"

# template() puts the front matter on lines 1-3, so the MJML starts on file line 4.
MALFORMED = {
    "mismatched closing tag inside an ending tag": (
        "<mjml><mj-body><mj-section><mj-column>\n"
        "  <mj-text>Hello\n"
        "  </mj-button>\n"
        "</mj-column></mj-section></mj-body></mjml>",
        (6, 3),
        "</mj-button> closes <mj-text> opened at 5:3",
    ),
    "mismatched closing tag between elements": (
        "<mjml><mj-body>\n<mj-section><mj-column><mj-text>x</mj-text></mj-section>\n"
        "</mj-body></mjml>",
        (5, 44),
        "</mj-section> closes <mj-column> opened at 5:13",
    ),
    "unknown element": (
        "<mjml><mj-body><mj-section>\n    <mj-column><mj-txt>Hi</mj-txt></mj-column>\n"
        "</mj-section></mj-body></mjml>",
        (5, 16),
        "<mj-txt> is not an MJML element; did you mean <mj-text>?",
    ),
    "unknown element as an attribute default": (
        "<mjml><mj-head><mj-attributes>\n<mj-buton color='red' />\n</mj-attributes></mj-head>"
        "<mj-body></mj-body></mjml>",
        (5, 1),
        "<mj-buton> is not an MJML element; did you mean <mj-button>?",
    ),
    "unclosed element at the end": (
        "<mjml><mj-body>\n  <mj-section><mj-column><mj-text>x</mj-text></mj-column>\n",
        (5, 3),
        "<mj-section> is never closed",
    ),
    "unclosed ending tag at the end": (
        "<mjml><mj-body><mj-section><mj-column>\n\n      <mj-text>x",
        (6, 7),
        "<mj-text> is never closed",
    ),
    "stray closing tag": (
        "<mjml><mj-body></mj-body></mjml>\n</mj-section>",
        (5, 1),
        "</mj-section> closes nothing: no element is open",
    ),
    "MJML element inside an ending tag": (
        "<mjml><mj-body><mj-section><mj-column><mj-text>\n<mj-text>x</mj-text>\n"
        "</mj-column></mj-section></mj-body></mjml>",
        (5, 1),
        "<mj-text> cannot sit inside <mj-text> opened at 4:39: its content is HTML",
    ),
    "unclosed HTML inside an ending tag": (
        "<mjml><mj-body><mj-section><mj-column>\n<mj-button>Go <span>now</mj-button>\n"
        "</mj-column></mj-section></mj-body></mjml>",
        (5, 24),
        "</mj-button> closes <mj-button> but <span> opened at 5:15 inside it is never closed",
    ),
    "stray HTML closing tag inside an ending tag": (
        "<mjml><mj-body><mj-section><mj-column>\n<mj-text>Hi</p></mj-text>\n"
        "</mj-column></mj-section></mj-body></mjml>",
        (5, 12),
        "</p> closes nothing: no HTML element is open inside <mj-text> opened at 5:1",
    ),
    "tag never finished": (
        '<mjml><mj-body>\n<mj-section padding="0></mj-section></mj-body></mjml>',
        (5, 1),
        "<mj-section is never finished: no '>' ends it, or a quote in it is not closed",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_mjml_names_path_line_and_column(write: WriteFiles, case: str) -> None:
    body, (line, column), problem = MALFORMED[case]
    templates = TemplateSet(write({"welcome.mjml": template(body)}))

    with pytest.raises(MjmlStructureError) as raised:
        templates.check("welcome")

    error = raised.value
    assert isinstance(error, TemplateError)
    assert (error.template, error.line, error.column, error.problem) == (
        "welcome.mjml",
        line,
        column,
        problem,
    )
    assert str(error) == f"welcome.mjml:{line}:{column}: invalid MJML: {problem}"


def test_line_numbers_count_a_longer_front_matter(write: WriteFiles) -> None:
    source = template(
        "<mjml><mj-body>\n<mj-section></mj-column>", preheader="p", url="https://x.test"
    )
    templates = TemplateSet(write({"t.mjml": source}))

    with pytest.raises(MjmlStructureError) as raised:
        templates.compiled("t")

    assert (raised.value.line, raised.value.column) == (7, 13)


def test_malformed_partial_names_the_partial(write: WriteFiles) -> None:
    partial = "<mj-section>\n  <mj-column>\n    <mj-text>Hi</mj-txt>\n</mj-column></mj-section>"
    templates = TemplateSet(
        write(
            {
                "t.mjml": template(page('<mj-include path="partials/p.mjml" />')),
                "partials/p.mjml": partial,
            }
        )
    )

    with pytest.raises(MjmlStructureError) as raised:
        templates.check("t")

    assert str(raised.value) == (
        "partials/p.mjml:3:16: invalid MJML: </mj-txt> closes <mj-text> opened at 3:5"
    )


def test_partial_of_a_partial_is_checked(write: WriteFiles) -> None:
    files = {
        "t.mjml": template(page('<mj-include path="partials/outer.mjml" />')),
        "partials/outer.mjml": (
            '<mj-wrapper><mj-include path="partials/raw.html" type="html" />\n'
            '<mj-include path="partials/inner.mjml" /></mj-wrapper>'
        ),
        "partials/raw.html": "<div><p>Hi</p><br></div>",
        "partials/inner.mjml": "<mj-section><mj-column>\n<mj-unknown /></mj-column></mj-section>",
    }
    templates = TemplateSet(write(files))

    with pytest.raises(MjmlStructureError) as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line, raised.value.column) == (
        "partials/inner.mjml",
        2,
        1,
    )


# Jinja MJML would trip over (mrml parses it as markup), to show the scanner is not confused.
JINJA_WITH_ANGLES = """<mjml>
<mj-head><mj-style>.a > .b { color: red }</mj-style><mj-title>{{ a < b }}</mj-title></mj-head>
<mj-body>
{% if contact.vip and 1 < 2 %}
<mj-section><mj-column>
<mj-text>{{ "</mj-text>" if 2 > 1 else "<mj-txt>" }} {# </mj-button> <mj-nope> #}
{% for n in [1, 2] %}<p>{{ n }} is &lt; 3<br></p>{% endfor %}<img src="x.png">
{% raw %}</mj-column>{% endraw %}</mj-text>
<mj-button href="https://x.test/?a={{ 1 > 0 }}" {% if 1 < 2 %}title="x"{% endif %}>Go</mj-button>
<mj-image src="https://x.test/i.png" /><mj-divider></mj-divider>
<!-- </mj-section> <mj-bogus> -->
</mj-column></mj-section>
{% endif %}
</mj-body>
</mjml>"""


def test_jinja_and_comments_holding_angle_brackets_pass() -> None:
    assert check_structure(JINJA_WITH_ANGLES, template="t.mjml") == []


def test_template_with_jinja_and_comments_compiles(write: WriteFiles) -> None:
    body = page(
        "{% if contact.vip and 2 > 1 %}",
        "<mj-section><mj-column>",
        '<mj-text>{{ 2 > 1 }} {# a note #}<p>Hi<br></p><img src="x.png"></mj-text>',
        '<mj-button href="https://x.test/?a={{ 1 > 0 }}">Go</mj-button>',
        "<!-- a comment --></mj-column></mj-section>",
        "{% endif %}",
    )
    TemplateSet(write({"t.mjml": template(body)})).check("t")


def test_mj_attributes_defaults_and_classes_pass() -> None:
    source = (
        "<mjml><mj-head><mj-attributes>"
        '<mj-all font-family="Arial" /><mj-text color="red"></mj-text>'
        '<mj-class name="mj-highlight" color="blue" /><mj-section padding="0" />'
        "</mj-attributes>"
        '<mj-html-attributes><mj-selector path=".x td">'
        '<mj-html-attribute name="data-id">42</mj-html-attribute>'
        "</mj-selector></mj-html-attributes>"
        '<mj-font name="Roboto" href="https://fonts.test/r" /><mj-breakpoint width="320px" />'
        '</mj-head><mj-body><mj-section><mj-column><mj-text mj-class="mj-highlight">x</mj-text>'
        "</mj-column></mj-section></mj-body></mjml>"
    )

    assert check_structure(source, template="t.mjml") == []


def test_bundled_templates_and_partials_pass() -> None:
    files = [*sorted(BUNDLED.rglob("*.mjml")), ROOT / "bench" / "welcome.mjml"]
    assert len(files) > 30
    for path in files:
        text = path.read_text(encoding="utf-8")
        body, first_line = text, 1
        if text.startswith("+++\n"):
            head, body = text.split("\n+++\n", 1)
            first_line = head.count("\n") + 3
        check_structure(body, template=path.name, first_line=first_line)


def test_bundled_templates_compile() -> None:
    templates = TemplateSet(BUNDLED)
    for name in templates.names():
        templates.check(name)


# -- any well-formed tree passes; any deleted closing tag is reported ----------------------------

_JINJA_BITS = st.sampled_from(
    [
        "{{ contact.first_name }}",
        "{{ a < b }}",
        "{{ '</mj-text>' }}",
        "{% if a < b %}yes{% else %}no{% endif %}",
        "{# <mj-section> </mj-column> #}",
        "{% for x in xs %}<b>{{ x > 1 }}</b>{% endfor %}",
        "<br>",
        "<p>Hi</p>",
        "a &lt; b",
        "<!-- </mj-body> -->",
    ]
)
_TEXT = st.lists(st.one_of(_JINJA_BITS, st.text(alphabet="abc ,.\n", max_size=8)), max_size=4).map(
    "".join
)
_LEAF = st.one_of(
    st.builds(lambda text: ("mj-text", [], text), _TEXT),
    st.builds(lambda text: ("mj-button", [], text), _TEXT),
    st.builds(lambda text: ("mj-raw", [], text), _TEXT),
    st.just(("mj-image", None, "")),
    st.just(("mj-spacer", [], "")),
)
_COLUMN = st.builds(lambda leaves: ("mj-column", leaves, ""), st.lists(_LEAF, max_size=3))
_SECTION = st.builds(lambda columns: ("mj-section", columns, ""), st.lists(_COLUMN, max_size=3))
_WRAPPER = st.builds(lambda sections: ("mj-wrapper", sections, ""), st.lists(_SECTION, max_size=2))
_BODY = st.lists(st.one_of(_SECTION, _WRAPPER), max_size=3)

# (name, children or None for a self-closing element, text before the children)
Node = tuple[str, Any, str]


def _render(node: Node, separator: str) -> str:
    name, children, text = node
    if children is None:
        return f'<{name} src="https://x.test/i.png" />'
    inner = text + separator.join(_render(child, separator) for child in children)
    return f"<{name}>{inner}</{name}>"


@st.composite
def _documents(draw: st.DrawFn) -> str:
    separator = draw(st.sampled_from(["", "\n", "\n  ", "{% if a < b %}\n{% endif %}"]))
    body = draw(_BODY)
    head = "<mj-head><mj-title>T {{ a > b }}</mj-title><mj-style>p > a { }</mj-style></mj-head>"
    inner = separator.join(_render(node, separator) for node in body)
    return f"<mjml>{head}{separator}<mj-body>{inner}</mj-body></mjml>"


_CLOSING = re.compile(r"</mj[\w-]*>")


def _real_closing_tags(document: str) -> list[re.Match[str]]:
    # Closing tags written by the generator, not those quoted inside Jinja or comments.
    hidden = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|<!--.*?-->", re.DOTALL)
    spans = [match.span() for match in hidden.finditer(document)]
    return [
        match
        for match in _CLOSING.finditer(document)
        if not any(start <= match.start() < end for start, end in spans)
    ]


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_well_formed_trees_pass(document: str) -> None:
    assert check_structure(document, template="t.mjml") == []


@settings(max_examples=200, deadline=None)
@given(_documents(), st.data())
def test_deleting_any_closing_tag_is_reported(document: str, data: st.DataObject) -> None:
    closing = _real_closing_tags(document)
    victim = data.draw(st.sampled_from(closing))
    broken = document[: victim.start()] + document[victim.end() :]

    with pytest.raises(MjmlStructureError):
        check_structure(broken, template="t.mjml")

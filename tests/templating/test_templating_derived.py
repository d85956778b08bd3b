"""The derived text template gives exactly ``html_to_text`` of the rendered HTML.

The property is checked over every bundled template (every variant) of the example program
and over templates built to exercise each rule (loops, conditions, dynamic links and labels,
images in links, hidden blocks), with random values: whitespace, newlines, markup characters,
empty strings, unicode and the extractor's own break markers.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from templating_support import WriteFiles, page, section, template

from onetomany.errors import TemplateError
from onetomany.templating import TemplateSet, html_to_text
from onetomany.templating.text import assemble

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onboarding" / "templates"

TRICKY = page(
    '<mj-include path="partials/header.mjml" />',
    section(
        "<mj-text><h1>Hi {{ contact.first_name }}</h1>"
        "{% if contact.vip %}<p>VIP: {{ contact.name }}</p>{% else %}{{ contact.name }}"
        "{% endif %}<ul>{% for item in items %}<li>{{ loop.index }}. {{ item }}</li>"
        "{% endfor %}</ul>{% set shout = contact.name | upper %}<p>{{ shout }}</p>"
        '<p><a href="{{ url }}">{{ label }}</a> and <a href="mailto:{{ email }}">{{ email }}</a>'
        ' <a href="#{{ label }}">top</a> <a href="{{ url }}"><img src="x.png" alt="{{ label }}"'
        ' /></a> <a href="{{ url }}"> </a> <a href="https://x.test/{{ label }}">{{ label }}</a>'
        ' <a href="{{ url }}">{% for item in items %}{{ item }}<br />{% endfor %}</a></p>'
        '<div style="display:none">{{ label }}{% if contact.vip %}x{% endif %}</div>'
        "{# a comment #}{{ '{ not a tag }' }} &amp; {{ contact.name ~ label }}</mj-text>"
        '<mj-button href="{{ url }}">{{ label }}</mj-button>'
    ),
    head="<mj-title>{{ contact.name }}</mj-title><mj-preview>Hi {{ label }}</mj-preview>",
)

# Characters that stress the extraction: whitespace of every kind, markup, the break markers.
_ALPHABET = st.sampled_from(
    [*" \t\n\r\x0b\x0c\xa0\u2003\x1c<>&\"'#;:/ab1é€{}%\x01\x02", "&amp;", "<b>", "mailto:"]
)
TEXT = st.one_of(
    st.just(""),
    st.lists(_ALPHABET, max_size=12).map("".join),
    st.text(max_size=12),
    # Strict values (printable, single spaces inside only), the generated text's common case,
    # with the characters escaping turns into entities and the separator it joins values with.
    st.from_regex(r"\A[a-z&<>'\"|#:/.é]{1,3}( [a-z&<>'\"|#:/.]{1,3}){0,2}\Z"),
)


def _values() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "first_name": TEXT,
            "name": TEXT,
            "account": TEXT,
            "plan": TEXT,
            "product": TEXT,
            "help_url": TEXT,
            "unsubscribe": TEXT,
            "label": TEXT,
            "url": TEXT,
            "email": TEXT,
            "vip": st.booleans(),
            "items": st.lists(TEXT, max_size=3),
            "properties": st.fixed_dictionaries(
                {key: TEXT for key in ("day", "completed", "next_step", "report_id", "title")}
            ),
            "occurred_at": st.datetimes(
                min_value=datetime(1971, 1, 1),
                max_value=datetime(2100, 1, 1),
                timezones=st.just(UTC),
            ).map(lambda moment: moment.isoformat()),
            "locale": st.sampled_from(["en", "pt-BR", "id", "pt-XX"]),
            "seats": st.integers(min_value=1, max_value=10_000),
            "active_users": st.integers(min_value=0, max_value=10_000),
            "mrr": st.floats(min_value=0, max_value=1e7, allow_nan=False),
            "number": st.integers(min_value=1, max_value=5),
            "activity": st.lists(
                st.sampled_from(
                    ["integration_connected", "report_created", "teammate_invited", "login", "x"]
                ),
                max_size=4,
            ),
        }
    )


def _plain(**changes: Any) -> dict[str, Any]:
    """Values for :func:`_context`: plain ones, with ``changes``."""
    values: dict[str, Any] = {
        key: "x"
        for key in ("first_name", "name", "account", "plan", "product", "help_url", "unsubscribe")
    }
    values.update(label="l", url="https://u.test", email="e@x.test", vip=False, items=[])
    values.update(properties={}, occurred_at="2026-01-01T00:00:00+00:00", locale="en")
    return values | changes


def _context(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "contact": {
            "id": "c1",
            "first_name": values["first_name"],
            "name": values["name"],
            "vip": values["vip"],
            "role": "admin",
            "email": values["email"],
            "phone": None,
            "locale": values["locale"],
            "timezone": "America/Sao_Paulo",
        },
        "account": {
            "id": "a1",
            "name": values["account"],
            "traits": {
                "plan": values["plan"],
                "mrr": values.get("mrr", 0.0),
                "seats": values.get("seats", 1),
                "active_users": values.get("active_users", 0),
                "invoice_due_date": values["occurred_at"][:10],
            },
        },
        "program": {
            "name": "p",
            "constants": {"product": values["product"], "help_url": values["help_url"]},
        },
        "unsubscribe_url": values["unsubscribe"],
        # The example sets [tracking], so its NPS survey's links are signed nps_url(score)s.
        "nps_url": lambda score: f"{values['url']}/nps/{score}",
        "event": {"occurred_at": values["occurred_at"], "properties": values["properties"]},
        "occurrence": {"at": values["occurred_at"], "number": values.get("number", 1)},
        "activity": [{"name": name, "properties": {}} for name in values.get("activity", [])],
        "items": values["items"],
        "label": values["label"],
        "url": values["url"],
        "email": values["email"],
        "locale": values["locale"],
    }


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> TemplateSet:
    folder = tmp_path_factory.mktemp("bundled") / "templates"
    shutil.copytree(EXAMPLE, folder)
    (folder / "tricky.mjml").write_text(template(TRICKY), encoding="utf-8")
    return TemplateSet(folder)


def _variants(templates: TemplateSet) -> list[str]:
    return [variant for name in templates.names() for variant in templates.variants(name)]


def test_every_bundled_template_has_a_derived_text(bundled: TemplateSet) -> None:
    variants = _variants(bundled)
    assert len(variants) >= 12
    for variant in variants:
        compiled = bundled.compiled(variant)
        assert compiled.derived is not None, (variant, compiled.derived_reason)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=_values(), which=st.integers(min_value=0))
def test_derived_text_equals_html_to_text(
    bundled: TemplateSet, values: dict[str, Any], which: int
) -> None:
    variants = _variants(bundled)
    compiled = bundled.compiled(variants[which % len(variants)])
    context = _context(values)
    assert compiled.derived is not None
    html = compiled.body.render(context)
    expected = html_to_text(html)
    assert compiled.derived.render(context, html) == expected
    assert compiled.derived_text(context, html) == expected
    try:
        rendered = compiled.render(context)
    except TemplateError:  # e.g. a line break in the subject
        return
    assert rendered.html == html
    assert rendered.text == expected


def test_derived_text_on_every_variant_with_edge_values(bundled: TemplateSet) -> None:
    edge = {
        "first_name": " \n ",
        "name": "<b>bold</b> & co",
        "account": "",
        "plan": "\x01\x02",
        "product": "P&amp;Q",
        "help_url": "  https://help.test/?a=1&b=2  ",
        "unsubscribe": "Unsubscribe",
        "label": "https://x.test/",
        "url": "https://x.test/",
        "email": "a@b.test",
        "vip": True,
        "items": ["", " ", "x"],
        "properties": dict.fromkeys(("day", "completed", "next_step", "report_id", "title"), ""),
        "occurred_at": "2026-01-01T02:00:00+00:00",
        "locale": "pt-BR",
    }
    for variant in _variants(bundled):
        compiled = bundled.compiled(variant)
        context = _context(edge)
        assert compiled.derived is not None
        html = compiled.body.render(context)
        assert compiled.derived.render(context, html) == html_to_text(html), variant


def test_markup_values_take_the_text_of_the_html(bundled: TemplateSet) -> None:
    compiled = bundled.compiled("tricky")
    assert compiled.derived is not None
    values = _plain(first_name=Markup("<i>Ann</i><p>para</p>"), label=Markup("<b>L</b>"))
    context = _context(values)
    html = compiled.body.render(context)
    assert compiled.derived_text(context, html) == html_to_text(html)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('<mj-text><p style="color: {{ c }}">x</p></mj-text>', "style"),
        ("<mj-text>{%- if a %}x{% endif %}</mj-text>", "whitespace control"),
        ("<mj-text>{% macro m() %}x{% endmacro %}{{ m() }}</mj-text>", "macro"),
        ("<mj-text>&amp{{ a }}</mj-text>", "could form markup"),
        ("<mj-text>{% if a %}<a href='x'>{% endif %}y</a></mj-text>", "spans a change"),
        ("<mj-text><!-- {% if a %} -->x<!-- {% endif %} --></mj-text>", "comment"),
        ("<mj-text>&#xe000;0&#xe001; {{ a }}</mj-text>", "reserved"),
    ],
)
def test_unsafe_shapes_take_the_text_of_the_html(
    write: WriteFiles, body: str, reason: str, context: dict[str, Any]
) -> None:
    folder = write({"t.mjml": template(page(section(body)))})
    compiled = TemplateSet(folder).compiled("t")
    if compiled.strategy == "mjml-first":
        assert compiled.derived is None
        assert reason in (compiled.derived_reason or "")
    html = compiled.body.render({**context, "a": "&", "c": "red", "u": "x"})
    assert compiled.derived_text(context, html) == html_to_text(html)


def test_hand_written_text_has_no_derived_text(write: WriteFiles) -> None:
    folder = write(
        {
            "a.mjml": template(page(section("<mj-text>{{ contact.name }}</mj-text>"))),
            "a.txt": "plain {{ contact.name }}",
        }
    )
    compiled = TemplateSet(folder).compiled("a")
    assert compiled.derived is None
    assert compiled.render({"contact": {"name": "Ann", "first_name": "A"}}).text == "plain Ann"


# --- random template shapes -----------------------------------------------------------------

_LEAVES = st.sampled_from(
    [
        "Hello ",
        " ",
        "\n  ",
        "&amp; ",
        "a&lt;b",
        "{{ label }}",
        "{{ url }}",
        "{{ email }}",
        "{{ items|join(', ') }}",
        "{{ label ~ email }}",
        "<br />",
        '<img src="x.png" alt="{{ label }}" />',
        '<img src="x.png" alt="static" />',
        "{% for item in items %}<li>{{ item }}</li>{% endfor %}",
        "{% for item in items %}{{ item }}{% else %}none{% endfor %}",
        # What Jinja compiles into the static text around it, or into nothing.
        "{# a comment #}",
        "{{ '' }}",
        "{{ 'con' ~ 'stant' }}",
        "{% set z = label %}{{ z }}",
    ]
)
_WRAPPERS = [
    "<p>{}</p>",
    "<ul>{}</ul>",
    "<span>{}</span>",
    '<a href="{{{{ url }}}}">{}</a>',
    '<a href="https://x.test/{{{{ label }}}}">{}</a>',
    '<a href="mailto:{{{{ email }}}}">{}</a>',
    '<a href="#top">{}</a>',
    '<a href="https://x.test/static">{}</a>',
    '<div style="display:none">{}</div>',
    "{{% if contact.vip %}}{}{{% endif %}}",
    "{{% if contact.vip %}}{}{{% else %}}<b>no</b>{{% endif %}}",
    "{{% for item in items %}}{}{{% endfor %}}",
]
SHAPES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(_WRAPPERS), inner).map(lambda pair: pair[0].format(pair[1])),
        st.lists(inner, min_size=2, max_size=4).map("".join),
    ),
    max_leaves=8,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shape=SHAPES, values=st.lists(_values(), min_size=3, max_size=3))
def test_derived_text_on_random_shapes(
    tmp_path_factory: pytest.TempPathFactory, shape: str, values: list[dict[str, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("shape")
    (folder / "t.mjml").write_text(
        template(page(section(f"<mj-text>{shape}</mj-text>"))), encoding="utf-8"
    )
    compiled = TemplateSet(folder).compiled("t")
    for each in values:
        context = _context(each)
        html = compiled.body.render(context)
        assert compiled.derived_text(context, html) == html_to_text(html)


# --- rendering --------------------------------------------------------------------------------


def test_a_failure_is_reported_at_its_source_line(write: WriteFiles) -> None:
    folder = write(
        {"t.mjml": template(page(section("<mj-text>\n{{ contact.missing }}</mj-text>")))}
    )
    compiled = TemplateSet(folder).compiled("t")
    assert compiled.derived is not None
    with pytest.raises(TemplateError) as caught:
        compiled.render({"contact": {"first_name": "Ann"}})
    assert "missing" in str(caught.value)
    assert caught.value.template == "t.mjml"
    assert caught.value.line == 5


def test_a_subject_using_a_name_the_body_sets_renders_on_its_own(write: WriteFiles) -> None:
    folder = write(
        {
            "t.mjml": template(
                page(section("<mj-text>{% set who = 'body' %}{{ who }}</mj-text>")),
                subject="Hi {{ who }}",
            )
        }
    )
    compiled = TemplateSet(folder).compiled("t")
    assert compiled.derived is not None
    rendered = compiled.render({"who": "context"})
    assert rendered.subject == "Hi context"
    assert rendered.text == "body"


def _old_assemble(stream: str) -> str:
    """The line-by-line assembly the regular expressions replaced, kept as the reference."""
    lines: list[str] = []
    pending = 0
    for piece in re.split("([\x01\x02])", stream):
        if piece in ("\x01", "\x02"):
            pending = max(pending, 1 if piece == "\x01" else 2)
        elif piece.strip():
            if lines and pending:
                lines.extend([""] * (pending - 1) + [piece])
            elif lines:
                lines[-1] += piece
            else:
                lines.append(piece)
            pending = 0
        elif lines and not pending:
            lines[-1] += piece
    return "\n".join(" ".join(line.split()) for line in lines).strip()


@settings(max_examples=500, deadline=None)
@given(stream=st.lists(_ALPHABET | st.sampled_from(["\x01", "\x02", "word"]), max_size=30))
def test_assemble_keeps_the_strongest_break_of_each_run(stream: list[str]) -> None:
    text = "".join(stream)
    assert assemble(text) == _old_assemble(text)


# --- values -------------------------------------------------------------------------------------


def test_a_set_inside_a_link_holds_after_it(write: WriteFiles) -> None:
    body = "<mj-text>{% set x = 1 %}<a href='{{ u }}'>{% set x = 2 %}y</a> {{ x }}</mj-text>"
    compiled = TemplateSet(write({"t.mjml": template(page(section(body)))})).compiled("t")
    assert compiled.derived is not None, compiled.derived_reason
    rendered = compiled.render({"u": "https://x.test", "contact": {"first_name": "A"}})
    assert rendered.text.endswith("y (https://x.test) 2")
    assert rendered.text == html_to_text(rendered.html)


@pytest.mark.parametrize("value", ["\x03", "a\x04b", "\x05", "\x03x\x04y\x05"])
def test_values_holding_link_markers_take_the_text_of_the_html(
    write: WriteFiles, value: str
) -> None:
    body = '<mj-text>{{ v }} <a href="https://x.test/{{ v }}">{{ v }}</a> end</mj-text>'
    compiled = TemplateSet(write({"t.mjml": template(page(section(body)))})).compiled("t")
    assert compiled.derived is not None, compiled.derived_reason
    rendered = compiled.render({"v": value, "contact": {"first_name": "A"}})
    assert rendered.text == html_to_text(rendered.html)


def test_entities_and_link_targets_are_decoded(bundled: TemplateSet) -> None:
    compiled = bundled.compiled("welcome")
    values = _plain(
        first_name="Ann",
        name="Ann Lee",
        account="Lee & Sons <UK>",  # entities in the HTML, decoded in the text
        help_url="https://help.test/?a=1&b='2'",
        unsubscribe="https://x.test/u",
    )
    rendered = compiled.render(_context(values))
    assert rendered.text == html_to_text(rendered.html)
    assert "Lee & Sons <UK>" in rendered.text
    assert "(https://help.test/?a=1&b='2')" in rendered.text


def test_the_text_evaluates_expressions_again(write: WriteFiles) -> None:
    """The HTML and the text are two renders: a filter giving another value per call can give
    the text another value (the documented cost of the simpler design)."""
    calls: list[str] = []

    def tick(value: str) -> str:
        calls.append(value)
        return f"{value}#{len(calls)}"

    body = '<mj-text><p>Hi {{ contact.name|tick }}</p><a href="https://x.test/">go</a></mj-text>'
    folder = write({"t.mjml": template(page(section(body)), subject="Hi")})
    rendered = (
        TemplateSet(folder, filters={"tick": tick})
        .compiled("t")
        .render({"contact": {"name": "Ann"}})
    )
    assert "Hi Ann#1" in rendered.html
    assert "Hi Ann#2" in rendered.text
    assert calls == ["Ann", "Ann"]


@pytest.mark.parametrize("label", ["x", "y", "x y"])
def test_a_run_settled_at_a_link_that_just_opened_keeps_the_label(
    write: WriteFiles, label: str
) -> None:
    """The space before the link is a part of its own and the branch inside the link starts
    with a space: the label (and so what follows the link) starts where the link opens."""
    body = (
        '<mj-text>{{ label }} <a href="{{ url }}">{% if contact.vip %} {{ label }}{% endif %}'
        "</a> end</mj-text>"
    )
    compiled = TemplateSet(write({"t.mjml": template(page(section(body)))})).compiled("t")
    assert compiled.derived is not None, compiled.derived_reason
    context = _context(_plain(label=label, url="x", vip=True))
    html = compiled.body.render(context)
    assert compiled.derived.render(context, html) == html_to_text(html)

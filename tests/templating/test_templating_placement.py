"""Where Jinja may sit for MJML to be compiled once (the checks behind the strategy choice)."""

from __future__ import annotations

import pytest

from onetomany.templating.placement import expand_includes, placement_problem, same_tags


def doc(body: str, head: str = "") -> str:
    return f"<mjml><mj-head>{head}</mj-head><mj-body>{body}</mj-body></mjml>"


def col(content: str) -> str:
    return f"<mj-section><mj-column>{content}</mj-column></mj-section>"


@pytest.mark.parametrize(
    "source",
    [
        doc(col("<mj-text>Hi {{ name }}</mj-text>")),
        doc(col("<mj-text>{% if a %}<p>x</p>{% else %}<p>y</p>{% endif %}</mj-text>")),
        doc(col("<mj-text>{% for i in xs %}<li>{{ i }}</li>{% endfor %}</mj-text>")),
        doc(col('<mj-button href="{{ url }}">Go {{ name }}</mj-button>')),
        doc(col('<mj-image src="{{ src }}" alt="{{ a > b }}" />')),
        doc(col('<mj-text color="{% if a %}red{% else %}blue{% endif %}">x</mj-text>')),
        doc(col("<mj-raw>{% if a %}<p>x</p>{% endif %}</mj-raw>")),
        doc(col("<mj-text>{# note #}{% set x = 1 %}{{ x }}</mj-text>")),
        doc(col("<mj-text>x</mj-text>"), head="<mj-title>{{ t }}</mj-title>"),
        doc(col("<mj-text>no jinja</mj-text>")),
    ],
)
def test_pass_through_places(source: str) -> None:
    assert placement_problem(source) is None


RAW_IF = col("<mj-raw>{% if a %}</mj-raw>") + col("<mj-raw>{% endif %}</mj-raw>")
ATTRIBUTES_IF = col('<mj-text {% if a %}align="left"{% endif %}>x</mj-text>')
STYLE = "<mj-style>.a { color: {{ c }} }</mj-style>"
DEFAULTS = '<mj-attributes><mj-all font-family="{{ f }}" /></mj-attributes>'


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (doc("{% if a %}" + col("<mj-text>x</mj-text>") + "{% endif %}"), "between MJML tags"),
        (
            doc("<mj-section>{% for c in cs %}<mj-column></mj-column>{% endfor %}</mj-section>"),
            "between MJML tags",
        ),
        (doc(col('<mj-text padding="{{ p }}">x</mj-text>')), "computes with its value"),
        (doc(col("<mj-text>{% if a %}</mj-text><mj-text>{% endif %}</mj-text>")), "not closed"),
        (doc(RAW_IF), "not closed"),
        (doc(ATTRIBUTES_IF), "among the attributes"),
        (doc("<!-- {{ x }} -->" + col("<mj-text>x</mj-text>")), "comment"),
        (doc(col("<mj-text>x</mj-text>"), head=STYLE), "between MJML tags"),
        (doc(col("<mj-text>x</mj-text>"), head=DEFAULTS), "computes with its value"),
    ],
)
def test_places_mjml_computes_with(source: str, problem: str) -> None:
    found = placement_problem(source)

    assert found is not None
    assert problem in found


def test_same_tags_allows_duplicated_expressions() -> None:
    source = "<mj-title>{{ t }}</mj-title>{% if a %}{{ x }}{% endif %}"
    compiled = "<title>{{ t }}</title><div aria-label='{{ t }}'>{% if a %}{{ x }}{{ x }}{% endif %}"

    assert same_tags(source, compiled)


@pytest.mark.parametrize(
    "compiled",
    [
        "{{ t }}{{ x }}{% if a %}{% endif %}",  # expression moved out of the block
        "{{ t }}{% if a %}{% endif %}",  # expression lost
        "{{ t }}{% if a %}{{ x }}",  # control tag lost
        "{{ t }}{% if a %}{{ x }}{% endif %}{% endif %}",  # control tag duplicated
        "{{ t }}{% if a %}{{ x &gt; 1 }}{% endif %}",  # tag text changed
        "{{ t }}{{ y }}{% if a %}{{ x }}{% endif %}",  # expression invented
    ],
)
def test_same_tags_catches_mangling(compiled: str) -> None:
    assert same_tags("{{ t }}{% if a %}{{ x }}{% endif %}", "{{t}}{%- if a -%}{{ x }}{% endif %}")
    assert not same_tags("{{ t }}{% if a %}{{ x }}{% endif %}", compiled)


def test_expand_includes() -> None:
    files = {"a.mjml": "<mj-text>{{ a }}</mj-text>", "b.html": "<p>{{ b }}</p>", "c.css": ".c{}"}
    source = (
        '<mj-include path="a.mjml" /><mj-include path="b.html" type="html"></mj-include>'
        '<mj-include path="c.css" type="css" /><mj-include path="missing.mjml" />'
    )

    assert expand_includes(source, files) == (
        "<mj-text>{{ a }}</mj-text><mj-raw><p>{{ b }}</p></mj-raw><mj-style>.c{}</mj-style>"
        '<mj-include path="missing.mjml" />'
    )

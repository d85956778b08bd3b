"""Both strategies give exactly what "render Jinja on the MJML source, then compile MJML" gives.

The fast strategy compiles MJML once with the Jinja tags still in the source; these tests hold
it (and the fallback) to the obviously-correct slow path, byte for byte.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import mjml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from templating_support import WriteFiles, page, reference_html, section, template

from onetomany.templating import TemplateSet

EXPRESSIONS = page(
    '<mj-include path="partials/header.mjml" />',
    section(
        '<mj-image src="https://cdn.acme.test/{{ account.id }}.png" alt="{{ account.name }}" />'
        "<mj-text><h1>Hi {{ contact.first_name }}</h1>"
        "{% if contact.vip %}<p>Thanks for being a VIP, {{ contact.name }}.</p>"
        "{% else %}<p>Welcome, {{ contact.name }}.</p>{% endif %}"
        "<ul>{% for item in account.traits['items'] %}<li>{{ loop.index }}. {{ item }}</li>"
        "{% endfor %}</ul></mj-text>"
        '<mj-button href="{{ unsubscribe_url }}" color="{{ account.traits.color }}">'
        "Leave {{ program.name }}</mj-button>"
    ),
    head="<mj-title>{{ account.name }}</mj-title>"
    "<mj-preview>For {{ contact.first_name }}</mj-preview>",
)
SECTIONS_IF = page(
    "{% if contact.vip %}",
    section("<mj-text>VIP corner for {{ contact.first_name }}</mj-text>"),
    "{% endif %}",
    section("<mj-text>Everyone: {{ account.name }}</mj-text>"),
)
COLUMNS_IF = page(
    "<mj-section>{% if contact.vip %}<mj-column><mj-text>VIP</mj-text></mj-column>{% endif %}"
    "<mj-column><mj-text>{{ contact.first_name }}</mj-text></mj-column></mj-section>"
)
ROWS_FOR = page(
    section(
        "{% for item in account.traits['items'] %}<mj-text>{{ item }}</mj-text>{% endfor %}"
        "<mj-text>Total: {{ account.traits['items'] | length }}</mj-text>"
    )
)
LAYOUT_ATTRIBUTE = page(
    section('<mj-text padding="{{ account.traits.padding }}px">{{ contact.first_name }}</mj-text>')
)
INCLUDE_IF = page(
    "{% if contact.vip %}",
    '<mj-include path="partials/vip.mjml" />',
    "{% endif %}",
    section("<mj-text>Hello {{ contact.first_name }}</mj-text>"),
)
# "<" and ">" inside Jinja tags, which MJML would read as markup (see mjml.mask_jinja).
COMPARISONS = page(
    '<mj-include path="partials/compare.mjml" />',
    section(
        "<mj-text>{% if account.traits['items']|length < 2 %}Few{% else %}Many{% endif %} "
        "{{ 'VIP' if contact.vip else '<none>' }}</mj-text>"
        '<mj-button href="https://x.test/{{ 1 if account.traits.padding > 5 else 2 }}">'
        "Go</mj-button>"
    ),
)
SECTIONS_COMPARE = page(
    "{% if account.traits.padding < 10 %}",
    section("<mj-text>Narrow for {{ contact.first_name }}</mj-text>"),
    "{% endif %}",
)
PARTIALS = {
    "partials/compare.mjml": section(
        "<mj-text>{% if account.traits.padding<10 %}narrow{% endif %}</mj-text>"
    ),
    "partials/header.mjml": section('<mj-text css-class="brand">{{ program.name }}</mj-text>'),
    "partials/vip.mjml": section("<mj-text>Priority line for {{ account.name }}</mj-text>"),
}
TEMPLATES = {
    "expressions": (EXPRESSIONS, "mjml-first"),
    "sections_if": (SECTIONS_IF, "jinja-first"),
    "columns_if": (COLUMNS_IF, "jinja-first"),
    "rows_for": (ROWS_FOR, "jinja-first"),
    "layout_attribute": (LAYOUT_ATTRIBUTE, "jinja-first"),
    "include_if": (INCLUDE_IF, "jinja-first"),
    "comparisons": (COMPARISONS, "mjml-first"),
    "sections_compare": (SECTIONS_COMPARE, "jinja-first"),
}


def _context(base: dict[str, Any], *, vip: bool, name: str, items: list[str]) -> dict[str, Any]:
    context = copy.deepcopy(base)
    context["contact"].update(vip=vip, name=name, first_name=name.split(" ")[0])
    context["account"]["traits"].update(items=items, color="#ff0000", padding=4 if vip else 16)
    return context


CASES = [
    {"vip": True, "name": "Ann Lee", "items": ["reports", "alerts"]},
    {"vip": False, "name": 'Tom & "Jerry" <b>O\'Neil</b>', "items": []},
    {"vip": True, "name": "Zoë Ü 日本", "items": ["{{ not jinja }}", "<mj-text>", "a & b"]},
]


@pytest.fixture
def templates(write: WriteFiles) -> TemplateSet:
    files = {f"{name}.mjml": template(body) for name, (body, _) in TEMPLATES.items()}
    return TemplateSet(write({**files, **PARTIALS}))


@pytest.mark.parametrize(("name", "strategy"), [(n, s) for n, (_, s) in TEMPLATES.items()])
def test_strategy_is_chosen_by_where_jinja_sits(
    templates: TemplateSet, name: str, strategy: str
) -> None:
    compiled = templates.compiled(name)

    assert compiled.strategy == strategy
    assert (compiled.reason is None) == (strategy == "mjml-first")


@pytest.mark.parametrize("case", CASES, ids=["vip", "escaping", "unicode"])
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_render_equals_jinja_then_mjml(
    templates: TemplateSet, context: dict[str, Any], name: str, case: dict[str, Any]
) -> None:
    context = _context(context, **case)

    rendered = templates.render(name, context)

    assert rendered.html == reference_html(templates.folder, name, context)


def test_columns_if_is_why_tag_order_alone_is_not_enough(
    templates: TemplateSet, context: dict[str, Any]
) -> None:
    # MJML keeps the tags of COLUMNS_IF in order, but sizes both columns at 50% before Jinja
    # removes one; compiling MJML first would be wrong, and the fallback is not.
    context = _context(context, vip=False, name="Ann", items=[])
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
    naive = env.from_string(mjml.mjml2html(COLUMNS_IF)).render(context)
    correct = reference_html(templates.folder, "columns_if", context)

    assert "mj-column-per-50" in naive
    assert "mj-column-per-100" in correct
    assert templates.render("columns_if", context).html == correct


def test_fast_path_renders_partials_as_part_of_the_template(
    templates: TemplateSet, context: dict[str, Any]
) -> None:
    rendered = templates.render("expressions", _context(context, **CASES[0]))

    assert 'class="brand"' in rendered.html
    assert "Onboarding" in rendered.text


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("&<>\"'{}%#"),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=names, vip=st.booleans(), items=st.lists(names, max_size=3))
def test_equivalence_for_arbitrary_values(
    templates: TemplateSet,
    context: dict[str, Any],
    name: str,
    vip: bool,
    items: list[str],
) -> None:
    context = _context(context, vip=vip, name=name, items=items)
    folder: Path = templates.folder
    for template_name in ["expressions", "sections_if", "columns_if"]:
        expected = reference_html(folder, template_name, context)
        assert templates.render(template_name, context).html == expected

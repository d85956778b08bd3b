"""Runaway templates are refused, at load when their arguments are constant, else as they render,
always as a TemplateError naming the file (and line, when one expression is to blame), quickly
and without allocating what they ask for."""

from __future__ import annotations

import time
from typing import Any

import mjml
import pytest
from jinja2 import nodes
from templating_support import WriteFiles, page, section, template

from onetomany.errors import TemplateError, TemplateSecurityError
from onetomany.templating import TemplateSet
from onetomany.templating.environment import Sandbox, compile_template
from onetomany.templating.limits import Limits

BODY_LINE = 4  # template() writes three lines of front matter


def _text(expression: str) -> str:
    return template(page(section(f"<mj-text>{expression}</mj-text>")))


@pytest.fixture(autouse=True)
def _quick(request: pytest.FixtureRequest) -> Any:
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    # Each takes well under a second; the margin is for a loaded machine (unbounded: minutes).
    assert elapsed < 3.0, f"{request.node.name} took {elapsed:.2f}s"


# -- refused when the template loads ------------------------------------------------------------

AT_LOAD = {
    "deep if": ("{% if true %}" * 2000 + "x" + "{% endif %}" * 2000, "nested more than 30"),
    "deep if with block sets": (
        "{% if true %}{% set y %}a{% endset %}" * 2000 + "{% endif %}" * 2000,
        "nested more than 30",
    ),
    "deep parentheses": ("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", "nested more than 30"),
    "deep not": ("{{ " + "not " * 2000 + "x }}", "nested more than 30"),
    "deep minus": ("{{ " + "-" * 2000 + "1 }}", "nested more than 30"),
    "long chain": ("{{ " + " + ".join(["x"] * 2000) + " }}", "nested more than 100"),
    "long filter chain": ("{{ x" + "|e" * 2000 + " }}", "nested more than 100"),
    "deep loops": (
        "{% for a in b %}" * 11 + "{% endfor %}" * 11,
        "loops nested more than 10",
    ),
    "%-format filter": ("{{ '%999999999s'|format('x') }}", "'%999999999s' is 999999999"),
    "%-format operator": ("{{ '%.999999999f' % 1.5 }}", "'%.999999999f' is 999999999"),
    "%-format star": ("{{ '%*s' % (n, 'x') }}", "a '*' width or precision in '%*s'"),
    "str.format": ("{{ '{:>999999999}'.format('x') }}", "'>999999999' is 999999999"),
    "center": ("{{ 'x'.center(999999999) }}", "center() width is 999999999"),
    "zfill": ("{{ 'x'.zfill(400000000) }}", "zfill() width is 400000000"),
    "center filter": ("{{ 'x'|center(999999999) }}", "|center width is 999999999"),
    "nested ranges": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "nested loops run 10000000000 times, over the budget of 1000000",
    ),
}


@pytest.mark.parametrize("case", AT_LOAD)
def test_runaway_template_is_refused_at_load(write: WriteFiles, case: str) -> None:
    expression, message = AT_LOAD[case]
    templates = TemplateSet(write({"t.mjml": _text(expression)}))

    with pytest.raises(TemplateSecurityError, match="over a template limit") as raised:
        templates.check("t")

    assert message in str(raised.value)
    assert raised.value.template == "t.mjml"
    assert raised.value.line == BODY_LINE


def test_limit_in_front_matter_names_its_line(write: WriteFiles) -> None:
    source = template(page(), subject="Hi", preheader="{{ 'x'.ljust(1000000000) }}")
    templates = TemplateSet(write({"t.mjml": source}))

    with pytest.raises(TemplateSecurityError, match=r"ljust\(\) width") as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("t.mjml", 3)


def test_limit_in_a_channel_file_is_refused_at_load(write: WriteFiles) -> None:
    templates = TemplateSet(
        write({"t.mjml": _text("x"), "t.sms.txt": "Hi\n{{ '%999999999d' % 1 }}\n"})
    )

    with pytest.raises(TemplateSecurityError, match="over a template limit") as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("t.sms.txt", 2)


# -- refused as it renders ----------------------------------------------------------------------

AT_RENDER = {
    "%-format filter": "{{ ('%' ~ n ~ 's')|format('x') }}",
    "%-format operator": "{{ ('%' ~ n ~ 's') % 'x' }}",
    "str.format nested width": "{{ '{:>{w}}'.format('x', w=n) }}",
    "format_map": "{{ '{x:.{n}f}'.format_map({'x': 1.5, 'n': n}) }}",
    "center": "{{ 'x'.center(n) }}",
    "ljust": "{{ 'x'.ljust(n) }}",
    "rjust": "{{ 'x'.rjust(n) }}",
    "zfill": "{{ 'x'.zfill(n) }}",
    "expandtabs": "{{ 'a\tb'.expandtabs(n) }}",
    "center filter": "{{ 'x'|center(n) }}",
    "indent filter": "{{ 'a\nb'|indent(n) }}",
    "wordwrap filter": "{{ 'a b'|wordwrap(n) }}",
    "batch filter": "{{ [1]|batch(n, 0)|list }}",
    "slice filter": "{{ [1]|slice(n)|list }}",
    "to_bytes": "{{ (1).to_bytes(n, 'big')|length }}",
    "lipsum": "{{ lipsum(n) }}",
}


@pytest.mark.parametrize("case", AT_RENDER)
def test_runaway_width_is_refused_as_it_renders(
    write: WriteFiles, context: dict[str, Any], case: str
) -> None:
    templates = TemplateSet(write({"t.mjml": _text(AT_RENDER[case])}))
    templates.check("t")  # nothing constant to refuse

    with pytest.raises(TemplateSecurityError, match="over a template limit") as raised:
        templates.render("t", {**context, "n": 999_999_999})

    assert raised.value.template == "t.mjml"


GROWTH = {
    "~ in a namespace": (
        "{% set ns = namespace(s='x') %}{% for i in range(n) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    ),
    "+ in a namespace": (
        "{% set ns = namespace(s=['x']) %}{% for i in range(n) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"
    ),
    "* of numbers": (
        "{% set ns = namespace(x=3) %}{% for i in range(n) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 1 }}"
    ),
    "chained sets": (
        "{% set a = 'x' * 400000 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c|length }}"
    ),
    "a macro's arguments": (
        "{% macro f(s, k) %}{{ f(s ~ s, k - 1) if k else s|length }}{% endmacro %}{{ f('x', n) }}"
    ),
    "join": "{{ range(100000)|join('x' * 400000) }}",
    "join method": "{{ ('x' * 400000).join(['a', 'b', 'c']) }}",
    "replace": "{{ ('x' * 400000).replace('x', 'yy') }}",
    "replace filter": "{{ ('x' * 400000)|replace('x', 'yy') }}",
    "output in a loop": "{% set s = 'x' * 400000 %}{% for i in range(n) %}{{ s }}{% endfor %}",
    "%-format of many values": "{{ '%s%s' % ('x' * 400000, 'x' * 400000) }}",
    # Many values, each within the cap, adding up to gigabytes.
    "many centered values": "{{ range(100000)|map('center', 500000)|list|length }}",
    "a list of one long string, repeated": "{% set s = 'x' * 500000 %}{{ [s] * 500000 }}",
    "a dict of long strings": (
        "{% set s = 'x' * 500000 %}{{ {}.fromkeys(range(100000), s)|length }}"
    ),
    "batches filled with a long string": (
        "{% set s = 'x' * 500000 %}{{ [1]|batch(100000, s)|list|length }}"
    ),
}


@pytest.mark.parametrize("case", GROWTH)
def test_string_growing_past_the_cap_is_refused(
    write: WriteFiles, context: dict[str, Any], case: str
) -> None:
    templates = TemplateSet(write({"t.mjml": _text(GROWTH[case])}))

    with pytest.raises(TemplateSecurityError, match="over a template limit") as raised:
        templates.render("t", {**context, "n": 60})

    assert raised.value.template == "t.mjml"


def test_nested_loops_run_out_of_steps(write: WriteFiles, context: dict[str, Any]) -> None:
    loops = "{% for i in range(n) %}{% for j in range(n) %}{{ i }}{% endfor %}{% endfor %}"
    # The step budget is under test, not the clock's: a loaded machine must not hit the
    # time budget first.
    templates = TemplateSet(write({"t.mjml": _text(loops)}), max_steps=20_000, max_seconds=60)

    assert "99" in templates.render("t", {**context, "n": 100}).html  # 10,100 steps
    with pytest.raises(TemplateSecurityError, match="budget of 20000 steps") as raised:
        templates.render("t", {**context, "n": 100_000})

    assert raised.value.template == "t.mjml"


@pytest.mark.parametrize(
    "source",
    [
        # 2**40 macro calls
        "{% macro f(k) %}{% if k %}{{ f(k - 1) }}{{ f(k - 1) }}{% endif %}{% endmacro %}{{ f(n) }}",
        # a recursive loop whose every level iterates n items
        "{% for x in range(3) recursive %}{% if loop.depth < 20 %}{{ loop(range(n)) }}"
        "{% endif %}{% endfor %}",
    ],
)
def test_exponential_work_runs_out_of_steps(
    write: WriteFiles, context: dict[str, Any], source: str
) -> None:
    templates = TemplateSet(write({"t.mjml": _text(source)}), max_steps=20_000)

    with pytest.raises(TemplateSecurityError, match="budget of 20000 steps"):
        templates.render("t", {**context, "n": 40 if "macro" in source else 100_000})


def test_a_render_runs_out_of_time(write: WriteFiles, context: dict[str, Any]) -> None:
    # Each step sorts a long list: few steps, much time.
    source = "{% for i in range(n) %}{{ (big|sort)[0] }}{% endfor %}"  # about 0.2 ms a step
    templates = TemplateSet(write({"t.mjml": _text(source)}), max_seconds=0.05)
    templates.check("t")

    started = time.perf_counter()
    with pytest.raises(TemplateSecurityError, match=r"budget of 0\.05s"):
        templates.render("t", {**context, "n": 100_000, "big": list(range(2_000, 0, -1))})

    assert time.perf_counter() - started < 1.0  # 20 s without the deadline


def test_recursion_while_rendering_is_a_template_error(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    source = "{% macro f(k) %}{{ f(k) }}{% endmacro %}{{ f(1) }}"
    templates = TemplateSet(write({"t.mjml": _text(source)}))

    with pytest.raises(TemplateError, match="RecursionError") as raised:
        templates.render("t", context)

    assert raised.value.template == "t.mjml"


def test_memory_error_from_a_filter_is_a_template_error(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    def greedy(value: Any) -> str:
        raise MemoryError

    templates = TemplateSet(
        write({"t.mjml": _text("{{ contact.name|greedy }}")}), filters={"greedy": greedy}
    )

    with pytest.raises(TemplateError, match="MemoryError") as raised:
        templates.render("t", context)

    assert raised.value.template == "t.mjml"


class _Exhausted(Sandbox):
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        raise RecursionError("maximum recursion depth exceeded")


def test_any_compile_failure_is_a_template_error() -> None:
    environment = _Exhausted(limits=Limits())

    with pytest.raises(TemplateError, match="RecursionError") as raised:
        compile_template(environment, "{{ x }}", origin="t.mjml")

    assert raised.value.template == "t.mjml"


# -- what stays allowed -------------------------------------------------------------------------


def test_ordinary_loops_formats_and_widths_still_render(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    source = (
        "{% for x in items %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}"
        "{% else %}none{% endfor %}|"
        "{% for x in [[1, [2]], [3]] recursive %}{{ x if x is number else loop(x) }}"
        "{% endfor %}|{{ '%05.1f'|format(2.25) }}|{{ '{:>6}'.format('ab') }}|"
        "{{ 'ab'.center(6, '*') }}|{{ items|join('-') }}|{{ 'a b c'|replace(' ', '') }}|"
        "{{ 'x' ~ 'y' ~ items|length }}|{{ [1] + [2] }}|{{ 7 % 3 }}|{{ 'a\tb'.expandtabs(2) }}"
    )
    templates = TemplateSet(write({"t.mjml": _text(source)}))

    html = templates.render("t", {**context, "items": ["a", "b", "c"]}).html

    assert "1/3,2/3,3/3|123|002.2|    ab|**ab**|a-b-c|abc|xy3|[1, 2]|1|a b" in html


def test_any_mjml_failure_is_a_template_error(write: WriteFiles) -> None:
    def exhausted(source: str, /, *, include_loader: Any = None) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    templates = TemplateSet(write({"t.mjml": _text("x")}), compile_mjml=exhausted)

    with pytest.raises(TemplateError, match="RecursionError") as raised:
        templates.check("t")

    assert raised.value.template == "t.mjml"


def test_any_failure_of_mjml_as_it_renders_is_a_template_error(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    def panicking(source: str, /, *, include_loader: Any = None) -> str:
        if "BOOM" in source:
            raise RuntimeError("mrml panicked")
        return mjml.mjml2html(source, include_loader=include_loader)

    # Jinja decides which sections exist, so MJML compiles each rendering ("jinja-first").
    source = page("{% if contact.vip %}", section("<mj-text>{{ word }}</mj-text>"), "{% endif %}")
    templates = TemplateSet(write({"t.mjml": template(source)}), compile_mjml=panicking)
    assert templates.compiled("t").strategy == "jinja-first"

    with pytest.raises(TemplateError, match="RuntimeError: mrml panicked") as raised:
        templates.render("t", {**context, "word": "BOOM"})

    assert raised.value.template == "t.mjml"

"""Every way a template can fail is a TemplateError that names the file (and line, if known)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from templating_support import WriteFiles, page, section, template

from onetomany.errors import MissingVariableError, TemplateError, TemplateSecurityError
from onetomany.templating import TemplateSet
from onetomany.templating.environment import make_environment
from onetomany.templating.limits import Limits

MISSING_IN_TEXT = """+++
subject = "Hi {{ contact.first_name }}"
+++
<mjml><mj-body>
<mj-section><mj-column>
<mj-text>Hello {{ contact.nickname }}</mj-text>
</mj-column></mj-section>
</mj-body></mjml>
"""
MISSING_IN_CONTROL_BLOCK = """+++
subject = "Hi"
+++
<mjml><mj-body>
{% if contact.vip %}
<mj-section><mj-column>
<mj-text>Hello {{ contact.nickname }}</mj-text>
</mj-column></mj-section>
{% endif %}
</mj-body></mjml>
"""


def _single(write: WriteFiles, source: str, **files: str) -> TemplateSet:
    return TemplateSet(write({"t.mjml": source, **files}))


# -- missing variables --------------------------------------------------------------------------


@pytest.mark.parametrize("source", [MISSING_IN_TEXT, MISSING_IN_CONTROL_BLOCK])
def test_missing_variable_names_variable_template_and_line(
    write: WriteFiles, context: dict[str, Any], source: str
) -> None:
    templates = _single(write, source)

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", context)

    assert raised.value.variable == "nickname"
    assert raised.value.template == "t.mjml"
    assert raised.value.line == 6 if source is MISSING_IN_TEXT else 7
    assert "t.mjml" in str(raised.value)
    assert "nickname" in str(raised.value)


def test_missing_variable_line_when_the_name_is_used_twice(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    body = "<mjml><mj-body>\n" + "\n".join(
        [
            section("<mj-text>{{ contact.name }}</mj-text>"),
            section("<mj-text>{% for n in [contact] %}{{ n.name }}{% endfor %}</mj-text>"),
            section("<mj-text>{{ account.name }}</mj-text>"),
        ]
    )
    templates = _single(write, template(body + "\n</mj-body></mjml>"))
    del context["account"]["name"]

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", context)

    assert templates.compiled("t").strategy == "mjml-first"
    assert (raised.value.variable, raised.value.line) == ("name", 7)


def test_missing_top_level_variable(write: WriteFiles) -> None:
    templates = _single(write, template(page(section("<mj-text>x</mj-text>"))))

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", {})

    assert raised.value.variable == "contact"
    assert (raised.value.template, raised.value.line) == ("t.mjml", 2)


def test_missing_variable_in_partial_names_the_partial(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    partial = "<mj-section><mj-column>\n<mj-text>{{ program.sponsor }}</mj-text>\n</mj-column>"
    partial += "</mj-section>"
    templates = _single(
        write,
        template(page('<mj-include path="partials/p.mjml" />')),
        **{"partials/p.mjml": partial},
    )

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", context)

    assert raised.value.variable == "sponsor"
    assert (raised.value.template, raised.value.line) == ("partials/p.mjml", 2)


def test_missing_variable_in_partial_with_jinja_first(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    partial = "<mj-section><mj-column>\n<mj-text>{{ program.sponsor }}</mj-text>\n</mj-column>"
    partial += "</mj-section>"
    body = page("{% if contact.vip %}", '<mj-include path="partials/p.mjml" />', "{% endif %}")
    templates = _single(write, template(body), **{"partials/p.mjml": partial})

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", context)

    assert templates.compiled("t").strategy == "jinja-first"
    assert (raised.value.template, raised.value.line) == ("partials/p.mjml", 2)


def test_jinja_first_output_that_breaks_mjml(write: WriteFiles, context: dict[str, Any]) -> None:
    body = page("{% if contact.vip %}{{ contact.markup | safe }}{% endif %}")
    templates = _single(write, template(body))
    context["contact"]["markup"] = "<mj-section>"

    with pytest.raises(TemplateError, match="invalid MJML") as raised:
        templates.render("t", context)

    assert raised.value.template == "t.mjml"


def test_missing_variable_in_txt(write: WriteFiles, context: dict[str, Any]) -> None:
    templates = _single(
        write, template(page(section("<mj-text>x</mj-text>"))), **{"t.txt": "Hi\n{{ contact.pet }}"}
    )

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", context)

    assert (raised.value.variable, raised.value.template, raised.value.line) == ("pet", "t.txt", 2)


def test_missing_list_element(write: WriteFiles, context: dict[str, Any]) -> None:
    templates = _single(write, template(page(section("<mj-text>{{ contact.tags[3] }}</mj-text>"))))
    context["contact"]["tags"] = []

    with pytest.raises(MissingVariableError) as raised:
        templates.render("t", context)

    assert raised.value.variable == "3"


# -- sandbox ------------------------------------------------------------------------------------

PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ '{0.__class__}'.format(contact) }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(1) }}",
    "{{ '{x.__class__}'.format_map({'x': contact}) }}",
    "{{ contact | attr('__class__') }}",
    "{{ contact.update({'first_name': 'x'}) }}",
    "{{ account.traits.clear() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ 10 ** 100000000 }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_violations_raise_template_security_error(
    write: WriteFiles, context: dict[str, Any], payload: str
) -> None:
    templates = _single(write, template(page(section(f"<mj-text>{payload}</mj-text>"))))

    with pytest.raises(TemplateSecurityError) as raised:
        templates.render("t", context)

    assert (raised.value.template, raised.value.line) == ("t.mjml", 4)


@pytest.mark.parametrize("payload", PAYLOADS[:4])
def test_sandbox_applies_to_front_matter(
    write: WriteFiles, context: dict[str, Any], payload: str
) -> None:
    templates = _single(write, template(page(section("<mj-text>x</mj-text>")), subject=payload))

    with pytest.raises(TemplateSecurityError, match=r"t\.mjml:2"):
        templates.render("t", context)


# -- header injection ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["subject", "from", "reply_to"])
@pytest.mark.parametrize("value", ["Ann\r\nBcc: all@victim.test", "Ann\nX: y", "Ann\rX: y"])
def test_line_break_in_header_fields_is_refused(
    write: WriteFiles, context: dict[str, Any], key: str, value: str
) -> None:
    templates = _single(
        write, template(page(section("<mj-text>x</mj-text>")), **{key: "{{ contact.name }}"})
    )
    context["contact"]["name"] = value

    with pytest.raises(TemplateError, match="line break") as raised:
        templates.render("t", context)

    assert raised.value.template == "t.mjml"


def test_trailing_newline_in_subject_is_trimmed(write: WriteFiles, context: dict[str, Any]) -> None:
    templates = _single(write, template(page(section("<mj-text>x</mj-text>"))))
    context["contact"]["first_name"] = "Ann\n"

    assert templates.render("t", context).subject == "Hello Ann"


# -- includes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["../outside.mjml", "partials/../../outside.mjml", "/etc/hostname"]
)
def test_include_outside_the_folder_is_refused(write: WriteFiles, path: str) -> None:
    folder = write()
    (folder.parent / "outside.mjml").write_text(section("<mj-text>secret</mj-text>"), "utf-8")
    templates = _single(write, template(page(f'<mj-include path="{path}" />')))

    with pytest.raises(TemplateError, match="outside the template folder") as raised:
        templates.check("t")

    assert raised.value.template == "t.mjml"
    assert path in str(raised.value)


def test_include_outside_the_folder_names_the_file_and_line_that_include_it(
    write: WriteFiles,
) -> None:
    escaping = '\n<mj-include path="../../etc/passwd" />'
    templates = _single(write, template(page(section("<mj-text>x</mj-text>"), escaping)))

    with pytest.raises(TemplateError, match="outside the template folder") as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("t.mjml", 5)


def test_include_outside_the_folder_in_a_partial_names_the_partial(write: WriteFiles) -> None:
    templates = _single(
        write,
        template(page('<mj-include path="partials/p.mjml" />')),
        **{"partials/p.mjml": '<mj-wrapper>\n<mj-include path="../x.mjml" /></mj-wrapper>'},
    )

    with pytest.raises(TemplateError, match="outside the template folder") as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("partials/p.mjml", 2)


def test_include_through_symlink_escaping_the_folder_is_refused(write: WriteFiles) -> None:
    folder = write()
    outside = folder.parent / "outside.mjml"
    outside.write_text(section("<mj-text>secret</mj-text>"), "utf-8")
    (folder / "partials").mkdir()
    os.symlink(outside, folder / "partials" / "link.mjml")
    templates = _single(write, template(page('<mj-include path="partials/link.mjml" />')))

    with pytest.raises(TemplateError, match="outside the template folder") as raised:
        templates.check("t")

    assert "partials/link.mjml" in str(raised.value)


def test_include_swapped_for_an_escaping_symlink_is_refused(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    folder = write({"partials/p.mjml": section("<mj-text>inside</mj-text>")})
    templates = _single(write, template(page('<mj-include path="partials/p.mjml" />')))
    templates.render("t", context)
    outside = folder.parent / "outside.mjml"
    outside.write_text(section("<mj-text>secret</mj-text>"), "utf-8")
    (folder / "partials" / "p.mjml").unlink()
    os.symlink(outside, folder / "partials" / "p.mjml")
    templates.refresh()  # render checks files at most once per interval; at once after this

    with pytest.raises(TemplateError, match="outside the template folder"):
        templates.render("t", context)


def test_missing_include(write: WriteFiles) -> None:
    templates = _single(write, template(page('<mj-include path="partials/nope.mjml" />')))

    with pytest.raises(TemplateError, match=r"partials/nope\.mjml.*no such file") as raised:
        templates.check("t")

    assert raised.value.template == "t.mjml"


def test_recursive_include(write: WriteFiles) -> None:
    loop = '<mj-wrapper><mj-include path="partials/loop.mjml" /></mj-wrapper>'
    templates = _single(
        write,
        template(page('<mj-include path="partials/loop.mjml" />')),
        **{"partials/loop.mjml": loop},
    )

    with pytest.raises(TemplateError, match="include itself"):
        templates.check("t")


# -- malformed sources --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-column></mj-section></mj-body></mjml>",
        "<mjml><mj-body><mj-section>",
        "just text",
    ],
)
def test_malformed_mjml_names_the_template(write: WriteFiles, body: str) -> None:
    templates = _single(write, template(body))

    with pytest.raises(TemplateError, match="invalid MJML") as raised:
        templates.check("t")

    assert raised.value.template == "t.mjml"
    assert str(raised.value).startswith("t.mjml")


def test_jinja_syntax_error_has_template_and_line(write: WriteFiles) -> None:
    source = template(
        "<mjml><mj-body>\n" + section("<mj-text>{{ contact. }}</mj-text>") + "\n</mj-body></mjml>"
    )
    templates = _single(write, source)

    with pytest.raises(TemplateError, match="syntax error") as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("t.mjml", 5)


def test_jinja_syntax_error_in_front_matter(write: WriteFiles) -> None:
    templates = _single(write, template(page(), subject="Hi {{ contact.first_name }"))

    with pytest.raises(TemplateError, match="syntax error") as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("t.mjml", 2)


def test_unknown_filter_is_a_compile_error(write: WriteFiles) -> None:
    templates = _single(write, template(page(section("<mj-text>{{ 1 | nope }}</mj-text>"))))

    with pytest.raises(TemplateError, match="nope"):
        templates.check("t")


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ('+++\nsubject = "x"\n<mjml></mjml>', "never closed", 1),
        ('+++\nsubject = "x"\nfrom = \n+++\n<mjml></mjml>', "not valid TOML", 3),
        (
            '+++\nsubject = "x"\nreply-to = "a@b.test"\n+++\n<mjml></mjml>',
            "unknown front matter key 'reply-to'",
            3,
        ),
        ('+++\nsubject = "x"\nurl = 3\n+++\n<mjml></mjml>', "must be a string", 3),
    ],
)
def test_bad_front_matter(write: WriteFiles, source: str, message: str, line: int) -> None:
    templates = _single(write, source)

    with pytest.raises(TemplateError, match=message) as raised:
        templates.check("t")

    assert (raised.value.template, raised.value.line) == ("t.mjml", line)


def test_file_that_is_not_utf8(write: WriteFiles) -> None:
    folder = write()
    (folder / "t.mjml").write_bytes(b'+++\nsubject = "caf\xe9"\n+++\n<mjml></mjml>')

    with pytest.raises(TemplateError, match="not valid UTF-8") as raised:
        TemplateSet(folder).check("t")

    assert (raised.value.template, raised.value.line) == ("t.mjml", 2)


def test_txt_that_is_not_utf8(write: WriteFiles) -> None:
    folder = write({"t.mjml": template(page())})
    (folder / "t.txt").write_bytes(b"\xff")

    with pytest.raises(TemplateError, match="not valid UTF-8") as raised:
        TemplateSet(folder).check("t")

    assert raised.value.template == "t.txt"


def test_filter_exception_is_wrapped(write: WriteFiles, context: dict[str, Any]) -> None:
    def broken(value: object) -> str:
        raise RuntimeError("boom")

    folder = write({"t.mjml": template(page(section("<mj-text>{{ 1 | broken }}</mj-text>")))})

    with pytest.raises(TemplateError, match="RuntimeError: boom") as raised:
        TemplateSet(folder, filters={"broken": broken}).render("t", context)

    assert isinstance(raised.value.__cause__, RuntimeError)
    assert (raised.value.template, raised.value.line) == ("t.mjml", 4)


# -- size cap -----------------------------------------------------------------------------------


def test_rendered_html_over_the_cap_is_refused(write: WriteFiles, context: dict[str, Any]) -> None:
    body = page(section("<mj-text>{% for i in range(n) %}<p>row {{ i }}</p>{% endfor %}</mj-text>"))
    folder = write({"t.mjml": template(body)})
    templates = TemplateSet(folder, max_bytes=20_000)

    assert len(templates.render("t", {**context, "n": 10}).html) < 20_000
    with pytest.raises(TemplateError, match="over the 20000-byte cap") as raised:
        templates.render("t", {**context, "n": 5_000})

    assert raised.value.template == "t.mjml"


def test_folder_path_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TemplateSet(tmp_path, max_bytes=0)


# -- dotted names on dicts ------------------------------------------------------------------------

_NAMES = st.sampled_from(["name", "items", "keys", "get", "__class__", "_x", "copy", "missing"])


@settings(max_examples=200, deadline=None)
@given(
    data=st.dictionaries(_NAMES, st.integers(min_value=0, max_value=9), max_size=4),
    name=_NAMES,
)
def test_dotted_names_on_dicts_resolve_as_in_jinjas_own_sandbox(
    data: dict[str, int], name: str
) -> None:
    """The SDK's environment looks dict items up first (Jinja goes through a raised
    AttributeError): the outcome must stay Jinja's for any dict and name, methods and
    sandbox refusals included."""
    ours, _ = make_environment(filters={}, constants={}, limits=Limits(max_bytes=1_000_000))
    stock = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
    source = f"{{{{ d.{name} }}}}"

    def outcome(environment: jinja2.Environment) -> str:
        try:
            return environment.from_string(source).render(d=data)
        except Exception as exc:
            return type(exc).__name__

    assert outcome(ours) == outcome(stock)


def test_a_template_holding_the_mask_token_gets_a_clear_error(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    """``<`` inside Jinja tags is masked while MJML compiles; a template that holds the mask
    token itself cannot be unmasked, and is told so instead of rendering wrongly."""
    body = page(section("<mj-text>otmLTq7 {% if 1 < 2 %}yes{% endif %}</mj-text>"))
    templates = _single(write, template(body))

    with pytest.raises(TemplateError, match="otmLTq7") as raised:
        templates.render("t", context)

    assert raised.value.template == "t.mjml"


def test_mjml_broken_by_jinja_is_located_in_the_rendered_text(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    """Jinja that opens elements in one branch only passes the check of the file's text; the
    recipient whose render breaks the tree gets a position in the rendered MJML, with that
    line, instead of mrml's position-less message."""
    body = (
        "<mjml><mj-body>\n{% if contact.vip %}<mj-section><mj-column>{% endif %}\n"
        "<mj-text>hi</mj-text>\n</mj-column></mj-section>\n</mj-body></mjml>\n"
    )
    templates = _single(write, template(body))
    context["contact"]["vip"] = True
    assert templates.render("t", context).text == "hi"

    context["contact"]["vip"] = False
    with pytest.raises(TemplateError, match="once rendered") as raised:
        templates.render("t", context)

    assert "line 4, column 1" in str(raised.value)
    assert "'</mj-column></mj-section>'" in str(raised.value)
    assert raised.value.template == "t.mjml"

"""Rendering templates: layout includes, front matter, plain text, the folder convention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from templating_support import WriteFiles, page, section, template

from onetomany.errors import TemplateError
from onetomany.templating import Rendered, TemplateSet

WELCOME = """+++
subject = "Welcome aboard, {{ contact.first_name }}"
preheader = "Three steps to your first report"
from = "Acme Success <success@acme.test>"   # optional
reply_to = "{{ program.constants.support }}"
url = "https://app.acme.test/start?account={{ account.id }}"
+++
<mjml>
  <mj-head><mj-title>Welcome</mj-title></mj-head>
  <mj-body>
    <mj-include path="partials/header.mjml" />
    <mj-section>
      <mj-column>
        <mj-text><h1>Hi {{ contact.first_name }},</h1></mj-text>
        <mj-text>
          <p>{{ account.name }} now has {{ account.traits.seats }} seats.</p>
          <p>{% if account.traits.plan == "pro" %}Reports are included in Pro.{% endif %}</p>
        </mj-text>
        <mj-button href="https://app.acme.test/start">Open your first report</mj-button>
      </mj-column>
    </mj-section>
    <mj-include path="partials/footer.mjml" />
  </mj-body>
</mjml>
"""
HEADER = section('<mj-text css-class="brand">{{ program.name }} by Acme</mj-text>')
FOOTER = section(
    '<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a> from {{ program.name }}.</mj-text>'
)


@pytest.fixture
def templates(write: WriteFiles) -> TemplateSet:
    folder = write(
        {
            "welcome.mjml": WELCOME,
            "partials/header.mjml": HEADER,
            "partials/footer.mjml": FOOTER,
        }
    )
    return TemplateSet(folder)


def test_render_with_layout_includes(templates: TemplateSet, context: dict[str, Any]) -> None:
    rendered = templates.render("welcome", context)

    assert isinstance(rendered, Rendered)
    assert rendered.html.startswith("<!doctype html>")
    assert "Onboarding by Acme" in rendered.html  # from the header partial
    assert "Hi Ann," in rendered.html
    # Autoescaped in HTML ...
    assert "Customer &amp; Co now has 12 seats." in rendered.html
    assert 'href="https://app.acme.test/u/abc?x=1&amp;y=2"' in rendered.html
    assert "Reports are included in Pro." in rendered.html
    assert "{{" not in rendered.html
    assert "{%" not in rendered.html
    assert templates.compiled("welcome").strategy == "mjml-first"


def test_derived_text(templates: TemplateSet, context: dict[str, Any]) -> None:
    text = templates.render("welcome", context).text

    assert text == (
        "Onboarding by Acme\n"
        "\n"
        "Hi Ann,\n"
        "\n"
        "Customer & Co now has 12 seats.\n"
        "\n"
        "Reports are included in Pro.\n"
        "\n"
        "Open your first report (https://app.acme.test/start)\n"
        "\n"
        "Unsubscribe (https://app.acme.test/u/abc?x=1&y=2) from Onboarding."
    )


def test_front_matter_is_rendered(templates: TemplateSet, context: dict[str, Any]) -> None:
    rendered = templates.render("welcome", context)

    assert rendered.subject == "Welcome aboard, Ann"
    assert rendered.preheader == "Three steps to your first report"
    assert rendered.sender == "Acme Success <success@acme.test>"
    assert rendered.reply_to == "help@acme.test"
    assert rendered.url == "https://app.acme.test/start?account=a1"


def test_front_matter_is_not_html_escaped(write: WriteFiles, context: dict[str, Any]) -> None:
    folder = write(
        {
            "note.mjml": template(
                page(section("<mj-text>x</mj-text>")), subject="News for {{ account.name }}"
            )
        }
    )

    assert TemplateSet(folder).render("note", context).subject == "News for Customer & Co"


def test_optional_front_matter_fields_are_none(write: WriteFiles, context: dict[str, Any]) -> None:
    folder = write({"note.mjml": template(page(section("<mj-text>x</mj-text>")))})

    rendered = TemplateSet(folder).render("note", context)

    assert (rendered.preheader, rendered.sender, rendered.reply_to, rendered.url) == (
        "",
        None,
        None,
        None,
    )


def test_txt_file_overrides_derived_text(templates: TemplateSet, context: dict[str, Any]) -> None:
    text = "Hi {{ contact.first_name }},\n\n{{ account.name }} & you: <no escaping here>\n"
    (templates.folder / "welcome.txt").write_text(text, encoding="utf-8")

    rendered = templates.render("welcome", context)

    assert rendered.text == "Hi Ann,\n\nCustomer & Co & you: <no escaping here>"
    assert "Customer &amp; Co" in rendered.html


def test_names_skip_partials_and_underscored_files(write: WriteFiles) -> None:
    body = template(page(section("<mj-text>x</mj-text>")))
    folder = write(
        {
            "welcome.mjml": body,
            "renewal.mjml": body,
            "_draft.mjml": body,
            "partials/header.mjml": body,
            "renewal.txt": "plain",
        }
    )
    templates = TemplateSet(folder)

    assert templates.names() == ["renewal", "welcome"]
    assert "welcome" in templates
    assert "_draft" not in templates
    assert "partials/header" not in templates
    assert 42 not in templates


def test_unknown_template_lists_known_names(templates: TemplateSet) -> None:
    with pytest.raises(TemplateError, match=r"unknown template 'welcom'.*welcome") as raised:
        templates.render("welcom", {})

    assert raised.value.template == "welcom"


@pytest.mark.parametrize("name", ["../welcome", "partials/header", "", "/etc/passwd"])
def test_template_names_cannot_be_paths(templates: TemplateSet, name: str) -> None:
    with pytest.raises(TemplateError, match="unknown template"):
        templates.check(name)


def test_filters_and_constants(write: WriteFiles, context: dict[str, Any]) -> None:
    folder = write(
        {
            "note.mjml": template(
                page(
                    section("<mj-text>{{ contact.first_name | shout }} / {{ company }}</mj-text>")
                ),
                subject="{{ company }}: {{ contact.first_name | shout }}",
            )
        }
    )
    templates = TemplateSet(
        folder, filters={"shout": lambda value: f"{value.upper()}!"}, constants={"company": "Acme"}
    )

    rendered = templates.render("note", context)

    assert rendered.subject == "Acme: ANN!"
    assert "ANN! / Acme" in rendered.text


def test_edits_are_picked_up(templates: TemplateSet, context: dict[str, Any]) -> None:
    first = templates.compiled("welcome")
    assert templates.compiled("welcome") is first

    (templates.folder / "partials/header.mjml").write_text(
        section("<mj-text>New header</mj-text>"), encoding="utf-8"
    )

    assert templates.compiled("welcome") is not first
    assert "New header" in templates.render("welcome", context).html


def test_missing_folder_has_no_templates(tmp_path: Path) -> None:
    templates = TemplateSet(tmp_path / "nope")

    assert templates.names() == []
    assert "welcome" not in templates
    with pytest.raises(TemplateError, match=r"unknown template 'welcome'.*none in"):
        templates.check("welcome")


def test_utf8_and_crlf_files(write: WriteFiles, context: dict[str, Any]) -> None:
    source = template(page(section("<mj-text>Olá {{ contact.first_name }} — ✓</mj-text>")))
    folder = write()
    (folder / "hello.mjml").write_bytes(("\ufeff" + source).replace("\n", "\r\n").encode("utf-8"))

    rendered = TemplateSet(folder).render("hello", context)

    assert rendered.text == "Olá Ann — ✓"

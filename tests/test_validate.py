"""``onetomany validate`` checks every template whatever the data: compiled (every variant,
include and channel file), then rendered for the sources' contacts, or a generated sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onetomany.cli.commands import app
from onetomany.cli.validation import check_templates
from onetomany.program import load_program
from onetomany.templating import TemplateSet

PROGRAM = """
[program]
name = "tiny"
sender = "Tiny <hi@tiny.test>"
templates = "templates"

[channels.email]
plugin = "outbox"
folder = "var/outbox"

[touches.welcome]
trigger = { event = "signed_up" }
channel = "email"
template = "welcome"
audience = { roles = ["admin"] }
"""

WELCOME = """+++
subject = "Hi {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Welcome to {{ account.name }} on the {{ account.traits.plan }} plan.</mj-text>
%s
</mj-column></mj-section></mj-body></mjml>
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A program without sources: no contact to render for."""
    (tmp_path / "program.toml").write_text(PROGRAM, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "welcome.mjml").write_text(WELCOME % "", encoding="utf-8")
    return tmp_path


def _validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def test_without_contacts_renders_a_generated_sample_and_says_so(program: Path) -> None:
    code, output = _validate(program)

    assert code == 0, output
    assert "no contacts in the sources; rendered with a generated sample" in output
    assert not (program / "var").exists()


@pytest.mark.parametrize(
    ("file", "text", "problem"),
    [
        # A variant no sample contact picks (French), with a syntax error.
        ("welcome.fr.mjml", WELCOME % "<mj-text>{{ oops( }}</mj-text>", "welcome.fr.mjml:6:"),
        (
            "welcome.mjml",
            WELCOME % '<mj-include path="../../etc/passwd" />',
            "welcome.mjml:6: mj-include path '../../etc/passwd' points outside the template folder",
        ),
        (
            "welcome.mjml",
            WELCOME % "<mj-text>{{ 'x'.center(999999999) }}</mj-text>",
            "welcome.mjml:6: over a template limit: center() width is 999999999",
        ),
        # A channel file no touch of the program uses.
        ("welcome.sms.txt", "Hi {{ contact.first_name }\n", "welcome.sms.txt:1: template syntax"),
        # Fails whatever the data: found by rendering the generated sample.
        (
            "welcome.mjml",
            WELCOME.replace("{{ account.traits.plan }}", "{{ 1 // 0 }}") % "",
            "touches.welcome: welcome.mjml:5: ZeroDivisionError",
        ),
    ],
)
def test_without_contacts_every_template_is_still_checked(
    program: Path, file: str, text: str, problem: str
) -> None:
    (program / "templates" / file).write_text(text, encoding="utf-8")

    code, output = _validate(program)

    assert code == 1, output
    assert "1 template problem(s)" in output
    assert problem in output


def test_check_templates_compiles_and_renders_without_contacts(program: Path) -> None:
    templates_dir = program / "templates"
    (templates_dir / "welcome.pt-BR.mjml").write_text(
        WELCOME % "<mj-text>{{ oops( }}</mj-text>", encoding="utf-8"
    )
    (templates_dir / "welcome.id.mjml").write_text(
        WELCOME % '<mj-include path="../../etc/passwd" />', encoding="utf-8"
    )
    loaded = load_program(program / "program.toml")

    checked = check_templates(loaded, [], templates=TemplateSet(templates_dir))

    assert checked.generated
    assert checked.summary() == "no contacts in the sources; rendered with a generated sample"
    assert len(checked.problems) == 2
    assert checked.problems[0].startswith("welcome.id.mjml:6: mj-include path")
    assert checked.problems[1].startswith("welcome.pt-BR.mjml:6: template syntax error")

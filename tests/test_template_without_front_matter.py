"""A team brings the MJML it already has: a template without front matter takes its subject
and preheader from the touch, else from the MJML's own <mj-title> and <mj-preview>."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors, TemplateError
from onetomany.model import OutboxStatus
from onetomany.program import load_program
from onetomany.templating import TemplateSet
from onetomany.testing import RecordingChannel, make_plugins

#: A newsletter written the way MJML's gallery templates are: a head with a title, a preview,
#: a font, attributes, classes and styles; a hero, columns, images, buttons, a table, social.
GALLERY = Path(__file__).parent / "data" / "gallery_newsletter.mjml"

PROGRAM = """\
[program]
name = "acme"
sender = "Acme <news@acme.test>"
templates = "templates"

[channels.email]
plugin = "recording"

[touches.newsletter]
trigger = { event = "newsletter_due" }
channel = "email"
template = "newsletter"
subject = "{{ contact.first_name }}, this month at {{ account.name }}"

[touches.digest]
trigger = { event = "digest_due" }
channel = "email"
template = "newsletter"

[touches.bare]
trigger = { event = "bare_due" }
channel = "email"
template = "bare"
"""

BARE = """\
<mjml>
  <mj-body>
    <mj-section><mj-column><mj-text>No head at all</mj-text></mj-column></mj-section>
  </mj-body>
</mjml>
"""


@pytest.fixture
def program_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "program"
    (folder / "templates").mkdir(parents=True)
    (folder / "program.toml").write_text(PROGRAM)
    shutil.copy(GALLERY, folder / "templates" / "newsletter.mjml")
    (folder / "templates" / "bare.mjml").write_text(BARE)
    return folder


@pytest.fixture
def run(program_folder, temp_store, frozen_clock):
    recorder = RecordingChannel()
    engine = Engine(
        load_program(program_folder),
        store=temp_store,
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    )
    engine.identify(
        Account(id="a1", name="Northwind"),
        Contact(id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test"),
    )

    def send(event: str) -> RecordingChannel:
        engine.track(event, account_id="a1")
        engine.tick()
        engine.dispatch()
        return recorder

    yield engine, send
    engine.close()


def test_a_gallery_template_renders_with_the_touchs_subject(run):
    _, send = run
    [message] = send("newsletter_due").sent
    assert message.subject == "Nancy, this month at Northwind"
    # The touch gives no preheader: the MJML's <mj-preview> does.
    assert message.preheader == (
        "Dashboards you can share, a faster importer, and a webinar seat for you"
    )
    assert '<html lang="en"' in message.html
    for part in (
        "https://acme.test/img/hero.jpg",
        "https://acme.test/webinar",
        "we kept a seat for Northwind",
        "Shared dashboards",
    ):
        assert part in message.html
    assert "Hi Nancy, we kept a seat for Northwind on Thursday." in message.text


def test_without_a_touch_subject_the_mj_title_is_the_subject(run):
    _, send = run
    [message] = send("digest_due").sent
    assert message.subject == "What's new at Acme & friends this month"


def test_a_subject_from_nowhere_is_refused_naming_the_file_and_the_touch(run):
    engine, send = run
    assert send("bare_due").sent == []
    [row] = engine.store.outbox_rows()
    assert row.status == OutboxStatus.DEAD
    [delivery] = engine.store.deliveries(outbox_id=row.id)
    assert "no subject: bare.mjml" in delivery.error
    assert "touch 'bare' has no subject in program.toml" in delivery.error
    assert "<mj-title>" in delivery.error


def test_the_front_matter_wins_over_the_touch_and_the_head(tmp_path, context_for):
    folder = tmp_path / "templates"
    folder.mkdir()
    source = GALLERY.read_text()
    (folder / "newsletter.mjml").write_text(source)
    (folder / "newsletter.pt-BR.mjml").write_text(
        '+++\nsubject = "Novidades para {{ contact.first_name }}"\n+++\n' + source
    )
    templates = TemplateSet(
        folder, touch_fields={"newsletter": {"subject": "Hello {{ contact.first_name }}"}}
    )
    context = context_for("newsletter")
    assert templates.render("newsletter", context, locale="pt-BR").subject == "Novidades para Ann"
    assert templates.render("newsletter", context, locale="en").subject == "Hello Ann"
    assert templates.render("newsletter", context_for("other"), locale="en").subject == (
        "What's new at Acme & friends this month"
    )


def test_a_template_rendered_outside_a_touch_says_what_is_missing(tmp_path, context_for):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "bare.mjml").write_text(BARE)
    context = context_for("bare")
    del context["touch"]
    with pytest.raises(TemplateError, match=r"no subject: bare\.mjml") as raised:
        TemplateSet(folder).render("bare", context)
    assert "the touch that sends it" in str(raised.value)


def test_touch_subject_and_preheader_load_from_toml_and_are_checked(program_folder):
    program = load_program(program_folder)
    assert program.touch("newsletter").subject == (
        "{{ contact.first_name }}, this month at {{ account.name }}"
    )
    assert program.touch_fields() == {"newsletter": program.touch("newsletter").template_fields}
    toml = program_folder / "program.toml"
    toml.write_text(toml.read_text().replace('"bare"\n', '"bare"\npreheader = 3\n'))
    with pytest.raises(ConfigErrors, match=r"touches\.bare\.preheader: expected a string"):
        load_program(program_folder)


@pytest.fixture
def context_for():
    def build(touch: str) -> dict[str, object]:
        return {
            "contact": {"first_name": "Ann"},
            "account": {"name": "Customer & Co"},
            "touch": {"name": touch},
            "unsubscribe_url": "https://acme.test/u",
        }

    return build


def test_a_subject_with_jinja_in_the_mj_title_renders_per_recipient(tmp_path, context_for):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "t.mjml").write_text(
        textwrap.dedent(
            """\
            <mjml>
              <mj-head>
                <mj-title>
                  Welcome, {{ contact.first_name }}
                </mj-title>
              </mj-head>
              <mj-body><mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section>
              </mj-body>
            </mjml>
            """
        )
    )
    rendered = TemplateSet(folder).render("t", context_for("t"))
    assert rendered.subject == "Welcome, Ann"
    assert rendered.preheader == ""

"""One touch, one Message per channel kind; and previews of the bundled program."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from templating_support import WriteFiles, page, section, template

from onetomany.cli.preview import write_preview, write_previews
from onetomany.delivery.compose import Composer
from onetomany.errors import PermanentDeliveryError
from onetomany.model import Account, ChannelKind, Contact
from onetomany.program import Program, load_program
from onetomany.store import OutboxRow
from onetomany.templating import TemplateSet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onboarding"

BODY = page(section("<mj-text>Hi {{ contact.first_name }}, see {{ account.name }}.</mj-text>"))


def _row(template_name: str = "tip", payload: dict[str, Any] | None = None) -> OutboxRow:
    return OutboxRow(
        id=1,
        idempotency_key="k1",
        program="p",
        touch="tip",
        channel="x",
        template=template_name,
        contact_id="c1",
        account_id="a1",
        event_id=None,
        payload=payload or {"event": None},
        status="pending",
        attempts=0,
        available_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _contact(**changes: Any) -> Contact:
    fields: dict[str, Any] = {
        "id": "c1",
        "account_id": "a1",
        "name": "Ana Souza",
        "email": "ana@x.test",
        "phone": "+5511912345678",
        "role": "admin",
        "locale": "pt-BR",
        "timezone": "America/Sao_Paulo",
    }
    return Contact(**(fields | changes))


@pytest.fixture
def composer(write: WriteFiles, folder: Path) -> Composer:
    write(
        {
            "tip.mjml": template(
                BODY,
                subject="Tip for {{ contact.first_name }}",
                title="A tip",
                url="https://x.test/{{ account.id }}",
            ),
            "tip.pt-BR.mjml": template(BODY, subject="Dica, {{ contact.first_name }}"),
            "tip.sms.txt": "Oi {{ contact.first_name }}, {{ account.name }}",
            "tip.pt-BR.inapp.txt": "Corpo {{ contact.first_name }}",
            "tip.whatsapp.toml": 'template = "tip_v1"\nparameters = ["contact.first_name", '
            "\"account.name ~ '!'\"]\n",
            "tip.id.whatsapp.txt": "Halo {{ contact.first_name }}",
            "long.mjml": template(BODY),
            "long.sms.txt": "+++\nmax_segments = 1\n+++\n{{ 'x' * 200 }}",
            "long.pt-BR.sms.txt": "{{ 'ã' * 150 }}",
        }
    )
    program = Program(name="p", templates_dir=folder, sender="S <s@x.test>")
    return Composer(program, TemplateSet(folder))


ACCOUNT = Account(id="a1", name="Contoso")


def test_email(composer: Composer) -> None:
    message = composer.compose(_row(), contact=_contact(), account=ACCOUNT, kind=ChannelKind.EMAIL)
    assert message.subject == "Dica, Ana"
    assert "Hi Ana, see Contoso." in message.text and "<html" in message.html
    assert message.sender == "S <s@x.test>"


def test_sms(composer: Composer) -> None:
    message = composer.compose(_row(), contact=_contact(), account=ACCOUNT, kind=ChannelKind.SMS)
    assert message.text == "Oi Ana, Contoso"
    assert message.data == {"sms_encoding": "GSM-7", "sms_segments": 1}
    assert message.html == ""


def test_sms_over_the_limit_names_the_template(composer: Composer) -> None:
    with pytest.raises(
        PermanentDeliveryError, match=r"long\.sms\.txt.*2 GSM-7 segments.*limit of 1"
    ):
        composer.compose(
            _row("long"), contact=_contact(locale="en"), account=ACCOUNT, kind=ChannelKind.SMS
        )
    # No max_segments in the pt-BR file: the Composer's default, 3; 150 UCS-2 chars take 3.
    message = composer.compose(
        _row("long"), contact=_contact(), account=ACCOUNT, kind=ChannelKind.SMS
    )
    assert message.data == {"sms_encoding": "UCS-2", "sms_segments": 3}
    strict = Composer(composer.program, composer.templates, max_sms_segments=2)
    with pytest.raises(PermanentDeliveryError, match=r"long\.pt-BR\.sms\.txt"):
        strict.compose(_row("long"), contact=_contact(), account=ACCOUNT, kind=ChannelKind.SMS)


def test_whatsapp_template_and_session_text(composer: Composer) -> None:
    message = composer.compose(
        _row(), contact=_contact(), account=ACCOUNT, kind=ChannelKind.WHATSAPP
    )
    assert message.data == {
        "whatsapp_template": "tip_v1",
        "whatsapp_language": "pt_BR",
        "whatsapp_parameters": ["Ana", "Contoso!"],
    }
    session = composer.compose(
        _row(), contact=_contact(locale="id"), account=ACCOUNT, kind=ChannelKind.WHATSAPP
    )
    assert session.text == "Halo Ana" and "whatsapp_template" not in session.data


def test_inapp(composer: Composer) -> None:
    english = composer.compose(
        _row(), contact=_contact(locale="en"), account=ACCOUNT, kind=ChannelKind.INAPP
    )
    assert english.subject == "A tip"
    assert english.url == "https://x.test/a1"
    assert english.text == "Hi Ana, see Contoso."
    brazil = composer.compose(_row(), contact=_contact(), account=ACCOUNT, kind=ChannelKind.INAPP)
    assert brazil.subject == "Dica, Ana"  # no title in tip.pt-BR.mjml: the subject
    assert brazil.text == "Corpo Ana"


def test_missing_channel_file_is_permanent(composer: Composer) -> None:
    with pytest.raises(PermanentDeliveryError, match=r"no long\.whatsapp\.toml"):
        composer.compose(
            _row("long"), contact=_contact(), account=ACCOUNT, kind=ChannelKind.WHATSAPP
        )


def test_bundled_program_renders_for_every_example_contact(tmp_path: Path) -> None:
    program = load_program(EXAMPLE / "program.toml")
    contacts = [
        _contact(id="ct-001", locale="en", role="admin"),
        _contact(id="ct-004", locale="pt-BR", role="sponsor"),
        _contact(id="ct-007", locale="id", role="sponsor", timezone="Asia/Jakarta"),
    ]
    event = {
        "id": "ev-1",
        "name": "x",
        "occurred_at": "2026-11-03T01:00:00+00:00",
        "properties": {
            "day": 1,
            "completed": "SSO",
            "next_step": "dashboards",
            "report_id": "r1",
            "title": "Weekly",
        },
    }
    account = Account(
        id="a1",
        name="Contoso Pharma",
        traits={
            "plan": "enterprise",
            "mrr": 8400.0,
            "seats": 120,
            "active_users": 31,
            "owner": "ana@acme-analytics.test",
            "invoice_due_date": "2026-09-15",
            "invoice_status": "open",
        },
    )
    paths = write_previews(program, [(c, account) for c in contacts], out_dir=tmp_path, event=event)
    names = {path.relative_to(tmp_path).as_posix() for path in paths}
    assert "ct-004/pt-BR/welcome.pt-BR.html" in names
    assert "ct-004/pt-BR/day_recap.pt-BR.sms.txt" in names
    assert "ct-007/id/first_report_tip.id.inapp.txt" in names
    recap = (tmp_path / "ct-004/pt-BR/day_recap.pt-BR.txt").read_text()
    assert "Template: day_recap.pt-BR.mjml" in recap
    assert re.search(r"\d{1,2} de \w+ de \d{4}", recap)  # the recap's date, in Portuguese
    assert "conectou uma fonte de dados" in recap  # the sample activity, labelled
    assert "Cancelar inscrição" in recap
    welcome = (tmp_path / "ct-007/id/welcome.id.txt").read_text()
    assert "Template: welcome.sponsor.id.mjml" in welcome and "Berhenti berlangganan" in welcome
    sms = (tmp_path / "ct-004/pt-BR/day_recap.pt-BR.sms.txt").read_text()
    assert "GSM-7" in sms  # written without accents, so two segments hold it
    # One touch, the contact's own locale, placeholders for a missing event.
    single = write_preview(
        program,
        "first_report_tip",
        contact=contacts[0],
        account=account,
        locale=None,
        out_dir=tmp_path / "one",
    )
    assert [p.name for p in single] == [
        "first_report_tip.en.html",
        "first_report_tip.en.txt",
        "first_report_tip.en.inapp.txt",
    ]
    assert "[title]" in single[1].read_text()


def test_the_template_context_holds_profile_data_only():
    from onetomany import Account, Contact
    from onetomany.delivery.compose import account_context, contact_context

    contact = contact_context(Contact(id="c1", name="Ana Lima", traits={"seats": 3}))
    account = account_context(Account(id="a1", name="Acme"))
    assert "given" not in contact
    assert "given" not in account
    assert contact["first_name"] == "Ana"
    assert contact["traits"] == {"seats": 3}


def test_the_template_context_shows_every_profile_field_as_a_deep_copy_would():
    import attrs

    from onetomany import Account, Contact
    from onetomany.delivery.compose import account_context, contact_context

    traits = {"plan": "pro", "seats": [3, 5], "billing": {"country": "PT", "tags": ["vip"]}}
    contact = Contact(
        id="c1",
        account_id="a1",
        name="Ana Lima",
        email="ana@example.test",
        phone="+351912345678",
        role="sponsor",
        locale="pt-PT",
        timezone="Europe/Lisbon",
        consent={"email": True, "sms": False},
        traits=traits,
    )
    account = Account(id="a1", name="Acme", traits=traits)

    def deep(value):
        return attrs.asdict(value, filter=lambda field, _: field.name != "given")

    assert contact_context(contact) == deep(contact) | {"first_name": "Ana"}
    assert account_context(account) == deep(account)
